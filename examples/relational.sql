-- relational.sql — a purely relational example (no model calls): an orders
-- stream and a customers stream, with a join, a grouped aggregate and a top-k.

CREATE STREAM orders (
    order_id    INT KEY,
    customer_id INT,
    product     TEXT,
    quantity    INT,
    price       REAL,
    status      TEXT
) WITH (topic = 'orders', format = 'json');

CREATE STREAM customers (
    customer_id INT KEY,
    name        TEXT,
    country     TEXT
) WITH (topic = 'customers', format = 'json');

-- Revenue and order count per product, over orders that were not cancelled.
CREATE CONTINUOUS VIEW product_revenue WITH (sink_topic = 'product_revenue') AS
SELECT product, COUNT(*) AS orders, SUM(quantity * price) AS revenue
FROM orders
WHERE status <> 'cancelled'
GROUP BY product;

-- Revenue per country: a join on the customer key, then an aggregate.
CREATE CONTINUOUS VIEW country_revenue WITH (sink_topic = 'country_revenue') AS
SELECT c.country, SUM(o.quantity * o.price) AS revenue, COUNT(*) AS orders
FROM orders o JOIN customers c ON o.customer_id = c.customer_id
WHERE o.status <> 'cancelled'
GROUP BY c.country
HAVING COUNT(*) >= 1;

-- The three largest orders, maintained as orders arrive, change and disappear.
CREATE CONTINUOUS VIEW top_orders WITH (sink_topic = 'top_orders') AS
SELECT order_id, customer_id, product, quantity * price AS total
FROM orders
ORDER BY total DESC
LIMIT 3;
