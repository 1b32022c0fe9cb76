/* A stream of papers and the semantic views over it. */
CREATE STREAM IF NOT EXISTS papers (id INT KEY, title TEXT, abstract TEXT, year INT, score REAL)
  WITH (topic='papers', format='json', ttl='1 hour', ttl_column=year);
CREATE MODEL small WITH (backend='local', path='../shared/models/stories260K.gguf');
SET default_model = small;
CREATE CONTINUOUS VIEW ml_papers WITH (sink_topic='ml_out') AS
  SELECT p.id, p.title, SEM_MAP('Summarize {p.title}: {p.abstract}', model='small', max_tokens=40) AS summary
  FROM papers AS p
  WHERE SEM_FILTER('Is {abstract} about machine learning?') AND p.year >= 2020;
CREATE CONTINUOUS VIEW themes AS
  SELECT year, COUNT(*) AS n, SEM_AGG('Common theme of {title}') AS theme FROM papers GROUP BY year HAVING COUNT(*) > 1;
CREATE CONTINUOUS VIEW best AS SELECT id, title FROM papers ORDER BY SEM_SCORE('Novelty of {title}') DESC LIMIT 5;
CREATE CONTINUOUS VIEW ranked AS SELECT * FROM papers ORDER BY SEM_RANK('Which of {title} is best?') LIMIT 3;
CREATE CONTINUOUS VIEW fit AS
  SELECT r.name, j.title FROM resumes r SEM_JOIN jobs j ON 'Does {r.summary} fit {j.description}?'
  WITH (join_candidates=10, threshold=0.3) LEFT JOIN companies c ON c.id = j.company_id;
INSERT INTO papers (id, title, abstract, year, score) VALUES (1, 'Attention', 'It''s all you need', 2017, 0.9), (2, 'x', NULL, 2021, -1.5e-3);
DELETE FROM papers WHERE id = 2 OR title IS NULL;
SELECT DISTINCT title, summary FROM ml_papers WHERE title LIKE '%net%' AND NOT (score < 0.5) ORDER BY title LIMIT 10;
SUBSCRIBE ml_papers; EXPLAIN ml_papers; EXPLAIN VIEW themes; EXPLAIN SELECT a || b FROM t;
SHOW STREAMS; SHOW VIEWS; SHOW MODELS; DROP VIEW IF EXISTS best; DROP STREAM papers; DROP MODEL small
