// pg.test.mjs — the npm PostgreSQL driver (pg) against semstream serve --pg-port, as an
// application would use it: SCRAM-SHA-256 login, parameterised queries, named prepared
// statements, types parsed by the driver, errors with SQLSTATE and position, a pool, a
// cursor over SUBSCRIBE, and the read-only role. Run by tests/pg/run.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';

const cfg = (password) => ({
  host: '127.0.0.1', port: Number(process.env.SS_PG_PORT), user: 'app', database: 'semstream',
  password: password ?? process.env.SS_PG_PASSWORD,
});

test('parameterised queries, prepared statements and types', async (t) => {
  const c = new pg.Client(cfg());
  await c.connect();
  t.after(() => c.end().catch(() => {}));
  await c.query("CREATE STREAM orders (id INT KEY, customer TEXT, amount NUMERIC(10,2), qty INT, rush BOOLEAN, " +
                "price REAL, meta JSON) WITH (topic = 'orders', format = 'json')");
  await c.query('CREATE CONTINUOUS VIEW big_orders AS SELECT id, customer, amount, qty, rush, price, meta ' +
                'FROM orders WHERE qty >= 2');
  const ins = 'INSERT INTO orders VALUES ($1, $2, $3, $4, $5, $6, $7)';
  let r = await c.query(ins, [1, "O'Brien", '12.50', 3, true, 0.1, JSON.stringify({ tag: 'a' })]);
  assert.equal(r.command, 'INSERT');
  assert.equal(r.rowCount, 1);
  await c.query(ins, [2, 'Ng', '7.25', 1, false, 2.5, null]);
  await c.query(ins, [3, 'Ada', '100.00', 5, false, 1e-3, '[1,2]']);

  r = await c.query('SELECT id, customer, amount, qty, rush, price, meta FROM big_orders WHERE qty >= $1 ' +
                    'ORDER BY id', [2]);
  assert.equal(r.rowCount, 2);
  assert.deepEqual(r.fields.map((f) => f.dataTypeID), [20, 25, 1700, 20, 16, 701, 114]);
  assert.deepEqual(r.rows[0], { id: '1', customer: "O'Brien", amount: '12.50', qty: '3', rush: true, price: 0.1,
                                meta: { tag: 'a' } });
  assert.deepEqual(r.rows[1].meta, [1, 2]);
  assert.equal(r.rows[1].price, 0.001);

  const named = { name: 'by_customer', text: 'SELECT id FROM big_orders WHERE customer = $1', values: ['Ada'] };
  assert.deepEqual((await c.query(named)).rows, [{ id: '3' }]);
  named.values = ["O'Brien"];
  assert.deepEqual((await c.query(named)).rows, [{ id: '1' }]);
  // a string that would end the literal and start a statement stays a value
  r = await c.query('SELECT count(*) AS n FROM big_orders WHERE customer = $1', ["x'; DROP VIEW big_orders; --"]);
  assert.equal(r.rows[0].n, '0');
  r = await c.query('SELECT count(*) AS n FROM big_orders');
  assert.equal(r.rows[0].n, '2');
});

test('errors carry SQLSTATE and position', async (t) => {
  const c = new pg.Client(cfg());
  await c.connect();
  t.after(() => c.end().catch(() => {}));
  await assert.rejects(c.query('SELECT id, nope FROM big_orders'), (e) => {
    assert.equal(e.code, '42703');
    assert.equal(e.position, '12');
    assert.match(e.message, /unknown column "nope"/);
    return true;
  });
  await assert.rejects(c.query('SELEC 1'), (e) => e.code === '42601' && e.position === '1');
  assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, '1'); // the session goes on
});

test('a pool and a cursor over SUBSCRIBE', async (t) => {
  const pool = new pg.Pool({ ...cfg(), max: 4 });
  t.after(() => pool.end().catch(() => {}));
  const counts = await Promise.all([1, 2, 3, 4, 5, 6].map(() => pool.query('SELECT count(*) AS n FROM big_orders')));
  assert.ok(counts.every((r) => r.rows[0].n === '2'));
  const c = await pool.connect();
  await c.query('BEGIN');
  await c.query('DECLARE cur CURSOR FOR SUBSCRIBE big_orders');
  let r = await c.query("FETCH ALL cur WITH (timeout = '2s')");
  assert.equal(r.rowCount, 2);
  assert.deepEqual(r.fields.slice(0, 3).map((f) => f.name), ['mz_timestamp', 'mz_diff', 'id']);
  await pool.query('INSERT INTO orders VALUES ($1, $2, $3, $4, $5, $6, $7)', [4, 'Bo', '1.00', 9, true, 1, null]);
  r = await c.query('FETCH ALL cur');
  assert.equal(r.rowCount, 1);
  assert.equal(r.rows[0].mz_diff, '1');
  assert.equal(r.rows[0].customer, 'Bo');
  await c.query('COMMIT');
  c.release();
});

test('the read-only role reads but does not change', async (t) => {
  const c = new pg.Client(cfg(process.env.SS_PG_RO_PASSWORD));
  await c.connect();
  t.after(() => c.end().catch(() => {}));
  assert.equal((await c.query('SELECT count(*) AS n FROM big_orders')).rows[0].n, '3');
  await assert.rejects(c.query('DROP VIEW big_orders'), (e) => e.code === '42501');
  await assert.rejects(c.query('INSERT INTO orders VALUES ($1, $2, $3, $4, $5, $6, $7)', [5, 'x', '1', 1, true, 1,
    null]), (e) => e.code === '42501');
  const bad = new pg.Client(cfg('wrong password'));
  await assert.rejects(bad.connect(), (e) => e.code === '28P01');
});
