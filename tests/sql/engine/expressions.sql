-- expressions.sql — CASE, CAST/::, IN, BETWEEN, IS DISTINCT FROM, ILIKE, LIKE ESCAPE, NUMERIC, JSON,
-- string/math/regex/json functions (PostgreSQL semantics), type errors at CREATE, run-time errors.
CREATE STREAM orders (id INT KEY, amount NUMERIC(10,2), status TEXT, payload JSON, qty INT, price REAL);
INSERT INTO orders VALUES (1, 12.345, 'paid', '{"customer":"ann","items":[{"sku":"A1"},{"sku":"B2"}],"n":1.50}', 2, 0.5),
  (2, 0.1, 'new', '{"customer":"bob","items":[]}', 3, NULL), (3, 7.5, 'Pending_x', '{"tags":["a","b"]}', 7, 2.25),
  (4, NULL, NULL, NULL, NULL, NULL);
CREATE VIEW sized AS SELECT id, CASE WHEN amount > 10 THEN 'big' WHEN amount > 5 THEN 'mid' ELSE 'small' END AS size,
  CASE qty WHEN 2 THEN 'two' WHEN 3 THEN 'three' END AS word FROM orders;
SELECT * FROM sized ORDER BY id;
CREATE VIEW exact AS SELECT id, amount, amount * 3 AS triple, amount / 3 AS third, amount + 0.1 AS plus,
  amount::INT AS rounded, CAST(amount AS NUMERIC(10,1)) AS one_digit, ROUND(amount, 1) AS r1, FLOOR(amount) AS fl,
  amount % 2 AS m FROM orders;
SELECT * FROM exact ORDER BY id;
CREATE VIEW preds AS SELECT id, qty IN (2, 7) AS in27, qty NOT IN (2, NULL) AS notin, qty BETWEEN 3 AND 7 AS btw,
  qty NOT BETWEEN 3 AND 7 AS nbtw, price IS DISTINCT FROM NULL AS has_price, price IS NOT DISTINCT FROM 0.5 AS half,
  status LIKE 'p%' AS lk, status ILIKE 'p%' AS ilk, status LIKE '%\_x' AS esc1, status LIKE '%!_x' ESCAPE '!' AS esc2
  FROM orders;
SELECT * FROM preds ORDER BY id;
CREATE VIEW docs AS SELECT id, payload->>'customer' AS customer, payload->'items'->1->>'sku' AS sku2,
  payload->'items'->-1 AS last_item, json_array_length(payload->'items') AS nitems, json_typeof(payload->'n') AS t,
  payload->>'n' AS n_text, json_extract_path_text(payload, 'tags', '1') AS tag1
  FROM orders WHERE payload IS NOT NULL;
SELECT * FROM docs ORDER BY id;
CREATE VIEW strs AS SELECT id, CONCAT(status, '-', qty) AS c, CONCAT_WS('/', status, NULL, qty) AS cws,
  POSITION('e' IN status) AS pos, STRPOS(status, 'd') AS sp, LEFT(status, 2) AS l2, RIGHT(status, -2) AS r2,
  LPAD(status, 6, '*') AS lp, RPAD(status, 6) || '|' AS rp, SPLIT_PART('a,b,c', ',', qty) AS part, REVERSE(status) AS rev,
  INITCAP('hello wORLD') AS ic, REPLACE(status, 'a', 'A') AS rep,
  regexp_replace(status, '[aeiou]', '#', 'g') AS rx_all, regexp_replace(status, '(.)(.)', '\2\1') AS rx_swap,
  regexp_match(status, '([a-z])([a-z])') AS rx_m, regexp_like(status, '^P', 'i') AS rx_like
  FROM orders;
SELECT * FROM strs ORDER BY id;
CREATE VIEW maths AS SELECT id, ABS(-qty) AS a, SIGN(price - 1) AS s, CEIL(price) AS ce, SQRT(qty) AS sq,
  POWER(qty, 2) AS pw, EXP(0) AS e0, LN(1) AS ln1, LOG(100) AS lg, LOG(2, 8) AS lg2, MOD(qty, 4) AS md,
  GREATEST(qty, 3, NULL) AS g, LEAST(qty, 3) AS le, NULLIF(qty, 3) AS nf, COALESCE(price, 0) AS co FROM orders;
SELECT * FROM maths ORDER BY id;
-- grouping by and filtering on expressions, and a view over a view's computed column
CREATE VIEW by_size AS SELECT size, COUNT(*) AS n FROM sized GROUP BY size;
SELECT * FROM by_size ORDER BY size;
CREATE VIEW grouped AS SELECT CASE WHEN qty > 2 THEN 'many' ELSE 'few' END AS bucket, COUNT(*) AS n
  FROM orders WHERE qty IS NOT NULL GROUP BY CASE WHEN qty > 2 THEN 'many' ELSE 'few' END;
SELECT * FROM grouped ORDER BY bucket;
-- type errors at CREATE, with line:col
CREATE VIEW bad1 AS SELECT CASE WHEN qty > 1 THEN 'x' ELSE qty END FROM orders;
CREATE VIEW bad2 AS SELECT id FROM orders WHERE status > 5;
CREATE VIEW bad3 AS SELECT id FROM orders WHERE qty = 'abc';
CREATE VIEW bad4 AS SELECT CAST('12x' AS INT) FROM orders;
CREATE VIEW bad5 AS SELECT id FROM orders WHERE qty IN 3;
CREATE VIEW bad6 AS SELECT CAST(amount AS NUMERIC(2,3)) FROM orders;
CREATE VIEW bad7 AS SELECT payload->>1.5 FROM orders;
CREATE VIEW bad8 AS SELECT SUM(amount) FROM orders;
-- a run-time error names the view and the row
CREATE VIEW ratio AS SELECT id, 100 / (qty - 2) AS r FROM orders;
SELECT * FROM ratio;
