// flower.test.js - the web monitor in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core; never a downloaded browser). Run by tests/e2e/browser.sh, which starts a
// broker and `zq-ctl flower` and passes, in the environment:
//   FLOWER_URL   http://127.0.0.1:PORT (the monitor)
//   BROKER_URL   tcp://127.0.0.1:PORT
//   ZQ_CTL, ZQ_WORKER, PLUGINS   programs and plugin dir
//   ARTIFACTS    where screenshots go (tests/browser/artifacts/ by default)
//   WORKER_PIDFILE  where the worker's pid is written (the shell stops it too)
// The worker is started after the dashboard is open, so that it must appear live.
// Prints "ok - ..." / "FAIL - ..." lines; exits 1 when a check failed.
'use strict';

const { chromium } = require('playwright-core');
const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const env = process.env;
const BASE = env.FLOWER_URL;
const ART = env.ARTIFACTS;
const WORKER = 'br@test';
const WAIT = 20000; // ms: the longest any one condition may take
let failed = 0;
let worker = null;

function ok(cond, what) {
  console.log(`${cond ? 'ok' : 'FAIL'} - ${what}`);
  if (!cond) failed++;
}

async function check(what, fn) {
  try {
    await fn();
    ok(true, what);
  } catch (e) {
    ok(false, `${what}: ${String(e.message || e).split('\n')[0]}`);
  }
}

function ctl(...args) {
  return execFileSync(env.ZQ_CTL, ['--broker', env.BROKER_URL, ...args], { encoding: 'utf8' }).trim();
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ART, name), fullPage: true });
}

async function main() {
  fs.mkdirSync(ART, { recursive: true });
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'zq-chromium-'));
  const context = await chromium.launchPersistentContext(userDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 900 },
  });
  const errors = [];
  try {
    const page = context.pages()[0] || await context.newPage();
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.setDefaultTimeout(WAIT);

    await check('the dashboard loads and goes live', async () => {
      await page.goto(BASE + '/');
      await page.waitForSelector('#live.on');
      await page.waitForSelector('#totals .card');
    });
    await shot(page, '01-dashboard-empty.png');

    // a worker starts now: its row must appear without a reload
    worker = spawn(env.ZQ_WORKER, ['--broker', env.BROKER_URL, '--plugins', env.PLUGINS,
      '-n', WORKER, '-c', '2'], { stdio: 'ignore' });
    fs.writeFileSync(env.WORKER_PIDFILE, String(worker.pid));
    await check('a worker that just started appears online without a reload', async () => {
      await page.waitForSelector(`#workers-body tr[data-worker="${WORKER}"] .badge.online`);
    });
    await shot(page, '02-dashboard-worker.png');

    const id = ctl('call', 'tasks.add', '20', '22');
    await check('a task just sent appears in the dashboard, SUCCESS, without a reload', async () => {
      await page.waitForSelector(`#recent-body tr[data-id="${id}"] .state.SUCCESS`);
    });
    await check('the counters moved', async () => {
      await page.waitForFunction(() => Number(document.querySelector('#c-succeeded .n').textContent) >= 1);
    });
    await shot(page, '03-dashboard-task.png');

    await check('its task page opens from the dashboard with every field', async () => {
      // the live table may re-render the row between finding the link and clicking it
      // (a later event for the same task): click again until the page changes
      for (let i = 0; ; i++) {
        await page.click(`#recent-body tr[data-id="${id}"] a`);
        try {
          await page.waitForURL(`**/task/${id}`, { timeout: 5000 });
          break;
        } catch (e) {
          if (i >= 3) throw e;
        }
      }
      await page.waitForSelector('[data-field="State"] .state.SUCCESS');
      const result = await page.textContent('#result');
      if (result.trim() !== '42') throw new Error(`result shows ${result}`);
      for (const f of ['Name', 'UUID', 'args', 'kwargs', 'Worker', 'Sent', 'Received', 'Started', 'Done', 'Runtime', 'Root', 'Children']) {
        if (!await page.$(`[data-field="${f}"]`)) throw new Error(`no ${f}`);
      }
    });
    await shot(page, '04-task-page.png');

    await check('the tasks page keeps its sort while new tasks arrive live', async () => {
      await page.click('header nav a[data-nav="tasks"]');
      await page.waitForSelector(`#tasks-body tr[data-id="${id}"]`);
      await page.click('th[data-sort="name"]');
      await page.waitForSelector('th.sorted-asc[data-sort="name"]');
      if (!page.url().includes('sort_by=name')) throw new Error(`url ${page.url()}`);
      const id2 = ctl('call', 'tasks.fail', 'boom');
      await page.waitForSelector(`#tasks-body tr[data-id="${id2}"] .state.FAILURE`);
      if (!page.url().includes('sort_by=name')) throw new Error('the sort was lost');
      await page.waitForSelector('th.sorted-asc[data-sort="name"]');
    });
    await check('filtering by state', async () => {
      await page.selectOption('#f-state', 'FAILURE');
      await page.waitForFunction(() => {
        const rows = [...document.querySelectorAll('#tasks-body tr[data-id]')];
        return rows.length > 0 && rows.every((r) => r.dataset.state === 'FAILURE');
      });
    });
    await shot(page, '05-tasks.png');

    await check('the worker page shows its registered tasks', async () => {
      await page.goto(`${BASE}/worker/${encodeURIComponent(WORKER)}`);
      await page.waitForSelector('text=tasks.add');
      await page.waitForSelector('.badge.online');
    });
    await shot(page, '06-worker.png');

    const later = ctl('call', 'tasks.add', '1', '1', '--countdown', '3600');
    await check('Revoke on a task page revokes a scheduled task', async () => {
      await page.goto(`${BASE}/task/${later}`);
      await page.waitForSelector('[data-field="State"] .state.PENDING');
      await page.click('#revoke');
      await page.waitForSelector('[data-field="State"] .state.REVOKED');
    });
    await shot(page, '07-revoked.png');

    await check('the broker page lists the queues', async () => {
      await page.click('header nav a[data-nav="broker"]');
      await page.waitForSelector('text=celery');
    });
    await shot(page, '08-broker.png');

    ok(errors.length === 0, `no JavaScript errors in the pages${errors.length ? ': ' + errors.join(' | ') : ''}`);
  } finally {
    await context.close();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  ok(false, `browser test crashed: ${e.message}`);
}).finally(() => {
  if (worker && worker.exitCode === null) worker.kill('SIGTERM');
  console.log(`screenshots: ${ART}`);
  process.exitCode = failed ? 1 : 0;
});
