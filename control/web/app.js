/* zq flower: a small single-page app over the monitor's own API (docs/monitor.md).
 * No framework and no build step: every element is made with h(), text always through
 * textContent (never innerHTML), so that task arguments and results cannot inject markup.
 * Live updates come from one EventSource (/api/events); a view re-reads what it shows
 * from the API when events say something changed (debounced), keeping its page, sort and
 * filters. */
'use strict';

const P = document.body.dataset.prefix || '';
const READ_ONLY = document.body.dataset.readonly === 'true';
const STATES = ['PENDING', 'RECEIVED', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED'];

/* ---------------------------------------------------------------- helpers */

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function link(path, text, cls) {
  return h('a', { href: P + path, 'data-link': true, class: cls }, text);
}

function json(v) {
  if (v === null || v === undefined) return '';
  return typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v);
}

function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function ago(iso) {
  if (!iso) return 'never';
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  if (s < 2) return 'just now';
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function fmtRuntime(r) {
  if (r === null || r === undefined) return '';
  if (r < 0.001) return `${(r * 1e6).toFixed(0)} µs`;
  if (r < 1) return `${(r * 1000).toFixed(1)} ms`;
  return `${r.toFixed(3)} s`;
}

function stateBadge(s) {
  return h('span', { class: 'state ' + s }, s);
}

function banner(msg) {
  const b = document.getElementById('banner');
  b.textContent = msg || '';
  b.hidden = !msg;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, opts) {
  let res;
  try {
    res = await fetch(P + path, Object.assign({ credentials: 'same-origin' }, opts || {}));
  } catch (e) {
    throw new ApiError(0, 'the monitor is not reachable');
  }
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) throw new ApiError(res.status, (body && body.error) || res.statusText);
  return body;
}

function post(path, body) {
  return api(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? '' : JSON.stringify(body),
  });
}

/* Run fn at most once per ms, the last call winning; returns the scheduler. */
function debounce(fn, ms) {
  let timer = null, pending = false, running = false;
  const go = async () => {
    timer = null;
    if (running) { pending = true; return; }
    running = true;
    try { await fn(); } catch (e) { /* the view shows its own errors */ }
    running = false;
    if (pending) { pending = false; timer = setTimeout(go, ms); }
  };
  return () => { if (!timer) timer = setTimeout(go, ms); };
}

/* ---------------------------------------------------------------- live events */

const live = {
  es: null,
  handlers: new Set(),
  start() {
    const el = document.getElementById('live');
    const es = new EventSource(P + '/api/events');
    this.es = es;
    const types = ['hello', 'tick', 'task-sent', 'task-received', 'task-started',
      'task-succeeded', 'task-failed', 'task-retried', 'task-revoked', 'worker-online',
      'worker-heartbeat', 'worker-offline'];
    for (const t of types) {
      es.addEventListener(t, (ev) => {
        let data = null;
        try { data = JSON.parse(ev.data); } catch (e) { return; }
        for (const fn of this.handlers) fn(t, data);
      });
    }
    es.onopen = () => { el.textContent = 'live'; el.className = 'live on'; };
    es.onerror = () => { el.textContent = 'reconnecting…'; el.className = 'live off'; };
  },
  on(fn) { this.handlers.add(fn); return () => this.handlers.delete(fn); },
};

/* ---------------------------------------------------------------- router */

let current = null; /* the view on screen: {stop()} */

function setNav(name) {
  for (const a of document.querySelectorAll('header nav a')) {
    a.classList.toggle('active', a.dataset.nav === name);
  }
}

function route() {
  if (current && current.stop) current.stop();
  current = null;
  banner('');
  const main = document.getElementById('main');
  main.replaceChildren();
  let path = location.pathname;
  if (P && path.startsWith(P)) path = path.slice(P.length);
  if (path === '' || path === '/' || path === '/dashboard' || path === '/workers') {
    setNav('dashboard');
    current = dashboardView(main);
  } else if (path === '/tasks') {
    setNav('tasks');
    current = tasksView(main);
  } else if (path.startsWith('/task/')) {
    setNav('tasks');
    current = taskView(main, decodeURIComponent(path.slice(6)));
  } else if (path.startsWith('/worker/')) {
    setNav('dashboard');
    current = workerView(main, decodeURIComponent(path.slice(8)));
  } else if (path === '/broker') {
    setNav('broker');
    current = brokerView(main);
  } else {
    main.append(h('h1', {}, 'Not found'), h('p', {}, link('/', 'Back to the dashboard')));
  }
}

function go(path) {
  history.pushState(null, '', P + path);
  route();
}

document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[data-link]');
  if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  ev.preventDefault();
  history.pushState(null, '', a.getAttribute('href'));
  route();
});
window.addEventListener('popstate', route);

/* ---------------------------------------------------------------- chart */

/* Succeeded / failed per second over the last `span` seconds, on a canvas. */
function rateChart(span) {
  const canvas = h('canvas', { class: 'chart', role: 'img',
    'aria-label': 'tasks succeeded and failed per second' });
  const points = new Map(); /* second -> [succeeded, failed] */
  function add(t, s, f) {
    const p = points.get(t) || [0, 0];
    p[0] += s; p[1] += f;
    points.set(t, p);
  }
  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 600, hgt = canvas.clientHeight || 200;
    canvas.width = w * dpr; canvas.height = hgt * dpr;
    const g = canvas.getContext('2d');
    g.scale(dpr, dpr);
    g.clearRect(0, 0, w, hgt);
    const now = Math.floor(Date.now() / 1000) - 1;
    for (const t of points.keys()) if (t < now - span) points.delete(t);
    let max = 1;
    for (const [s, f] of points.values()) max = Math.max(max, s, f);
    const left = 40, bottom = hgt - 18, top = 8, right = w - 8;
    const x = (t) => left + (right - left) * (1 - (now - t) / span);
    const y = (v) => bottom - (bottom - top) * (v / max);
    g.strokeStyle = '#eaeef2'; g.fillStyle = '#656d76'; g.font = '11px system-ui'; g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const v = max * i / 4, yy = y(v);
      g.beginPath(); g.moveTo(left, yy); g.lineTo(right, yy); g.stroke();
      g.fillText(v >= 10 ? Math.round(v) : v.toFixed(1).replace(/\.0$/, ''), 4, yy + 4);
    }
    for (let m = 0; m <= span; m += 60) {
      g.fillText(m ? `-${m / 60}m` : 'now', x(now - m) - (m ? 10 : 24), hgt - 4);
    }
    const series = [[0, '#1a7f37'], [1, '#cf222e']];
    for (const [k, color] of series) {
      g.strokeStyle = color; g.lineWidth = 1.6; g.beginPath();
      for (let t = now - span; t <= now; t++) {
        const p = points.get(t);
        const v = p ? p[k] : 0;
        if (t === now - span) g.moveTo(x(t), y(v)); else g.lineTo(x(t), y(v));
      }
      g.stroke();
    }
  }
  const timer = setInterval(draw, 1000);
  return {
    el: h('div', {}, canvas, h('div', { class: 'legend' },
      h('span', {}, h('span', { class: 'sw ok' }), 'succeeded / s'),
      h('span', {}, h('span', { class: 'sw bad' }), 'failed / s'))),
    load(history) { for (const [t, s, f] of history || []) { if (!points.has(t)) add(t, s, f); } draw(); },
    tick(d) { points.set(d.t, [d.succeeded, d.failed]); },
    draw,
    stop() { clearInterval(timer); },
  };
}

/* ---------------------------------------------------------------- dashboard */

function workerRows(workers) {
  const names = Object.keys(workers).sort((a, b) => {
    const oa = workers[a].online ? 0 : 1, ob = workers[b].online ? 0 : 1;
    return oa - ob || a.localeCompare(b);
  });
  return names.map((name) => {
    const w = workers[name], st = w.stats || {};
    const conc = w.concurrency || 0, active = w.active || 0;
    const load = conc ? Math.min(100, Math.round(100 * active / conc)) : 0;
    const bar = h('span', { class: 'load' }, h('span'));
    bar.firstChild.style.width = load + '%';
    return h('tr', { 'data-worker': name },
      h('td', {}, link('/worker/' + encodeURIComponent(name), name)),
      h('td', {}, h('span', { class: 'badge ' + (w.online ? 'online' : 'offline') },
        w.online ? 'Online' : 'Offline')),
      h('td', { class: 'hb', 'data-hb': w.last_heartbeat || '' }, ago(w.last_heartbeat)),
      h('td', { class: 'num active' }, w.online ? active : ''),
      h('td', { class: 'num' }, st.processed || 0),
      h('td', { class: 'num' }, st.succeeded || 0),
      h('td', { class: 'num' }, st.failed || 0),
      h('td', { class: 'num' }, st.retried || 0),
      h('td', {}, w.online ? [bar, `${active}/${conc}`] : ''),
      h('td', {}, w.online ? `${w.pool || ''} × ${conc}` : ''));
  });
}

function queueTable(queues) {
  if (!queues || !queues.length) return h('p', { class: 'empty' }, 'No queues yet.');
  return h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'Queue'), h('th', { class: 'num' }, 'Ready'),
      h('th', { class: 'num' }, 'Scheduled'), h('th', { class: 'num' }, 'Reserved'),
      h('th', { class: 'num' }, 'Consumers'))),
    h('tbody', {}, queues.map((q) => h('tr', {},
      h('td', {}, q.name), h('td', { class: 'num' }, q.ready),
      h('td', { class: 'num' }, q.scheduled), h('td', { class: 'num' }, q.reserved),
      h('td', { class: 'num' }, q.consumers)))));
}

function dashboardView(main) {
  const cards = h('div', { class: 'cards', id: 'totals' });
  const wbody = h('tbody', { id: 'workers-body' });
  const chart = rateChart(300);
  const queues = h('div', { id: 'queues' });
  const recent = h('tbody', { id: 'recent-body' });
  main.append(
    h('h1', {}, 'Dashboard'),
    cards,
    h('div', { class: 'panel' }, h('h2', {}, 'Workers'),
      h('table', { id: 'workers' },
        h('thead', {}, h('tr', {}, ['Worker', 'Status', 'Last heartbeat'].map((t) => h('th', {}, t)),
          ['Active', 'Processed', 'Succeeded', 'Failed', 'Retried'].map((t) => h('th', { class: 'num' }, t)),
          h('th', {}, 'Load'), h('th', {}, 'Pool'))),
        wbody)),
    h('div', { class: 'row2' },
      h('div', { class: 'panel' }, h('h2', {}, 'Tasks per second (last 5 minutes)'), chart.el),
      h('div', { class: 'panel' }, h('h2', {}, 'Queues'), queues)),
    h('div', { class: 'panel' }, h('h2', {}, 'Recent tasks ', link('/tasks', '(all tasks)')),
      h('table', { id: 'recent' },
        h('thead', {}, h('tr', {}, ['Name', 'UUID', 'State', 'Worker', 'Received', 'Runtime']
          .map((t) => h('th', {}, t)))),
        recent)));

  let first = true;
  async function load() {
    let s, t;
    try {
      [s, t] = await Promise.all([api('/api/stats'), api('/api/tasks?format=list&limit=10')]);
      banner('');
    } catch (e) {
      banner('Cannot read the broker: ' + e.message);
      return;
    }
    const ts = s.tasks || {};
    const card = (label, n, id) => h('div', { class: 'card', id },
      h('div', { class: 'n' }, n), h('div', { class: 'l' }, label));
    const online = Object.values(s.workers || {}).filter((w) => w.online).length;
    cards.replaceChildren(
      card('Workers online', online, 'c-online'),
      card('Active', ts.STARTED || 0, 'c-active'),
      card('Queued', (ts.PENDING || 0) + (ts.RECEIVED || 0), 'c-queued'),
      card('Processed', (ts.SUCCESS || 0) + (ts.FAILURE || 0), 'c-processed'),
      card('Succeeded', ts.SUCCESS || 0, 'c-succeeded'),
      card('Failed', ts.FAILURE || 0, 'c-failed'),
      card('Retried', s.retried || 0, 'c-retried'),
      card('Revoked', ts.REVOKED || 0, 'c-revoked'),
      card('Total', ts.total || 0, 'c-total'));
    const rows = workerRows(s.workers || {});
    wbody.replaceChildren(...(rows.length ? rows
      : [h('tr', {}, h('td', { colspan: 10, class: 'empty' }, 'No workers have been seen yet.'))]));
    queues.replaceChildren(queueTable(s.queues));
    recent.replaceChildren(...(t.tasks || []).map((r) => h('tr', { 'data-id': r.id },
      h('td', {}, r.task), h('td', { class: 'mono' }, link('/task/' + encodeURIComponent(r.id), r.id)),
      h('td', {}, stateBadge(r.state)), h('td', {}, r.worker || ''),
      h('td', {}, fmtTime(r.date_received)), h('td', {}, fmtRuntime(r.runtime)))));
    if (!t.tasks || !t.tasks.length) {
      recent.replaceChildren(h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No tasks yet.')));
    }
    if (first) { chart.load(s.history); first = false; }
  }
  const refresh = debounce(load, 400);
  const off = live.on((type, d) => {
    if (type === 'tick') {
      chart.tick(d);
      if (d.succeeded || d.failed) refresh();
    } else if (type === 'worker-heartbeat') {
      /* a heartbeat only moves its row: no request */
      const tr = wbody.querySelector(`tr[data-worker="${CSS.escape(d.hostname || '')}"]`);
      if (!tr) { refresh(); return; }
      tr.querySelector('.hb').dataset.hb = d.timestamp;
      if (typeof d.active === 'number') tr.querySelector('.active').textContent = d.active;
    } else if (type !== 'hello') {
      refresh();
    }
  });
  /* "last heartbeat" ages in place */
  const hb = setInterval(() => {
    for (const td of wbody.querySelectorAll('td.hb')) td.textContent = ago(td.dataset.hb);
  }, 1000);
  load();
  return { stop() { off(); chart.stop(); clearInterval(hb); } };
}

/* ---------------------------------------------------------------- tasks */

const COLUMNS = [
  ['name', 'Name', (r) => r.task],
  ['id', 'UUID', (r) => h('span', { class: 'mono' }, link('/task/' + encodeURIComponent(r.id), r.id))],
  ['state', 'State', (r) => stateBadge(r.state)],
  [null, 'args', (r) => json(r.args)],
  [null, 'kwargs', (r) => json(r.kwargs)],
  [null, 'Result', (r) => r.state === 'SUCCESS' ? json(r.result)
    : r.exception ? `${r.exception.type}: ${r.exception.message}` : ''],
  ['received', 'Received', (r) => fmtTime(r.date_received)],
  ['started', 'Started', (r) => fmtTime(r.date_started)],
  ['runtime', 'Runtime', (r) => fmtRuntime(r.runtime)],
  ['worker', 'Worker', (r) => r.worker ? link('/worker/' + encodeURIComponent(r.worker), r.worker) : ''],
  ['retries', 'Retries', (r) => r.retries],
  ['eta', 'ETA', (r) => fmtTime(r.eta)],
  ['expires', 'Expires', (r) => fmtTime(r.expires)],
];

/* ISO (UTC) <-> the local time of a datetime-local input */
function toLocalInput(v) {
  const d = v ? new Date(v) : null;
  if (!d || isNaN(d)) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
function fromLocalInput(v) { return v ? new Date(v).toISOString() : ''; }

function tasksView(main) {
  const q = new URLSearchParams(location.search);
  const st = {
    state: q.get('state') || '', taskname: q.get('taskname') || '', workername: q.get('workername') || '',
    search: q.get('search') || '', received_start: q.get('received_start') || '',
    received_end: q.get('received_end') || '', sort_by: q.get('sort_by') || '',
    limit: Number(q.get('limit')) || 25, offset: Number(q.get('offset')) || 0,
  };
  const sel = (name, options, value) => h('select', { name, id: 'f-' + name },
    h('option', { value: '' }, 'All'),
    options.map((o) => h('option', { value: o, selected: o === value }, o)));
  const stateSel = sel('state', STATES, st.state);
  const nameSel = sel('taskname', st.taskname ? [st.taskname] : [], st.taskname);
  const workerSel = sel('workername', st.workername ? [st.workername] : [], st.workername);
  const search = h('input', { type: 'search', id: 'f-search', placeholder: 'id, name, args, result…', value: st.search });
  const from = h('input', { type: 'datetime-local', id: 'f-from', value: toLocalInput(st.received_start) });
  const to = h('input', { type: 'datetime-local', id: 'f-to', value: toLocalInput(st.received_end) });
  const limitSel = h('select', { id: 'f-limit' }, [10, 25, 50, 100].map((n) =>
    h('option', { value: n, selected: n === st.limit }, n)));
  const thead = h('tr', {});
  const tbody = h('tbody', { id: 'tasks-body' });
  const info = h('span', { id: 'pager-info' });
  const prev = h('button', { id: 'prev', onclick: () => { st.offset = Math.max(0, st.offset - st.limit); apply(); } }, '‹ Previous');
  const next = h('button', { id: 'next', onclick: () => { st.offset += st.limit; apply(); } }, 'Next ›');
  main.append(h('h1', {}, 'Tasks'),
    h('div', { class: 'panel' },
      h('div', { class: 'filters' },
        h('label', {}, 'State', stateSel), h('label', {}, 'Name', nameSel),
        h('label', {}, 'Worker', workerSel), h('label', {}, 'Received from', from),
        h('label', {}, 'to', to), h('label', {}, 'Search', search),
        h('label', {}, 'Per page', limitSel)),
      h('div', { class: 'scroll' }, h('table', { id: 'tasks' }, h('thead', {}, thead), tbody)),
      h('div', { class: 'pager' }, prev, next, info)));

  for (const [key, label] of COLUMNS) {
    const th = h('th', { class: key ? 'sortable' : null, 'data-sort': key }, label);
    if (key) th.addEventListener('click', () => {
      st.sort_by = st.sort_by === key ? '-' + key : key;
      st.offset = 0;
      apply();
    });
    thead.append(th);
  }
  /* names and workers for the filters */
  api('/api/stats').then((s) => {
    const add = (select, names) => {
      const have = new Set([...select.options].map((o) => o.value));
      for (const n of names) if (!have.has(n)) select.append(h('option', { value: n }, n));
    };
    add(nameSel, s.task_types || []);
    add(workerSel, Object.keys(s.workers || {}).sort());
  }).catch(() => {});

  function params() {
    const p = new URLSearchParams();
    for (const k of ['state', 'taskname', 'workername', 'search', 'received_start', 'received_end', 'sort_by']) {
      if (st[k]) p.set(k, st[k]);
    }
    p.set('limit', st.limit);
    if (st.offset) p.set('offset', st.offset);
    return p;
  }
  async function load() {
    let res;
    const p = params();
    p.set('format', 'list');
    try {
      res = await api('/api/tasks?' + p.toString());
      banner('');
    } catch (e) {
      banner(e.status === 400 ? 'Filter: ' + e.message : 'Cannot list tasks: ' + e.message);
      return;
    }
    const seen = new Set([...tbody.querySelectorAll('tr[data-id]')].map((tr) => tr.dataset.id + tr.dataset.state));
    const rows = (res.tasks || []).map((r) => {
      const tr = h('tr', { 'data-id': r.id, 'data-state': r.state },
        COLUMNS.map(([, , cell]) => h('td', { class: 'clip' }, cell(r))));
      if (seen.size && !seen.has(r.id + r.state)) tr.classList.add('flash');
      return tr;
    });
    tbody.replaceChildren(...(rows.length ? rows
      : [h('tr', {}, h('td', { colspan: COLUMNS.length, class: 'empty' }, 'No tasks match.'))]));
    const total = res.total || 0;
    info.textContent = total ? `${st.offset + 1}–${Math.min(total, st.offset + rows.length)} of ${total}` : '0 tasks';
    prev.disabled = st.offset === 0;
    next.disabled = st.offset + st.limit >= total;
    for (const th of thead.children) {
      const k = th.dataset.sort;
      th.classList.toggle('sorted-asc', !!k && st.sort_by === k);
      th.classList.toggle('sorted-desc', !!k && st.sort_by === '-' + k);
    }
  }
  function apply() {
    history.replaceState(null, '', P + '/tasks?' + params().toString());
    load();
  }
  const onFilter = () => {
    st.state = stateSel.value; st.taskname = nameSel.value; st.workername = workerSel.value;
    st.search = search.value.trim();
    st.received_start = fromLocalInput(from.value);
    st.received_end = fromLocalInput(to.value);
    st.limit = Number(limitSel.value);
    st.offset = 0;
    apply();
  };
  for (const el of [stateSel, nameSel, workerSel, from, to, limitSel]) el.addEventListener('change', onFilter);
  let typing = null;
  search.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(onFilter, 300); });
  const refresh = debounce(load, 700);
  const off = live.on((type, d) => {
    if (type.startsWith('task-')) {
      /* the visible row moves at once; the page is re-read (same page, sort, filters) */
      const tr = tbody.querySelector(`tr[data-id="${CSS.escape(d.uuid || '')}"]`);
      if (tr) tr.classList.add('flash');
      refresh();
    } else if (type === 'tick' && (d.succeeded || d.failed || d.dropped)) {
      refresh();
    }
  });
  load();
  return { stop() { off(); clearTimeout(typing); } };
}

/* ---------------------------------------------------------------- task */

function kvTable(rows) {
  return h('table', { class: 'kv' }, h('tbody', {}, rows.filter(Boolean).map(([k, v]) =>
    h('tr', { 'data-field': k }, h('th', {}, k), h('td', {}, v)))));
}

function taskView(main, id) {
  const title = h('h1', {}, 'Task ', h('span', { class: 'mono' }, id));
  const actions = h('div', { class: 'actions' });
  const body = h('div', {});
  const seen = h('tbody', { id: 'events-body' });
  main.append(title, actions, body,
    h('div', { class: 'panel' }, h('h2', {}, 'Events seen while this page is open'),
      h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Time'), h('th', {}, 'Event'), h('th', {}, 'Details'))), seen)));
  const msg = h('span', { class: 'msg', id: 'action-msg' });
  async function act(path, what) {
    msg.textContent = what + '…';
    msg.className = 'msg';
    try {
      const r = await post(path);
      msg.textContent = r.message || 'done';
    } catch (e) {
      msg.textContent = e.message;
      msg.className = 'msg err';
    }
    load();
  }
  async function load() {
    let t;
    try {
      t = await api('/api/task/info/' + encodeURIComponent(id));
      banner('');
    } catch (e) {
      body.replaceChildren(h('p', { class: 'empty' }, e.status === 404
        ? 'The broker has never accepted a task with this id.' : 'Cannot read the task: ' + e.message));
      return;
    }
    const s = t.state;
    const revokable = ['PENDING', 'RECEIVED', 'RETRY'].includes(s);
    actions.replaceChildren(
      h('button', { id: 'revoke', class: 'danger', disabled: READ_ONLY || !revokable,
        title: READ_ONLY ? 'read-only mode' : 'the task will not start',
        onclick: () => act('/api/task/revoke/' + encodeURIComponent(id), 'Revoking') }, 'Revoke'),
      h('button', { id: 'terminate', class: 'danger', disabled: READ_ONLY || s !== 'STARTED',
        title: READ_ONLY ? 'read-only mode' : 'kill the running task (SIGTERM)',
        onclick: () => act('/api/task/revoke/' + encodeURIComponent(id) + '?terminate=true', 'Terminating') }, 'Terminate'),
      msg);
    const exc = t.exception ? `${t.exception.type}: ${t.exception.message}` : '';
    body.replaceChildren(
      h('div', { class: 'panel' }, kvTable([
        ['Name', t.task],
        ['UUID', h('span', { class: 'mono' }, t.id)],
        ['State', stateBadge(s)],
        ['Queue', t.queue],
        ['args', h('pre', {}, JSON.stringify(t.args, null, 2))],
        ['kwargs', h('pre', {}, JSON.stringify(t.kwargs, null, 2))],
        s === 'SUCCESS' && ['Result', h('pre', { id: 'result' }, JSON.stringify(t.result, null, 2))],
        exc && ['Exception', h('pre', { id: 'exception' }, exc)],
        t.traceback && ['Traceback', h('pre', {}, t.traceback)],
        ['Retries', t.retries + (s === 'RETRY' && exc ? ` (last: ${exc})` : '')],
        ['Worker', t.worker ? link('/worker/' + encodeURIComponent(t.worker), t.worker) : '—'],
        ['ETA', fmtTime(t.eta) || '—'],
        ['Expires', fmtTime(t.expires) || '—'],
        ['Sent', fmtTime(t.date_sent)],
        ['Received', fmtTime(t.date_received) || '—'],
        ['Started', fmtTime(t.date_started) || '—'],
        ['Done', fmtTime(t.date_done) || '—'],
        ['Runtime', fmtRuntime(t.runtime) || '—'],
        ['Parent', t.parent_id ? link('/task/' + encodeURIComponent(t.parent_id), t.parent_id, 'mono') : '—'],
        ['Root', t.root_id && t.root_id !== t.id ? link('/task/' + encodeURIComponent(t.root_id), t.root_id, 'mono') : '(this task)'],
        ['Children', (t.children || []).length
          ? h('ul', { class: 'plain' }, t.children.map((c) => h('li', {},
            link('/task/' + encodeURIComponent(c.id), c.id, 'mono'), ' ', c.name, ' ', stateBadge(c.state))))
          : '—'],
      ])));
  }
  const refresh = debounce(load, 200);
  const off = live.on((type, d) => {
    if (!type.startsWith('task-') || d.uuid !== id) return;
    const details = Object.entries(d).filter(([k]) => !['type', 'timestamp', 'uuid', 'name'].includes(k))
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
    seen.prepend(h('tr', {}, h('td', {}, fmtTime(d.timestamp)), h('td', {}, type), h('td', { class: 'mono' }, details)));
    refresh();
  });
  load();
  return { stop() { off(); } };
}

/* ---------------------------------------------------------------- worker */

function listOrEmpty(items, render) {
  return items && items.length ? h('ul', { class: 'plain' }, items.map((x) => h('li', {}, render(x))))
    : h('span', { class: 'empty' }, '- empty -');
}

function workerView(main, name) {
  const body = h('div', {});
  const actions = h('div', { class: 'actions' });
  const msg = h('span', { class: 'msg' });
  main.append(h('h1', {}, 'Worker ', name), actions, body);
  async function load() {
    let r;
    try {
      r = await api('/api/workers?refresh=1&workername=' + encodeURIComponent(name));
      banner('');
    } catch (e) {
      body.replaceChildren(h('p', { class: 'empty' }, e.status === 404
        ? 'No worker of this name is online or has ever ended a task.' : 'Cannot read workers: ' + e.message));
      return;
    }
    const w = r[name] || {};
    const st = w.stats || {};
    const insp = w.inspect || null;
    const enc = encodeURIComponent(name);
    /* zq workers' control socket answers inspection only (docs/management.md): no
     * shutdown or pool buttons until it offers them (the API routes answer 501) */
    actions.replaceChildren(link('/tasks?workername=' + enc, 'Tasks of this worker'), msg);
    const sections = [
      h('div', { class: 'panel' }, h('h2', {}, 'Status'), kvTable([
        ['Status', h('span', { class: 'badge ' + (w.online ? 'online' : 'offline') }, w.online ? 'Online' : 'Offline')],
        ['Last heartbeat', `${fmtTime(w.last_heartbeat)} (${ago(w.last_heartbeat)})`],
        w.online && ['Hostname / pid', `${w.hostname} / ${w.pid}`],
        w.online && ['Pool', `${w.pool}, concurrency ${w.concurrency}, prefetch ${w.prefetch}`],
        w.online && ['Queues', (w.queues || []).join(', ')],
        w.online && ['Started', fmtTime(w.started)],
        w.online && ['Version', w.sw_ver],
        w.online && ['Active / held', `${w.active} / ${w.held}`],
        ['Processed', st.processed || 0],
        ['Succeeded', st.succeeded || 0],
        ['Failed', st.failed || 0],
        ['Retried', st.retried || 0],
      ])),
      h('div', { class: 'panel' }, h('h2', {}, 'Registered tasks'),
        listOrEmpty(w.tasks, (t) => link('/tasks?taskname=' + encodeURIComponent(t), t))),
    ];
    if (w.online) {
      if (insp) {
        for (const key of ['active', 'reserved', 'scheduled', 'revoked', 'active_queues', 'stats', 'conf']) {
          if (!(key in insp)) continue;
          sections.push(h('div', { class: 'panel', id: 'inspect-' + key }, h('h2', {}, key),
            insp[key] === null ? h('span', { class: 'empty' }, 'no answer')
              : h('pre', {}, JSON.stringify(insp[key], null, 2))));
        }
      } else {
        sections.push(h('div', { class: 'panel' }, h('h2', {}, 'Live inspection'),
          h('p', { class: 'empty' }, 'This worker announced no control socket.')));
      }
    }
    body.replaceChildren(...sections);
  }
  const refresh = debounce(load, 1500);
  const off = live.on((type, d) => { if (d.hostname === name && type !== 'tick') refresh(); });
  load();
  return { stop() { off(); } };
}

/* ---------------------------------------------------------------- broker */

function brokerView(main) {
  const body = h('div', {});
  main.append(h('h1', {}, 'Broker'), body);
  async function load() {
    let s;
    try {
      s = await api('/api/stats');
      banner('');
    } catch (e) {
      banner('Cannot read the broker: ' + e.message);
      return;
    }
    const m = s.monitor || {}, ts = s.tasks || {};
    body.replaceChildren(
      h('div', { class: 'panel' }, kvTable([
        ['Broker', m.broker],
        ['Started', fmtTime(s.broker_started)],
        ['Events', m.events_connected ? 'subscribed' : 'not connected'],
        ['Events published', s.broker_events],
        ['Mode', m.read_only ? 'read-only' : 'read-write'],
      ])),
      h('div', { class: 'panel' }, h('h2', {}, 'Queues'), queueTable(s.queues)),
      h('div', { class: 'panel' }, h('h2', {}, 'Tasks by state'),
        h('table', {}, h('tbody', {}, STATES.map((k) => h('tr', {},
          h('th', {}, link('/tasks?state=' + k, k)), h('td', { class: 'num' }, ts[k] || 0)))))));
  }
  const refresh = debounce(load, 1000);
  const off = live.on((type) => { if (type !== 'worker-heartbeat' && type !== 'hello') refresh(); });
  load();
  return { stop() { off(); } };
}

/* ---------------------------------------------------------------- start */

document.getElementById('ro-badge').hidden = !READ_ONLY;
live.start();
route();
