-- queries.sql — query structures as continuous views, maintained under inserts, updates and
-- deletes: set operations, WITH, FROM subqueries, outer and USING joins, IN / NOT IN / EXISTS
-- and scalar subqueries, a per-group top-N, OFFSET; and snapshot reads using the same syntax.
CREATE STREAM orders (id INT KEY, customer TEXT, amount INT, region TEXT);
CREATE STREAM customers (name TEXT KEY, region TEXT, vip BOOLEAN);
CREATE STREAM refunds (order_id INT KEY, amount INT);
CREATE CONTINUOUS VIEW regions AS
    SELECT region FROM orders UNION SELECT region FROM customers;
CREATE CONTINUOUS VIEW quiet_customers AS
    SELECT name FROM customers EXCEPT SELECT customer FROM orders;
CREATE CONTINUOUS VIEW per_region AS
    WITH kept AS (SELECT * FROM orders WHERE id NOT IN (SELECT order_id FROM refunds))
    SELECT region, COUNT(*) AS n, SUM(amount) AS total FROM kept GROUP BY region;
CREATE CONTINUOUS VIEW vip_orders AS
    SELECT id, customer FROM orders o
    WHERE EXISTS (SELECT 1 FROM customers c WHERE c.name = o.customer AND c.vip);
CREATE CONTINUOUS VIEW above_average AS
    SELECT id, customer, amount FROM orders o
    WHERE amount > (SELECT AVG(amount) FROM orders i WHERE i.region = o.region);
CREATE CONTINUOUS VIEW all_people AS
    SELECT o.id, c.name, COALESCE(o.region, c.region) AS region
    FROM orders o FULL JOIN customers c ON o.customer = c.name;
CREATE CONTINUOUS VIEW top2 AS
    SELECT region, id, amount FROM
        (SELECT region, id, amount, ROW_NUMBER() OVER (PARTITION BY region ORDER BY amount DESC, id) AS rn
         FROM orders) ranked
    WHERE rn <= 2;
CREATE CONTINUOUS VIEW second_page AS SELECT id, amount FROM orders ORDER BY amount DESC, id LIMIT 2 OFFSET 2;
INSERT INTO customers VALUES ('ann', 'north', TRUE), ('bob', 'south', FALSE), ('cy', 'east', TRUE);
INSERT INTO orders VALUES (1, 'ann', 250, 'north'), (2, 'bob', 40, 'south'), (3, 'ann', 100, 'north'),
                          (4, 'dee', 999, 'west'), (5, 'bob', 75, 'south'), (6, 'ann', 20, 'north');
INSERT INTO refunds VALUES (4, 999);
SELECT * FROM regions;
SELECT * FROM quiet_customers;
SELECT * FROM per_region;
SELECT * FROM vip_orders;
SELECT * FROM above_average;
SELECT * FROM all_people;
SELECT * FROM top2;
SELECT * FROM second_page;
-- views created over existing data: one side of the UNION / join is an existing view, the other
-- a stream (behind a filter) read from its start
CREATE CONTINUOUS VIEW late_union AS
    SELECT region FROM per_region UNION SELECT region FROM orders WHERE amount > 500;
CREATE CONTINUOUS VIEW late_join AS
    SELECT o.id, p.n FROM orders o JOIN per_region p ON o.region = p.region WHERE o.amount > 50;
SELECT * FROM late_union;
SELECT * FROM late_join;
-- bob becomes a VIP, order 1 is refunded, order 3 moves west, cy orders, dee is deleted
INSERT INTO customers VALUES ('bob', 'south', TRUE);
INSERT INTO refunds VALUES (1, 250);
INSERT INTO orders VALUES (3, 'ann', 100, 'west'), (7, 'cy', 500, 'east');
DELETE FROM orders WHERE id = 4;
SELECT * FROM regions;
SELECT * FROM quiet_customers;
SELECT * FROM per_region;
SELECT * FROM vip_orders;
SELECT * FROM above_average;
SELECT * FROM all_people;
SELECT * FROM top2;
SELECT * FROM second_page;
SELECT * FROM late_union;
SELECT * FROM late_join;
-- snapshot reads with the same syntax
WITH big AS (SELECT * FROM per_region WHERE total > 50) SELECT region FROM big ORDER BY region;
SELECT region FROM top2 UNION SELECT region FROM per_region ORDER BY 1;
SELECT name FROM all_people WHERE name IN (SELECT customer FROM vip_orders) AND id IS NOT NULL;
SELECT r.region, (SELECT COUNT(*) FROM top2 t WHERE t.region = r.region) AS n FROM regions r;
SELECT * FROM (SELECT region, total FROM per_region) p JOIN regions USING (region);
