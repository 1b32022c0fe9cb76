-- exact.sql — regression tests for wrong answers of issue 12 (A-E2): each result below was wrong
-- before its fix.
-- A: a global aggregate has exactly one row, before any input and after everything is deleted.
CREATE STREAM s (k INT KEY, x INT, r REAL);
CREATE CONTINUOUS VIEW total AS SELECT COUNT(*) AS n, SUM(x) AS sx, AVG(r) AS ar FROM s;
SELECT * FROM total;
CREATE STREAM u (a INT, b TEXT);
CREATE CONTINUOUS VIEW ucount AS SELECT COUNT(*) AS n, MAX(a) AS ma FROM u;
INSERT INTO u VALUES (1, 'x');
DELETE FROM u WHERE a = 1 AND b = 'x';
SELECT * FROM ucount;
-- ... so a LEFT JOIN against it keeps its rows
CREATE STREAM tags (id INT KEY, n INT);
CREATE CONTINUOUS VIEW tagged AS SELECT t.id, c.n AS total FROM tags t LEFT JOIN ucount c ON t.n = c.n;
INSERT INTO tags VALUES (1, 0), (2, 5);
SELECT * FROM tagged;
-- B: ROUND rounds ties half away from zero
CREATE STREAM nums (id INT KEY, v REAL);
CREATE CONTINUOUS VIEW rounded AS SELECT id, ROUND(v, 1) AS r1, ROUND(v, 2) AS r2, ROUND(v) AS r0 FROM nums;
INSERT INTO nums VALUES (1, 7.25), (2, -0.25), (3, 0.125), (4, 2.675), (5, -2.5);
SELECT * FROM rounded;
-- C: deleting a row a keyless stream does not hold is dropped: it never swallows a later insert
CREATE STREAM kl (x INT, y TEXT);
CREATE CONTINUOUS VIEW klv AS SELECT * FROM kl;
CREATE CONTINUOUS VIEW klc AS SELECT COUNT(*) AS n FROM kl;
DELETE FROM kl WHERE x = 7 AND y = 'zz';
INSERT INTO kl VALUES (7, 'zz');
INSERT INTO kl VALUES (1, 'a'), (1, 'a');
DELETE FROM kl WHERE x = 1 AND y = 'a';
SELECT * FROM klv;
SELECT * FROM klc;
-- D: columns named like the reader's and the view table's internal names
CREATE STREAM odd (i INT KEY, "_mult" INT, "_k" TEXT, "_row" TEXT, "_id" REAL, "_h" INT, "_x" TEXT);
CREATE CONTINUOUS VIEW oddv AS SELECT * FROM odd;
INSERT INTO odd VALUES (1, 2, 'a', 'r', 1.5, 7, 'x'), (2, 3, 'a', 'r', 2.5, 8, 'y');
SELECT * FROM oddv;
SELECT i, "_mult" FROM oddv WHERE i > 1;
-- E: REAL sums are exact under retraction, at batch size 1 as at the default
SET batch_size = 1;
CREATE STREAM f (k INT KEY, x REAL);
CREATE CONTINUOUS VIEW fsum AS SELECT SUM(x) AS sx, AVG(x) AS ax, COUNT(x) AS n FROM f;
INSERT INTO f VALUES (1, 1e20);
INSERT INTO f VALUES (2, 1.0);
DELETE FROM f WHERE k = 1;
SELECT * FROM fsum;
SET batch_size = 1024;
INSERT INTO f VALUES (3, 0.1), (4, 0.2), (5, 0.3), (6, -1e300), (7, 1e300);
SELECT * FROM fsum;
-- E2: an INT SUM leaving the 64-bit range becomes REAL (never wraps), and comes back when it fits
CREATE STREAM big (k INT KEY, x INT);
CREATE CONTINUOUS VIEW bsum AS SELECT SUM(x) AS sx FROM big;
INSERT INTO big VALUES (1, 9223372036854775807), (2, 1);
SELECT * FROM bsum;
DELETE FROM big WHERE k = 1;
SELECT * FROM bsum;
-- E2: one input rule: out of range, non-finite, NUL and malformed values are refused
INSERT INTO big VALUES (9, 99999999999999999999);
INSERT INTO big VALUES (9, '99999999999999999999');
INSERT INTO f VALUES (9, 'nan');
INSERT INTO f VALUES (9, 'inf');
INSERT INTO f VALUES (9, '0x10');
INSERT INTO big VALUES (9, 2.5);
INSERT INTO big VALUES (' 10 ', ' 12 ');
SELECT * FROM bsum;
-- NUMERIC aggregates are exact and compare numerically (not as text): SUM keeps every digit under
-- deletes, MIN/MAX/COUNT(DISTINCT) and ORDER BY ... LIMIT order 9.50 below 10.25
CREATE STREAM p (id INT KEY, g TEXT, x NUMERIC(10,2));
CREATE CONTINUOUS VIEW psum AS SELECT g, SUM(x) AS sx, MIN(x) AS mn, MAX(x) AS mx, COUNT(DISTINCT x) AS nd FROM p GROUP BY g;
CREATE CONTINUOUS VIEW ptop AS SELECT id, x FROM p ORDER BY x DESC LIMIT 2;
INSERT INTO p VALUES (1, 'a', 9.5), (2, 'a', 10.25), (3, 'a', 0.1), (4, 'a', 0.2), (5, 'a', 10.25), (6, 'b', -3);
SELECT * FROM psum;
SELECT * FROM ptop;
DELETE FROM p WHERE id = 2;
DELETE FROM p WHERE id = 5;
SELECT * FROM psum;
SELECT * FROM ptop;
