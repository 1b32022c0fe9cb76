-- strict.sql — the front end refuses what PostgreSQL refuses, at CREATE, with line:col (issue 12 H).
CREATE STREAM orders (id INT KEY, status TEXT, amount REAL, qty INT);
CREATE STREAM customers (name TEXT KEY, tier TEXT);
-- type errors
CREATE CONTINUOUS VIEW bad1 AS SELECT id FROM orders WHERE amount = 'abc';
CREATE CONTINUOUS VIEW bad2 AS SELECT id FROM orders WHERE status > 5;
CREATE CONTINUOUS VIEW bad3 AS SELECT o.id FROM orders o JOIN customers c ON o.qty = c.name;
CREATE CONTINUOUS VIEW bad4 AS SELECT id FROM orders WHERE qty;
-- options: unknown names and bad values are refused at definition
CREATE STREAM s2 (a INT) WITH (topc = 'x');
CREATE STREAM s3 (a INT) WITH (ttl = '1 fortnight');
CREATE STREAM s4 (a INT, t INT) WITH (ttl_column = t);
CREATE STREAM s5 (a INT) WITH (partitions = 0);
CREATE CONTINUOUS VIEW bad5 WITH (sink_topik = 'out') AS SELECT id FROM orders;
SET batchsize = 10;
-- syntax that is not supported yet says so
CREATE CONTINUOUS VIEW bad6 AS SELECT id FROM orders WHERE status SIMILAR TO 'o%';
CREATE CONTINUOUS VIEW bad7 AS SELECT id, SUM(qty) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM orders;
-- what PostgreSQL accepts: a string literal takes the number's type; GROUP BY names an input column first
CREATE CONTINUOUS VIEW big AS SELECT id, amount FROM orders WHERE qty = '10' AND amount > '2.5';
CREATE CONTINUOUS VIEW by_status AS
    SELECT LOWER(status) AS status, COUNT(*) AS n, SUM(qty) AS qty FROM orders GROUP BY status;
CREATE CONTINUOUS VIEW amounts AS SELECT COALESCE(qty, amount) AS x FROM orders;
CREATE CONTINUOUS VIEW groups AS SELECT x, COUNT(*) AS n FROM amounts GROUP BY x;
INSERT INTO orders VALUES (1, 'Open', 3.5, 10), (2, 'open', 2.0, NULL), (3, 'OPEN', 2.0, 2), (4, 'closed', 9.0, 10);
SELECT * FROM big;
SELECT * FROM by_status;
SELECT * FROM groups;
-- a SELECT is checked like a view
SELECT id FROM big WHERE amount = 'abc';
SELECT id FROM big WHERE amount = '3.5';
