-- basic.sql — streams, a filter/projection view, inserts, updates (same key),
-- deletes, and snapshot SELECTs with WHERE / ORDER BY / LIMIT / aggregates.
CREATE STREAM orders (id INT KEY, customer TEXT, amount INT, status TEXT)
    WITH (topic = 'orders', format = 'json');
SHOW STREAMS;
CREATE CONTINUOUS VIEW big_orders AS
    SELECT id, customer, amount FROM orders WHERE amount >= 100 AND status <> 'cancelled';
INSERT INTO orders VALUES (1, 'ann', 250, 'new'), (2, 'bob', 40, 'new'), (3, 'cy', 100, 'new');
INSERT INTO orders (id, customer, amount, status) VALUES (4, 'dee', 999, 'cancelled');
SELECT * FROM big_orders;
-- an update is an upsert of the same key: 2 becomes big, 1 gets cancelled
INSERT INTO orders VALUES (2, 'bob', 400, 'paid'), (1, 'ann', 250, 'cancelled');
SELECT * FROM big_orders ORDER BY amount DESC;
DELETE FROM orders WHERE id = 3;
SELECT customer, amount FROM big_orders WHERE customer LIKE 'b%' OR amount < 150;
SELECT COUNT(*) AS n, SUM(amount) AS total, MAX(customer) AS last FROM big_orders;
SELECT id FROM big_orders ORDER BY id LIMIT 1;
