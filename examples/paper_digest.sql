-- paper_digest.sql — the product example.
--
-- A stream of paper records (insert/update/delete deltas on topic `papers`)
-- feeds two continuous views:
--   db_papers: recent papers the model judges to be about database systems,
--              each with a one-sentence summary written by the model;
--   digest:    one model-written digest per year of those papers, maintained
--              as a summary tree so a new paper re-summarises only its branch.
-- Every change of either view is published to its sink topic.

CREATE STREAM papers (
    id       INT KEY,
    title    TEXT,
    abstract TEXT,
    year     INT,
    venue    TEXT
) WITH (topic = 'papers', format = 'json');

-- Cheap predicates run first: only papers from 2018 on ever reach the model.
CREATE CONTINUOUS VIEW db_papers WITH (sink_topic = 'db_papers') AS
SELECT id, title, year, venue,
       SEM_MAP('Summarize this abstract in one sentence: {abstract}', max_tokens = 48) AS tldr
FROM papers
WHERE year >= 2018
  AND SEM_FILTER('Is this paper about database systems? Abstract: {abstract}');

CREATE CONTINUOUS VIEW digest WITH (sink_topic = 'paper_digest') AS
SELECT year,
       SEM_AGG('Write a short digest of these database papers: {title}: {tldr}', fan_in = 8) AS digest
FROM db_papers
GROUP BY year;
