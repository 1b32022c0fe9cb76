-- aggregates.sql — GROUP BY views maintained under inserts, updates and deletes,
-- a view reading a view, DISTINCT, and an equi-join of two streams.
CREATE STREAM sales (id INT KEY, region TEXT, product TEXT, qty INT);
CREATE STREAM products (product TEXT KEY, price INT);
CREATE CONTINUOUS VIEW by_region AS
    SELECT region, COUNT(*) AS n, SUM(qty) AS units, MIN(qty) AS smallest, MAX(qty) AS largest
    FROM sales GROUP BY region;
CREATE CONTINUOUS VIEW busy_regions AS SELECT region, units FROM by_region WHERE units > 10;
CREATE CONTINUOUS VIEW regions AS SELECT DISTINCT region FROM sales;
CREATE CONTINUOUS VIEW revenue AS
    SELECT s.id, s.product, s.qty * p.price AS revenue
    FROM sales s JOIN products p ON s.product = p.product;
INSERT INTO products VALUES ('tea', 3), ('cake', 5);
INSERT INTO sales VALUES (1, 'north', 'tea', 4), (2, 'north', 'cake', 8), (3, 'south', 'tea', 2),
                         (4, 'east', 'scone', 1);
SELECT * FROM by_region;
SELECT * FROM busy_regions;
SELECT * FROM regions;
SELECT * FROM revenue;
-- move sale 2 south, drop sale 1, reprice tea
INSERT INTO sales VALUES (2, 'south', 'cake', 8);
DELETE FROM sales WHERE id = 1;
INSERT INTO products VALUES ('tea', 4);
SELECT * FROM by_region;
SELECT * FROM busy_regions;
SELECT * FROM regions;
SELECT * FROM revenue;
SELECT region FROM by_region WHERE n = 2;
