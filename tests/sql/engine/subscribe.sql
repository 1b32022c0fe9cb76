-- subscribe.sql — SUBSCRIBE prints the view's rows, then its changes; in a
-- script SET subscribe_limit / subscribe_timeout_ms bound it. Also a view over
-- a view, a HAVING clause in a snapshot query, and CREATE ... IF NOT EXISTS.
CREATE STREAM IF NOT EXISTS clicks (user_id INT, page TEXT);
CREATE STREAM IF NOT EXISTS clicks (user_id INT, page TEXT);
CREATE CONTINUOUS VIEW per_page AS SELECT page, COUNT(*) AS hits FROM clicks GROUP BY page;
CREATE CONTINUOUS VIEW IF NOT EXISTS per_page AS SELECT page FROM clicks;
CREATE CONTINUOUS VIEW hot AS SELECT page FROM per_page WHERE hits >= 2;
INSERT INTO clicks VALUES (1, '/'), (2, '/'), (1, '/docs'), (3, '/blog'), (3, '/docs');
SET subscribe_limit = 2;
SUBSCRIBE hot;
SET subscribe_limit = 0;
SET subscribe_timeout_ms = 200;
SUBSCRIBE per_page;
SELECT page, SUM(hits) AS total FROM per_page GROUP BY page HAVING SUM(hits) > 1 ORDER BY total DESC, page;
SELECT * FROM hot;
