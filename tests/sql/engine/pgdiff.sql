-- pgdiff.sql — regression tests for wrong answers tests/difftest found once it compared views with
-- PostgreSQL 15 (issue 12): each result below was wrong, or the view refused, before its fix.
CREATE STREAM s (k INT KEY, a INT, b BOOLEAN, r REAL);
INSERT INTO s VALUES (1, 2, TRUE, 1.5), (2, 2, FALSE, 2.5), (3, NULL, NULL, NULL);
-- a set operation's right operand may repeat a column name (the result takes the left's names)
CREATE CONTINUOUS VIEW setnames AS SELECT a AS x, k AS y FROM s UNION SELECT a, a FROM s;
SELECT * FROM setnames ORDER BY x, y;
-- DOUBLE PRECISION is a type name (CAST and ::)
CREATE CONTINUOUS VIEW dbl AS SELECT k, CAST(a AS DOUBLE PRECISION) AS d, r::double precision AS e FROM s;
SELECT * FROM dbl ORDER BY k;
-- a boolean constant cast to TEXT is 'true'/'false' (folded at CREATE, it was '1'/'0')
CREATE CONTINUOUS VIEW booltext AS SELECT CAST(TRUE AS TEXT) AS t1, FALSE::TEXT AS t2, CAST(b AS TEXT) AS t3, COUNT(*) AS n
  FROM s GROUP BY CAST(TRUE AS TEXT), FALSE::TEXT, CAST(b AS TEXT);
SELECT * FROM booltext ORDER BY t3;
-- a fractional constant cast to INT rounds as a column does (NUMERIC and decimal literals half away
-- from zero, REAL half to even); it was refused with "expected INT, got 2.5"
CREATE STREAM c (k INT KEY, n NUMERIC, r REAL);
INSERT INTO c VALUES (1, 2.5, 2.5), (2, -2.5, -2.5), (3, 0.5, 0.5);
CREATE CONTINUOUS VIEW rounds AS SELECT k, CAST(2.5 AS BIGINT) AS c1, CAST(CAST(-2.5 AS NUMERIC) AS INT) AS c2, CAST(n AS BIGINT) AS c3,
  CAST(r AS BIGINT) AS c4, CAST(CAST(0.5 AS DOUBLE PRECISION) AS INT) AS c5, (-2.5)::REAL::INT AS c6 FROM c;
SELECT * FROM rounds ORDER BY k;
-- NUMERIC join and IN keys compare by value with INT, REAL and other NUMERICs (10.00 = 10, 2.50 = 2.5,
-- 1.5 = 1.50); a NUMERIC key never matched an INT or a REAL before
CREATE STREAM nk (a INT KEY, n NUMERIC, r REAL);
CREATE CONTINUOUS VIEW nk_round AS SELECT a, ROUND(a, 2) AS ra FROM nk;
CREATE CONTINUOUS VIEW nk_join1 AS SELECT y.a AS c0, x.ra AS c1 FROM nk_round AS x LEFT JOIN nk y ON x.ra = y.a;
CREATE CONTINUOUS VIEW nk_join2 AS SELECT x.a AS c0, y.a AS c1 FROM nk x JOIN nk y ON x.n = y.r;
CREATE CONTINUOUS VIEW nk_in AS SELECT a FROM nk o WHERE o.n IN (SELECT a FROM nk);
INSERT INTO nk VALUES (10, 2.50, 2.5), (11, 0.10, 0.1), (5, 5.000, 3), (3, 0.3333333333333333333, 7), (4, 1.50, 1.5);
SELECT * FROM nk_join1 ORDER BY c1;
SELECT * FROM nk_join2 ORDER BY c0;
SELECT * FROM nk_in ORDER BY a;
-- SUBSTR/SUBSTRING follow PostgreSQL: a start before 1 counts positions before the string (it
-- counted from the end, as SQLite does); a negative length is an error (tests/check_expr.c)
CREATE CONTINUOUS VIEW substrs AS SELECT k, SUBSTRING('Zürich', -1, 3) AS a, SUBSTR('Hello', -3) AS b, SUBSTR('Hello', 0, 2) AS c,
  SUBSTR('Hello', 4, 100) AS d FROM s WHERE k = 1;
SELECT * FROM substrs;
-- a SELECT over a view reads a NUMERIC column as a number in comparisons, ORDER BY and aggregates
-- (the view keeps its exact text: ORDER BY put 10.25 before 9.50, WHERE x > 9.6 kept nothing,
-- MAX gave 9.50); a bare column keeps its digits
CREATE STREAM pn (id INT KEY, x NUMERIC(10,2));
CREATE CONTINUOUS VIEW pnv AS SELECT id, x FROM pn;
INSERT INTO pn VALUES (1, 9.5), (2, 10.25), (3, 100), (4, -3);
SELECT * FROM pnv ORDER BY x;
SELECT * FROM pnv WHERE x > 9.6 ORDER BY id;
SELECT MAX(x) AS m, MIN(x) AS n, SUM(x) AS s FROM pnv;
