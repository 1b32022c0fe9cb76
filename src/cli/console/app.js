// app.js — the semstream web console. Talks to the serve process it came from:
//   POST /sql (Accept: application/json)   statements, SHOW VIEWS / SHOW STREAMS
//   POST /sql "SUBSCRIBE v" (x-ndjson)      the live table: {"mz_diff":n,"row":{...}} lines
//   GET /api/dag?view=v                     the operator DAG with per-operator counters
//   GET /api/status                         whether a token is needed
// A token, when the server needs one, is kept in this browser's localStorage and sent as
// "Authorization: Bearer". No external resources: everything is in the binary.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { token: localStorage.getItem('semstream-token') || '', selected: null, sub: null,
                history: {}, views: [] };

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (state.token) h.Authorization = 'Bearer ' + state.token;
  return h;
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

function svgEl(tag, attrs, text) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function sql(text) {
  const r = await fetch('/sql', { method: 'POST', headers: headers({ Accept: 'application/json' }), body: text });
  if (r.status === 401) { askToken(); throw new Error('a token is needed'); }
  const j = await r.json();
  return j;
}

function askToken() { $('tokenform').hidden = false; $('status').textContent = 'this server needs a token'; }

/* ---- the catalog: views and streams ---- */

function stateClass(s) { return 'state ' + (s || '').split(/[ :]/)[0]; }

async function refreshCatalog() {
  let j;
  try { j = await sql('SHOW VIEWS; SHOW STREAMS;'); } catch (e) { return; }
  if (j.error) { $('status').textContent = j.error.message; return; }
  const [views, streams] = j.results;
  const vb = $('views').tBodies[0];
  vb.replaceChildren();
  state.views = views.rows.map((r) => r[0]);
  for (const r of views.rows) {
    const [name, rows, lag, , calls, hits, tokens, , st] = r;
    const tr = el('tr', { 'data-view': name },
      el('td', { text: name }), el('td', { class: 'num', text: rows }), el('td', { class: 'num', text: lag }),
      el('td', { class: 'num', text: calls }), el('td', { class: 'num', text: hits }),
      el('td', { class: 'num', text: tokens }), el('td', { class: stateClass(st), text: st }));
    if (name === state.selected) tr.classList.add('selected');
    tr.addEventListener('click', () => select(name));
    vb.append(tr);
  }
  $('views-empty').hidden = views.rows.length > 0;
  const sb = $('streams').tBodies[0];
  sb.replaceChildren();
  for (const r of streams.rows) sb.append(el('tr', {}, ...r.map((c) => el('td', { text: c }))));
  if (!state.selected && state.views.length) select(state.views[state.views.length - 1]);
}

/* ---- the DAG ---- */

function layout(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map();
  const d = (n) => {
    if (depth.has(n.id)) return depth.get(n.id);
    depth.set(n.id, 0);
    const v = n.inputs.length ? 1 + Math.max(...n.inputs.map((i) => (byId.has(i) ? d(byId.get(i)) : 0))) : 0;
    depth.set(n.id, v);
    return v;
  };
  nodes.forEach(d);
  const cols = [];
  for (const n of nodes) (cols[depth.get(n.id)] = cols[depth.get(n.id)] || []).push(n);
  return { cols, depth };
}

const SEM = new Set(['sem_filter', 'sem_map', 'sem_join', 'sem_topk', 'sem_agg', 'llm_generate']);

function drawDag(dag) {
  const svg = $('dag');
  svg.replaceChildren();
  const defs = svgEl('defs');
  const m = svgEl('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
                              orient: 'auto-start-reverse' });
  m.append(svgEl('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#999' }));
  defs.append(m);
  svg.append(defs);
  if (!dag) return;
  const { cols } = layout(dag.nodes); /* levels top to bottom: inputs above their users */
  const W = 200, H = 70, gx = 24, gy = 34;
  const widest = Math.max(...cols.map((c) => c.length));
  const width = 20 + widest * (W + gx), height = 20 + cols.length * (H + gy);
  const pos = new Map();
  cols.forEach((col, li) => col.forEach((n, ri) => pos.set(n.id, {
    x: 10 + (width - 20 - col.length * (W + gx)) / 2 + ri * (W + gx), y: 10 + li * (H + gy) })));
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.style.height = `${Math.min(height, 900)}px`;
  for (const n of dag.nodes) {
    for (const i of n.inputs) {
      const a = pos.get(i), b = pos.get(n.id);
      if (!a || !b) continue;
      const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y;
      svg.append(svgEl('path', { class: 'edge', d: `M${x1},${y1} C${x1},${y1 + gy / 2} ${x2},${y2 - gy / 2} ${x2},${y2}` }));
    }
  }
  for (const n of dag.nodes) {
    const p = pos.get(n.id);
    const cls = ['node', SEM.has(n.kind) ? 'sem' : '', n.kind === 'view' ? 'view' : '', n.kind === 'source' ? 'source' : '',
                 n.upstream ? 'upstream' : ''].join(' ');
    const g = svgEl('g', { class: cls, transform: `translate(${p.x},${p.y})`, 'data-kind': n.kind });
    const title = svgEl('title', {}, n.detail);
    g.append(title, svgEl('rect', { width: W, height: H }));
    g.append(svgEl('text', { x: 8, y: 16, class: 'kind' }, `#${n.id} ${n.kind}`));
    /* what the operator does, from its EXPLAIN line: "where: ...", "prompt: ...", "topic=..." */
    const what = (n.detail || '').replace(/^#\d+ \S+\s+(in=\S+(\s+\(view [^)]*\))?\s+)?/, '').replace(/\s+--.*$/, '');
    const shown = (what || n.label || '').trim();
    g.append(svgEl('text', { x: 8, y: 31 }, shown.length > 30 ? shown.slice(0, 29) + '…' : shown));
    g.append(svgEl('text', { x: 8, y: 46 }, `rows ${n.rows_in} → ${n.rows_out}`));
    if (SEM.has(n.kind)) {
      g.append(svgEl('text', { x: 8, y: 61 }, `LLM ${n.llm_calls} · hits ${n.cache_hits} · tok ${n.tokens}`));
    } else {
      g.append(svgEl('text', { x: 8, y: 61 }, `batches ${n.batches}`));
    }
    svg.append(g);
  }
}

/* ---- calls spent vs full recomputation ---- */

function track(dag) {
  const h = state.history[dag.view] || (state.history[dag.view] = { pts: [], full: 0, lastBatches: null });
  const sem = dag.nodes.filter((n) => SEM.has(n.kind) && !n.upstream);
  const calls = sem.reduce((s, n) => s + n.llm_calls, 0);
  const seen = sem.reduce((s, n) => s + n.rows_in, 0);
  const batches = dag.nodes.filter((n) => n.kind === 'view' && !n.upstream).reduce((s, n) => s + n.batches, 0);
  if (h.lastBatches === null) { h.full = seen > 0 ? calls : 0; }
  else if (batches > h.lastBatches) { h.full += (batches - h.lastBatches) * seen; }
  h.lastBatches = batches;
  h.pts.push({ t: Date.now(), inc: calls, full: Math.max(h.full, calls) });
  if (h.pts.length > 240) h.pts.shift();
  return h;
}

function drawChart(h) {
  const svg = $('chart');
  svg.replaceChildren();
  const W = 600, H = 300, L = 48, B = 24, T = 10, R = 10;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  if (!h || !h.pts.length) return;
  const t0 = h.pts[0].t, t1 = Math.max(h.pts[h.pts.length - 1].t, t0 + 1000);
  const ymax = Math.max(1, ...h.pts.map((p) => p.full));
  const X = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R), Y = (v) => H - B - (v / ymax) * (H - B - T);
  svg.append(svgEl('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
  svg.append(svgEl('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
  for (let i = 0; i <= 4; i++) {
    const v = Math.round((ymax * i) / 4);
    svg.append(svgEl('text', { x: L - 6, y: Y(v) + 4, 'text-anchor': 'end' }, String(v)));
  }
  svg.append(svgEl('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, `${Math.round((t1 - t0) / 1000)} s`));
  const line = (key) => h.pts.map((p, i) => `${i ? 'L' : 'M'}${X(p.t).toFixed(1)},${Y(p[key]).toFixed(1)}`).join(' ');
  svg.append(svgEl('path', { class: 'full', d: line('full') }));
  svg.append(svgEl('path', { class: 'inc', d: line('inc') }));
  const last = h.pts[h.pts.length - 1];
  $('chart-legend').replaceChildren(el('span', { class: 'inc', text: `incremental: ${last.inc} calls` }),
    el('span', { class: 'full', text: `full recomputation: ${last.full} calls` }),
    el('span', { text: last.full ? `saved ${Math.round(100 * (1 - last.inc / last.full))}%` : '' }));
}

async function refreshDetail() {
  if (!state.selected) return;
  const r = await fetch('/api/dag?view=' + encodeURIComponent(state.selected), { headers: headers() });
  if (!r.ok) { $('detail-state').textContent = (await r.json()).error?.message || r.statusText; drawDag(null); return; }
  const j = await r.json();
  const dag = j.views[0];
  $('detail-state').textContent = `${dag.rows} rows · lag ${dag.lag} · ${dag.state}`;
  $('detail-state').className = stateClass(dag.state);
  drawDag(dag);
  drawChart(track(dag));
}

/* ---- the live SUBSCRIBE table ---- */

function liveKey(row) { return JSON.stringify(row); }

async function subscribe(view) {
  if (state.sub) state.sub.abort();
  const ctl = new AbortController();
  state.sub = ctl;
  const table = $('live');
  table.tHead.replaceChildren();
  table.tBodies[0].replaceChildren();
  $('live-query').textContent = `SUBSCRIBE ${view}`;
  $('live-status').textContent = 'connecting…';
  const rows = new Map();
  let cols = null;
  try {
    const r = await fetch('/sql', { method: 'POST', signal: ctl.signal, body: `SUBSCRIBE ${view};`,
                                    headers: headers({ Accept: 'application/x-ndjson' }) });
    if (!r.ok) { $('live-status').textContent = (await r.text()).slice(0, 200); return; }
    $('live-status').textContent = 'streaming';
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let nl;
      const added = [];
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.trim()) continue;
        const ev = JSON.parse(line);
        if (ev.error) { $('live-status').textContent = ev.error; continue; }
        if (!cols) {
          cols = Object.keys(ev.row);
          table.tHead.append(el('tr', {}, ...cols.map((c) => el('th', { text: c }))));
        }
        const k = liveKey(ev.row);
        const n = (rows.get(k)?.n || 0) + ev.mz_diff;
        if (n <= 0) rows.delete(k); else { rows.set(k, { row: ev.row, n }); if (ev.mz_diff > 0) added.push(k); }
      }
      const tb = table.tBodies[0];
      tb.replaceChildren();
      for (const [k, { row, n }] of rows) {
        for (let i = 0; i < n; i++) {
          const tr = el('tr', {}, ...cols.map((c) => el('td', { text: row[c] === null ? 'NULL' : typeof row[c] === 'object' ? JSON.stringify(row[c]) : String(row[c]) })));
          if (added.includes(k)) tr.classList.add('added');
          tb.append(tr);
        }
      }
      $('live-status').textContent = `streaming · ${[...rows.values()].reduce((s, x) => s + x.n, 0)} rows`;
    }
  } catch (e) {
    if (e.name !== 'AbortError') $('live-status').textContent = String(e);
  }
}

function select(view) {
  state.selected = view;
  $('detail-title').textContent = `View ${view}`;
  for (const tr of $('views').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.view === view);
  refreshDetail();
  subscribe(view);
}

/* ---- the SQL box ---- */

function resultTable(res) {
  const t = el('table', { class: 'grid' });
  t.append(el('thead', {}, el('tr', {}, ...res.columns.map((c) => el('th', { text: c.name, title: c.type })))));
  const tb = el('tbody');
  for (const r of res.rows)
    tb.append(el('tr', {}, ...r.map((v, i) => el('td', { class: ['bigint', 'double precision', 'numeric'].includes(res.columns[i].type) ? 'num' : '',
      text: v === null ? 'NULL' : typeof v === 'object' ? JSON.stringify(v) : String(v) }))));
  t.append(tb);
  return t;
}

async function run() {
  const text = $('sql').value;
  if (!text.trim()) return;
  const out = $('results');
  out.replaceChildren();
  if (/^\s*SUBSCRIBE\s+([A-Za-z_][A-Za-z0-9_]*)\s*;?\s*$/i.test(text)) {
    select(text.match(/SUBSCRIBE\s+([A-Za-z_][A-Za-z0-9_]*)/i)[1]);
    return;
  }
  $('run').disabled = true;
  try {
    const j = await sql(text);
    for (const res of j.results || []) {
      const box = el('div', { class: 'result' });
      if (res.columns) box.append(resultTable(res));
      box.append(el('div', { class: 'tag', text: res.tag }));
      out.append(box);
    }
    if (j.error) {
      const e = j.error;
      let where = '';
      if (e.line) {
        const line = text.split('\n')[e.line - 1] || '';
        where = `\n${line}\n${' '.repeat(Math.max(0, e.col - 1))}^`;
      }
      out.append(el('div', { class: 'error', text: `${e.message} (SQLSTATE ${e.sqlstate})${where}` }));
    }
  } catch (e) {
    out.append(el('div', { class: 'error', text: String(e) }));
  } finally {
    $('run').disabled = false;
  }
  await refreshCatalog();
  await refreshDetail();
}

/* ---- start ---- */

async function status() {
  const r = await fetch('/api/status', { headers: headers() });
  const s = await r.json();
  if (s.auth_required && s.role === 'none') { askToken(); return s; }
  $('status').textContent = `${s.transport} · ${s.auth_required ? 'role ' + s.role : 'no token needed (loopback)'} · v${s.version}`;
  return s;
}

$('tokenform').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.token = $('token').value;
  localStorage.setItem('semstream-token', state.token);
  $('tokenform').hidden = true;
  status().then(refreshCatalog);
});
$('run').addEventListener('click', run);
$('sql').addEventListener('keydown', (ev) => { if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) run(); });

status().then(refreshCatalog);
setInterval(() => { refreshCatalog(); refreshDetail(); }, 1500);
