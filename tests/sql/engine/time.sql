-- time.sql — TIMESTAMP, TIMESTAMPTZ, DATE, INTERVAL (PostgreSQL semantics, UTC), their functions,
-- event time (WATERMARK), windows (TUMBLE, HOP, SESSION) with both emit modes, and the errors.
CREATE STREAM ev (id INT KEY, ts TIMESTAMP, tz TIMESTAMPTZ, d DATE, iv INTERVAL, txt TEXT);
INSERT INTO ev VALUES (1, '2024-02-29 23:59:59.5', '2024-03-01T01:00:00+02:00', '2024-02-29', '1 day 02:03:04', '2024-01-31'),
  (2, '2024-01-31 12:00:00', '2024-01-31 12:00:00Z', '2024-12-31', '-90 minutes', 'x'),
  (3, NULL, NULL, NULL, NULL, NULL);
CREATE VIEW arith AS SELECT id, ts + INTERVAL '1' MONTH AS plus_month, ts - INTERVAL '90 minutes' AS minus_90,
  ts + iv AS plus_iv, d + 1 AS tomorrow, d - DATE '2024-01-01' AS day_no, d + INTERVAL '12' HOUR AS d_noon,
  ts - tz AS diff, iv * 2 AS iv2, iv / 4 AS iv4, -iv AS neg, INTERVAL '1 year 2 months' + iv AS sum_iv
  FROM ev;
SELECT * FROM arith ORDER BY id;
CREATE VIEW funcs AS SELECT id, DATE_TRUNC('hour', ts) AS h, DATE_TRUNC('week', ts) AS wk, DATE_TRUNC('month', d) AS m,
  EXTRACT(YEAR FROM ts) AS y, EXTRACT(SECOND FROM ts) AS s, EXTRACT(EPOCH FROM ts) AS ep, EXTRACT(DOW FROM d) AS dow,
  EXTRACT(HOUR FROM iv) AS ivh, DATE_PART('doy', d) AS doy, TO_CHAR(ts, 'YYYY/MM/DD HH24:MI:SS.MS Dy Mon') AS txt,
  DATE_BIN(INTERVAL '15 minutes', ts, TIMESTAMP '2000-01-01') AS bin
  FROM ev;
SELECT * FROM funcs ORDER BY id;
CREATE VIEW casts AS SELECT id, ts::DATE AS dd, d::TIMESTAMP AS dts, tz::TIMESTAMP AS plain, CAST(ts AS TEXT) AS t,
  txt::DATE AS parsed, TO_TIMESTAMP(86400) AS epoch_day, TO_TIMESTAMP('05/03/2024 14:30', 'DD/MM/YYYY HH24:MI') AS fmt,
  TO_DATE('2024-060', 'YYYY-DDD') AS doy_date, ts > '2024-02-01' AS after_feb, d BETWEEN '2024-01-01' AND '2024-06-30' AS h1,
  iv > INTERVAL '1 day' AS long_iv, ts IS NULL AS no_ts
  FROM ev WHERE id <> 2;
SELECT * FROM casts ORDER BY id;
-- a run-time error names the view and the row
CREATE VIEW bad_parse AS SELECT id, txt::DATE AS d FROM ev;
SELECT * FROM bad_parse;
DROP VIEW bad_parse;
-- errors at CREATE, with their positions
CREATE VIEW e1 AS SELECT ts + 5 FROM ev;
CREATE VIEW e2 AS SELECT id FROM ev WHERE ts > 7;
CREATE VIEW e3 AS SELECT DATE_TRUNC('fortnight', ts) FROM ev;
CREATE VIEW e4 AS SELECT CAST(id AS TIMESTAMP) FROM ev;
CREATE VIEW e5 AS SELECT id, NOW() AS now FROM ev;
CREATE VIEW e6 AS SELECT id FROM ev WHERE ts > NOW() - id;
CREATE VIEW e7 AS SELECT id FROM ev WHERE ts + INTERVAL '1 day' > NOW() OR id = 1;
CREATE VIEW e8 AS SELECT INTERVAL '5 fortnights' FROM ev;
CREATE VIEW e9 AS SELECT TIMESTAMP '2024-02-30 00:00:00' FROM ev;
CREATE STREAM w1 (id INT KEY, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND);
CREATE STREAM w2 (id INT, n INT, WATERMARK FOR n AS n - 5);
CREATE STREAM w3 (id INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' MONTH);
CREATE STREAM w4 (id INT, ts TIMESTAMP, WATERMARK FOR ts AS ts + INTERVAL '1' SECOND);
CREATE STREAM t1 (id INT KEY, year INT) WITH (ttl = '1 hour', ttl_column = year);
CREATE STREAM t2 (id INT, ts TIMESTAMP) WITH (timestamp_format = 'epoch_minutes');
-- windows: bids arrive out of order; the watermark trails the largest time by 5 s
CREATE STREAM bids (auction INT, price INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND);
CREATE VIEW per10 AS SELECT window_start, window_end, COUNT(*) AS n, MAX(price) AS top, SUM(price) AS total
  FROM TUMBLE(bids, DESCRIPTOR(ts), INTERVAL '10' SECOND) GROUP BY window_start, window_end;
CREATE VIEW per10_final AS SELECT window_end, COUNT(*) AS n, SUM(price) AS total
  FROM TUMBLE(bids, DESCRIPTOR(ts), INTERVAL '10' SECOND) GROUP BY window_end EMIT ON WINDOW CLOSE;
CREATE VIEW hopping AS SELECT auction, window_start, COUNT(*) AS n
  FROM HOP(bids, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '10' SECOND) GROUP BY auction, window_start;
CREATE VIEW sessions AS SELECT auction, window_start, window_end, COUNT(*) AS n, MIN(price) AS low
  FROM SESSION(bids PARTITION BY auction, DESCRIPTOR(ts), INTERVAL '4' SECOND) GROUP BY auction, window_start, window_end;
CREATE VIEW windowed_rows AS SELECT auction, price, window_start, window_end
  FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '30' SECOND) WHERE price > 15;
INSERT INTO bids VALUES (1, 10, '2024-01-01 00:00:01'), (2, 20, '2024-01-01 00:00:03'), (1, 30, '2024-01-01 00:00:12'),
  (1, 5, '2024-01-01 00:00:09');
SELECT * FROM per10 ORDER BY window_start;
SELECT * FROM per10_final ORDER BY window_end;
-- 00:00:25 moves the watermark to 00:00:20: the windows ending by then close
INSERT INTO bids VALUES (3, 40, '2024-01-01 00:00:25');
-- 00:00:02 is behind the watermark: dead-lettered as late, counted nowhere
INSERT INTO bids VALUES (2, 7, '2024-01-01 00:00:02');
SELECT * FROM per10 ORDER BY window_start;
SELECT * FROM per10_final ORDER BY window_end;
SELECT * FROM hopping ORDER BY auction, window_start;
SELECT * FROM sessions ORDER BY auction, window_start;
SELECT * FROM windowed_rows ORDER BY window_start, price;
-- sessions merge: auction 4 gets two sessions (00:00:40, 00:00:46: 6 s apart, the gap is 4 s), then
-- 00:00:43 is within 4 s of both and joins them; 00:00:16 is late by then (the watermark is at
-- 00:00:41) and changes nothing
INSERT INTO bids VALUES (4, 1, '2024-01-01 00:00:40'), (4, 2, '2024-01-01 00:00:46');
SELECT * FROM sessions WHERE auction = 4 ORDER BY window_start; SELECT COUNT(*) AS n FROM per10_final; -- (caught up: its batches in EXPLAIN below are exact whatever the timing)
INSERT INTO bids VALUES (4, 3, '2024-01-01 00:00:43'), (1, 99, '2024-01-01 00:00:16');
SELECT * FROM sessions ORDER BY auction, window_start;
SELECT * FROM per10_final ORDER BY window_end;
EXPLAIN VIEW per10_final;
-- window errors
CREATE VIEW we1 AS SELECT COUNT(*) FROM TUMBLE(bids, DESCRIPTOR(price), INTERVAL '1' MINUTE);
CREATE VIEW we2 AS SELECT COUNT(*) FROM TUMBLE(bids, ts, INTERVAL '1' MINUTE);
CREATE VIEW we3 AS SELECT COUNT(*) FROM HOP(bids, DESCRIPTOR(ts), INTERVAL '1' MINUTE);
CREATE VIEW we4 AS SELECT COUNT(*) FROM TUMBLE(bids, DESCRIPTOR(ts), INTERVAL '1' MONTH);
CREATE VIEW we5 AS SELECT COUNT(*) FROM SLIDE(bids, DESCRIPTOR(ts), INTERVAL '1' MINUTE);
CREATE VIEW we6 AS SELECT auction, COUNT(*) AS n FROM bids GROUP BY auction EMIT ON WINDOW CLOSE;
CREATE VIEW we7 AS SELECT window_start, COUNT(*) AS n FROM TUMBLE(ev, DESCRIPTOR(ts), INTERVAL '1' MINUTE)
  GROUP BY window_start EMIT ON WINDOW CLOSE;
CREATE VIEW we8 AS SELECT COUNT(*) FROM TUMBLE(bids PARTITION BY auction, DESCRIPTOR(ts), INTERVAL '1' MINUTE);
-- MIN/MAX of times beside SUM in one GROUP (their payload is not text: no sum is taken of it)
CREATE VIEW latest AS SELECT auction, SUM(price) AS total, MAX(ts) AS last, MIN(ts::DATE) AS first_day
  FROM bids GROUP BY auction;
SELECT * FROM latest ORDER BY auction;
