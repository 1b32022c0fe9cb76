-- bootstrap.sql — a view created after its stream has been consumed by other
-- views sees the whole history (keyed stream: from the source's state; stream
-- without a key: replayed from the topic), and DROP / re-CREATE starts afresh.
CREATE STREAM readings (sensor TEXT KEY, value INT);
CREATE STREAM log (line TEXT, level TEXT);
CREATE CONTINUOUS VIEW all_readings AS SELECT sensor, value FROM readings;
CREATE CONTINUOUS VIEW errors AS SELECT line FROM log WHERE level = 'error';
INSERT INTO readings VALUES ('a', 1), ('b', 2), ('c', 3);
-- (the update below is a batch of its own, whatever the timing: SHOW VIEWS' deltas are exact)
SELECT COUNT(*) AS n FROM all_readings;
INSERT INTO readings VALUES ('a', 10);
INSERT INTO log VALUES ('disk full', 'error'), ('started', 'info'), ('disk full', 'error');
SELECT * FROM all_readings;
SELECT * FROM errors;
CREATE CONTINUOUS VIEW high AS SELECT sensor, value FROM readings WHERE value >= 3;
CREATE CONTINUOUS VIEW levels AS SELECT level, COUNT(*) AS n FROM log GROUP BY level;
SELECT * FROM high;
SELECT * FROM levels;
INSERT INTO readings VALUES ('d', 7);
INSERT INTO log VALUES ('slow', 'warn');
SELECT * FROM high;
SELECT * FROM levels;
DROP VIEW high;
SELECT * FROM high;
CREATE CONTINUOUS VIEW high AS SELECT sensor FROM readings WHERE value > 5;
SELECT * FROM high;
SELECT COUNT(*) AS n FROM errors;
-- a view over a view is fed the upstream view's rows in a first batch of its own; a
-- semantic operator there waits for its model answers outside any transaction
CREATE CONTINUOUS VIEW judged AS SELECT sensor, SEM_MAP('Describe sensor {sensor}', max_tokens = 3) AS note FROM all_readings;
SELECT sensor FROM judged;
SHOW VIEWS;
