-- Expressions, names and literals in their canonical rendering.
select a+b*c, (a+b)*c, a-(b-c), - -x, -(3), +4, not a=b, not (a or b) from t;
SELECT x IS NOT NULL AND y IS NULL, (a = b) IS NULL, a NOT LIKE 'x%', a <> b, a == b FROM t;
SELECT lower(t.name) || '!' AS shout, count(DISTINCT t.x), count(*), coalesce(a, 'z'), now() FROM t;
SELECT "select", "a b", "q""x", key, view, model, "Mixed" FROM "my stream" AS "from";
SELECT 1.5e3, .5, 2., 1e-9, 9223372036854775807, 99999999999999999999, 'it''s', TRUE, FALSE, NULL;
SELECT café, t.ñ FROM données;
/* semantic calls with options */
SELECT SEM_MAP('{a}''s {b.c}', model=m, max_tokens=+40, temperature=-0.25, stop="END") AS m FROM b;
CREATE STREAM s (key TEXT PRIMARY KEY, view INT, "order" BIGINT, x VARCHAR(10)) WITH (partitions = 3, compact = true, x = null);
CREATE CONTINUOUS VIEW IF NOT EXISTS g WITH (sink_topic = 'g') AS LLM_GENERATE(prompt = 'Reply to {message}', context = STREAM(chat), key = user_id, retrieve = 3, maintain = 'recompute');
EXPLAIN LLM_GENERATE(PROMPT = "p", CONTEXT = STREAM("my stream"));
INSERT INTO s VALUES ('k', -1, 2, 'x'); SET t = -2.5; SET u = "quoted"; SET w = STREAM(s)
