// console.test.mjs — the web console in headless Chromium over WebDriver (chromedriver), as a
// user would use it. Run by tests/console/run.sh, which starts serve and chromedriver.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, copyFileSync } from 'node:fs';

const WD = process.env.SS_WEBDRIVER, URL = process.env.SS_CONSOLE_URL;
const ELEM = 'element-6066-11e4-a52e-4f735466cecf';
let sid;

async function wd(method, path, body) {
  const r = await fetch(`${WD}${path}`, { method, headers: { 'Content-Type': 'application/json' },
                                          body: body === undefined ? undefined : JSON.stringify(body) });
  const j = await r.json();
  if (!r.ok) throw new Error(`${method} ${path}: ${JSON.stringify(j.value).slice(0, 400)}`);
  return j.value;
}
const s = (p) => `/session/${sid}${p}`;
const find = async (css) => (await wd('POST', s('/element'), { using: 'css selector', value: css }))[ELEM];
const js = (script, ...args) => wd('POST', s('/execute/sync'), { script, args });
async function until(what, fn, ms = 30000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}
// Clicks what css selects; the views table is re-rendered every second, so an element found
// just before a refresh may be gone by the click: find it again then (stale element reference).
async function click(css) {
  for (let i = 0; ; i++) {
    try {
      return await wd('POST', s(`/element/${await find(css)}/click`), {});
    } catch (e) {
      if (i >= 10 || !String(e.message).includes('stale element')) throw e;
    }
  }
}
async function runSql(text) {
  const box = await find('#sql');
  await wd('POST', s(`/element/${box}/clear`), {});
  await wd('POST', s(`/element/${box}/value`), { text });
  await click('#run');
}
async function shot(name, css) {
  if (css) await js(`document.querySelector(${JSON.stringify(css)}).scrollIntoView({ block: 'start' })`);
  else await js('window.scrollTo(0, 0)');
  const png = Buffer.from(await wd('GET', s(css ? `/element/${await find(css)}/screenshot` : '/screenshot')), 'base64');
  writeFileSync(`${process.env.SS_SHOTS}/${name}`, png);
  if (process.env.SS_UPDATE_DOCS === '1') copyFileSync(`${process.env.SS_SHOTS}/${name}`, `${process.env.SS_DOCS}/${name}`);
}

test('load, create a view, insert rows, see them appear', async (t) => {
  sid = (await wd('POST', '/session', { capabilities: { alwaysMatch: { browserName: 'chrome', 'goog:chromeOptions': {
    binary: '/usr/bin/chromium',
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1500,1250'] } } } })).sessionId;
  t.after(() => wd('DELETE', s('')).catch(() => {}));
  await wd('POST', s('/url'), { url: URL });
  await until('the status line', () => js("return document.getElementById('status').textContent.includes('log') && document.getElementById('status').textContent"));
  assert.equal(await js("return document.getElementById('views-empty').hidden"), false);

  await runSql("CREATE STREAM tickets (id INT KEY, title TEXT, body TEXT, priority INT) WITH (topic = 'tickets', format = 'json');\n" +
    "CREATE CONTINUOUS VIEW urgent AS SELECT id, title, priority FROM tickets WHERE priority >= 2 AND SEM_FILTER('Is this ticket about a bug? {body}', yes_prob = 0.15);\n" +
    "CREATE CONTINUOUS VIEW by_priority AS SELECT priority, COUNT(*) AS n FROM tickets GROUP BY priority;");
  await until('CREATE VIEW in the results', () => js("return document.getElementById('results').textContent.includes('CREATE VIEW')"));
  await until('the views in the table', () => js("return document.querySelectorAll('#views tbody tr').length === 2"));
  // select the semantic view: its DAG, its live table
  await click('#views tr[data-view="urgent"]');
  await until('the DAG', () => js("return document.querySelectorAll('#dag g.node').length >= 4 && [...document.querySelectorAll('#dag g.node')].map(g => g.dataset.kind).join(',')"));
  const kinds = await js("return [...document.querySelectorAll('#dag g.node')].map(g => g.dataset.kind)");
  for (const k of ['source', 'sem_filter', 'view']) assert.ok(kinds.includes(k), `DAG lacks ${k}: ${kinds}`);
  await until('the live table to stream', () => js("return document.getElementById('live-status').textContent.startsWith('streaming')"));

  await runSql("INSERT INTO tickets VALUES (1, 'crash on save', 'The app crashes with a segfault when I save', 3), " +
    "(2, 'feature request', 'Please add dark mode', 2), (3, 'typo', 'A typo on the landing page', 1), " +
    "(4, 'data loss', 'Rows vanish after an update: a bug in the sync', 3), (5, 'slow', 'Search takes seconds', 2);");
  await until('INSERT in the results', () => js("return document.getElementById('results').textContent.includes('INSERT 0 5')"));
  // more tickets, a batch at a time: incremental maintenance pays for the new rows only
  for (const [i, title, body, pri] of [[6, 'login fails', 'Login fails with error 500: a bug since 2.1', 3],
                                        [7, 'export', 'Export to CSV drops the last row: bug?', 2],
                                        [8, 'docs', 'Docs should mention the CLI flags', 2]]) {
    await new Promise((r) => setTimeout(r, 1700));
    await runSql(`INSERT INTO tickets VALUES (${i}, '${title}', '${body.replace(/'/g, "''")}', ${pri});`);
    await until(`insert ${i}`, () => js("return document.getElementById('results').textContent.includes('INSERT 0 1')"));
  }
  // rows reach the views: by_priority counts all five; the live table of urgent shows what passed the model
  const viewRows = await until('the view rows to appear', () => js(
    "const r = [...document.querySelectorAll('#views tbody tr')].find(tr => tr.dataset.view === 'by_priority');" +
    "return r && r.children[1].textContent === '3' && r.children[1].textContent"));
  assert.equal(viewRows, '3'); // priorities 1, 2, 3
  const urgentRows = await until('urgent to be computed', () => js(
    "const r = [...document.querySelectorAll('#views tbody tr')].find(tr => tr.dataset.view === 'urgent');" +
    "return r && Number(r.children[3].textContent) >= 6 && Number(r.children[1].textContent)"), 120000).catch(() => 0);
  const live = await until('the live rows', () => js(
    "const n = document.querySelectorAll('#live tbody tr').length; return n >= 1 && n"), 120000);
  assert.ok(live >= 1, 'no row in the live SUBSCRIBE table');
  assert.equal(live, urgentRows || live);
  await until('LLM calls on the DAG', () => js(
    "return [...document.querySelectorAll('#dag g.node[data-kind=sem_filter] text')].some(t => /LLM [1-9]/.test(t.textContent))"), 60000);
  await until('the chart', () => js("return document.querySelector('#chart path.inc') && document.getElementById('chart-legend').textContent.includes('incremental')"));
  await new Promise((r) => setTimeout(r, 1600)); // one more refresh for a settled picture
  await shot('console.png');

  // a SELECT in the SQL box shows a typed table; an error shows where
  await runSql('SELECT priority, n FROM by_priority ORDER BY priority;');
  await until('the SELECT table', () => js("return document.querySelector('#results table') && document.querySelectorAll('#results tbody tr').length === 3"));
  await runSql('SELECT priority, n FROM by_priority ORDER BY priority;\nSELECT nope FROM by_priority;');
  await until('the error', () => js("const e = document.querySelector('#results .error'); return e && e.textContent.includes('42703') && e.textContent.includes('^') && document.querySelectorAll('#results tbody tr').length === 3"));
  await shot('console-sql.png', '#sqlbox');

  // a delete leaves the live table (by_priority: select it, then delete a ticket)
  await click('#views tr[data-view="by_priority"]');
  await until('by_priority live rows', () => js("return document.querySelectorAll('#live tbody tr').length === 3"));
  await runSql('DELETE FROM tickets WHERE id = 3;');
  await until('the deleted group to go', () => js("return document.querySelectorAll('#live tbody tr').length === 2"));
});
