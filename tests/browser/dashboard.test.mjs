#!/usr/bin/env node
// dashboard.test.mjs: the dashboard (web/) end to end, in Debian's headless Chromium, against
// the real genserv binary on 127.0.0.1.
//
//   node dashboard.test.mjs --genserv build/genserv      (or GENSERV_BIN=...)
//   GS_SCREENSHOT=docs/dashboard.png ...                  also refresh the README's screenshot
//   GS_CHROMIUM=/usr/bin/chromium (default)               the browser to drive
//
// Each step asserts what a person sees: rows and cells of the table, the state on screen, the
// reply in the call log, the timer list. The page is served with a strict Content-Security-
// Policy (no inline script or style) added by the test, any dialog, page error, console error
// or CSP violation fails the test, and a state holding <img src=x onerror=...> must show as
// text and run nothing. genserv is killed by PID on every way out (finally, exit, signals).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const argIndex = process.argv.indexOf('--genserv');
const GENSERV_ARG = argIndex > 0 ? process.argv[argIndex + 1] : process.env.GENSERV_BIN;
const GENSERV = GENSERV_ARG && path.resolve(GENSERV_ARG);
const CHROMIUM = process.env.GS_CHROMIUM || '/usr/bin/chromium';
const SHOT_TMP = path.join(HERE, 'screenshots', 'last.tmp.png');
const SHOT_DOC = process.env.GS_SCREENSHOT ? path.resolve(ROOT, process.env.GS_SCREENSHOT) : null;
// The phone-width picture goes beside it: docs/dashboard.png -> docs/dashboard-phone.png.
const SHOT_PHONE_TMP = path.join(HERE, 'screenshots', 'phone.tmp.png');
const SHOT_PHONE_DOC = SHOT_DOC && SHOT_DOC.replace(/(\.png)?$/, '-phone.png');
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const TOTAL_TIMEOUT_MS = 240000; // the whole run; about 50 s alone, twice that on a busy machine
// The default servers boot as the children of the supervisor "root" (a server too).
const DEFAULT_SERVERS = ['batcher', 'counter', 'journal', 'root', 'slow', 'ticker'];
const behaviourOf = (name) => (name === 'root' ? 'supervisor' : name);
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
  + "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync'];

// ---- processes: every genserv we start is killed by its PID, whatever happens -------------

const children = new Map(); // pid -> ChildProcess

function killChildren() {
  for (const pid of children.keys()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}
let profileDir = null; // Chromium's fresh --user-data-dir, removed on every way out too
let dataDir = null; // the restarted genserv's --data-dir (its store), removed likewise
process.on('exit', () => {
  killChildren();
  if (profileDir) fs.rmSync(profileDir, { recursive: true, force: true });
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping`);
    killChildren();
    process.exit(130);
  });
}
process.on('unhandledRejection', (e) => {
  console.error('FAIL (unhandled rejection):', e);
  killChildren();
  process.exit(1);
});
setTimeout(() => {
  console.error(`FAIL: the test took longer than ${TOTAL_TIMEOUT_MS} ms`);
  killChildren();
  process.exit(1);
}, TOTAL_TIMEOUT_MS).unref();

/** Start genserv; resolves to {proc, url, stderr()} once it prints its address. */
function startGenserv(listen, extra = []) {
  // Events coalesced over 1 ms instead of 250: genserv then sends a state_changed for nearly
  // every message, and the page's own coalescing is what keeps it responsive.
  const proc = spawn(GENSERV, ['--listen', listen, '--log-level', 'warn', '--events-coalesce-ms', '1',
    ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  children.set(proc.pid, proc);
  let err = '';
  proc.stderr.on('data', (d) => {
    err += d;
  });
  proc.on('exit', () => children.delete(proc.pid));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => fail('did not print its address within 10 s'), 10000);
    function fail(why) {
      clearTimeout(timer);
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // gone
      }
      reject(new Error(`genserv ${why}\n${err}`));
    }
    proc.on('error', (e) => fail(`could not start: ${e.message}`));
    proc.on('exit', (code) => fail(`exited with ${code}`));
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /^listening on (http:\/\/\S+)\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.removeAllListeners('exit');
        proc.on('exit', () => children.delete(proc.pid));
        resolve({ proc, url: m[1], stderr: () => err });
      }
    });
  });
}

/** SIGTERM, then SIGKILL if it has not exited within ms; resolves to its exit code. */
async function stopGenserv(g, ms = 8000) {
  if (g.proc.exitCode !== null || g.proc.signalCode !== null) return g.proc.exitCode;
  const exited = new Promise((resolve) => g.proc.once('exit', (code) => resolve(code)));
  g.proc.kill('SIGTERM');
  const t = setTimeout(() => g.proc.kill('SIGKILL'), ms);
  const code = await exited;
  clearTimeout(t);
  return code;
}

// ---- waiting and checking ------------------------------------------------------------------

/** Poll fn until it returns something truthy, at most timeout ms; returns that value. */
async function until(what, fn, timeout = 5000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${
        last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await delay(50);
  }
}

async function http(base, method, p, body) {
  const res = await fetch(base + p, { method, body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Read GET /events from Node and count state_changed events of one server. */
function countEvents(base, server) {
  const ctl = new AbortController();
  const needle = `"type":"state_changed","server":${JSON.stringify(server)}`;
  const counter = { count: 0, stop: () => ctl.abort() };
  (async () => {
    const res = await fetch(`${base}/events`, { signal: ctl.signal });
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk, { stream: true });
      const lines = buf.split('\n');
      buf = lines.pop();
      for (const l of lines) if (l.includes(needle)) counter.count += 1;
    }
  })().catch(() => {});
  return counter;
}

const steps = [];
async function step(name, fn) {
  const t0 = Date.now();
  process.stdout.write(`- ${name} ... `);
  await fn();
  const ms = Date.now() - t0;
  steps.push([name, ms]);
  console.log(`ok (${ms} ms)`);
}

// ---- page helpers --------------------------------------------------------------------------

/** The visible rows of the servers table: [{name, behaviour, status, ...}] in screen order. */
const tableRows = (page) => page.$$eval('#servers-body tr:not([hidden])', (trs) => trs.map(
  (tr) => Object.fromEntries([...tr.cells].map((td) => [td.dataset.col, td.innerText.trim()]))));

async function rowOf(page, name) {
  return (await tableRows(page)).find((r) => r.name === name) || null;
}

const stateText = (page) => page.locator('#state-view').innerText();

async function selectServer(page, name) {
  await page.locator('#servers-body').getByRole('button', { name, exact: true }).click();
  await until(`${name} selected`, async () => (await page.locator('#detail-name').innerText()) === name);
  await until(`${name}'s state shown`, async () => (await stateText(page)).trim() !== '');
}

async function sendFromForm(page, kind, message, { times = 1, delayMs, timeoutMs } = {}) {
  await page.locator(`#msg-form input[name="kind"][value="${kind}"]`).check();
  await page.locator('#msg-text').fill(message);
  await page.locator('#msg-repeat').fill(String(times));
  if (delayMs !== undefined) await page.locator('#msg-delay').fill(String(delayMs));
  if (timeoutMs !== undefined) await page.locator('#msg-timeout').fill(String(timeoutMs));
  await page.locator('#msg-submit').click();
}

/** "950 B", "1.5 KiB", "16 MiB" (format.js formatBytes) -> bytes; NaN for anything else. */
function parseBytes(text) {
  const m = /^([\d.]+) (B|KiB|MiB|GiB|TiB)$/.exec(text.trim());
  if (!m) return NaN;
  return Number(m[1]) * 1024 ** ['B', 'KiB', 'MiB', 'GiB', 'TiB'].indexOf(m[2]);
}

/** The System panel's facts: {version: '...', uptime: '...', ...} as shown. */
const systemFacts = (page) => page.$$eval('#system-facts dd', (dds) =>
  Object.fromEntries(dds.map((dd) => [dd.dataset.fact, dd.innerText.trim()])));

/** The timer list, in screen order: [{id, server, origin, state, text}]. */
const timerRows = (page) => page.$$eval('#timer-list > li', (lis) => lis.map((li) => ({
  id: li.dataset.timerId, server: li.dataset.server, origin: li.dataset.origin, state: li.dataset.state,
  text: li.innerText.replace(/\s+/g, ' ').trim() })));

/** The event log's entries, newest first: [{type, history, text}]. */
const eventRows = (page) => page.$$eval('#event-log > li', (lis) => lis.map((li) => ({
  type: li.dataset.type, history: li.dataset.history === 'yes',
  text: li.innerText.replace(/\s+/g, ' ').trim() })));

/** Whether the element is inside the window horizontally (phone widths). */
/** Whether selector's first element lies within the viewport's width. Panels re-render on a
 * timer (the overview every 3 s, the timers as they fire), so an element measured just as it is
 * replaced has no box: measured again until it is in view or 5 s passed. */
async function inViewX(page, selector, width) {
  const fits = async () => {
    const box = await page.locator(selector).first().boundingBox({ timeout: 1000 });
    return Boolean(box) && box.x >= 0 && box.x + box.width <= width + 0.5;
  };
  try {
    return await until(`${selector} in view`, fits);
  } catch {
    return false;
  }
}

/** The selected server's held calls, oldest first: [{kind, callId, oldest, text}]. */
const heldRows = (page) => page.$$eval('#held-list > li', (lis) => lis.map((li) => ({
  kind: li.dataset.kind, callId: li.dataset.callId, oldest: li.classList.contains('oldest'),
  text: li.innerText.replace(/\s+/g, ' ').trim() })));

/** The call log's entries, newest first: [{kind, server, state, text}]. */
const callLog = (page) => page.$$eval('#call-log > li', (lis) => lis.map((li) => ({
  kind: li.dataset.kind, server: li.dataset.server, state: li.dataset.state,
  text: li.innerText.replace(/\s+/g, ' ').trim() })));

async function startFromForm(page, behaviour, name, args) {
  await page.locator('#start-behaviour').selectOption(behaviour);
  await page.locator('#start-name').fill(name);
  if (args !== undefined) await page.locator('#start-args').fill(args);
  await page.locator('#start-submit').click();
}

/** The Behaviours panel's rows, in screen order: [{name, kind, vsn, servers}]. */
const behaviourRows = (page) => page.$$eval('#behaviours-body tr', (trs) => trs.map(
  (tr) => Object.fromEntries([...tr.cells].map((td) => [td.dataset.col, td.innerText.trim()]))));

async function behaviourRow(page, name) {
  return (await behaviourRows(page)).find((r) => r.name === name) || null;
}

/** The selected behaviour's source as the code view shows it, one string per line. */
const codeLines = (page) => page.$$eval('#bh-code .code-line', (els) => els.map((e) => e.textContent));

// A Lua behaviour and its second version, whose code_change reshapes the state (issue 13).
const LUA_V1 = `-- lc: casts count, a call reads the count
return {
  vsn = "1",
  init = function(args) return {"ok", 0} end,
  handle_cast = function(msg, n) return {"noreply", n + 1} end,
  handle_call = function(msg, from, n) return {"reply", n, n} end,
}
`;
// (No vsn of its own: the form's vsn field names each version.)
const LUA_V2 = `-- lc, reshaped: the state is a table, with extra's note in it
return {
  init = function(args) return {"ok", {count = 0}} end,
  handle_cast = function(msg, s) s.count = s.count + 1 return {"noreply", s} end,
  handle_call = function(msg, from, s) return {"reply", s, s} end,
  code_change = function(old_vsn, n, extra) return {"ok", {count = n, note = extra.note}} end,
}
`;
// Line 4 lacks the '}' that closes {"ok", 0: Lua says so, naming line 4.
const LUA_BROKEN = LUA_V1.replace('return {"ok", 0} end', 'return {"ok", 0 end');

/** WCAG contrast ratio of two computed CSS colours "rgb(r, g, b)". */
function contrast(a, b) {
  const lum = (c) => {
    const [r, g, bl] = c.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

// ---- the test ------------------------------------------------------------------------------

async function main() {
  if (!GENSERV) throw new Error('usage: node dashboard.test.mjs --genserv PATH/TO/genserv');
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM} (apt-get install chromium)`);
  const t0 = Date.now();
  fs.mkdirSync(path.dirname(SHOT_TMP), { recursive: true });
  let g = await startGenserv('127.0.0.1:0');
  const base = () => g.url;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'genserv-chromium-'));
  profileDir = profile;
  let context = null;
  const problems = []; // dialogs, page errors, console errors, CSP violations
  let page = null;
  let watch = null; // watch(page, label): record dialogs, page errors and console errors

  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: DESKTOP,
      colorScheme: 'light',
      timeout: 30000,
    });
    context.setDefaultTimeout(5000);
    page = context.pages()[0] || await context.newPage();
    watch = (p, label) => {
      p.on('dialog', async (d) => {
        problems.push(`${label}: dialog ${d.type()}: ${d.message()}`);
        await d.dismiss().catch(() => {});
      });
      p.on('pageerror', (e) => problems.push(`${label}: page error: ${e.message}`));
      p.on('console', (m) => {
        // A 4xx answer the page expects (a fired timer's 404) is logged as "Failed to load
        // resource"; anything else at error level is a bug.
        if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) {
          problems.push(`${label}: console error: ${m.text()}`);
        }
      });
    };
    watch(page, 'page');
    await context.addInitScript(() => {
      window.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => {
        window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
      });
    });
    // Serve the page under a strict CSP set by the test (genserv sends its own too), so that
    // the page is held to "no inline script or style" whatever the gateway sends.
    await page.route((url) => url.pathname === '/', async (route) => {
      const res = await route.fetch();
      await route.fulfill({ response: res,
        headers: { ...res.headers(), 'content-security-policy': CSP } });
    });

    await step('before the page opens: a server crashes, restarts and is stopped', async () => {
      // What an operator arriving later must still see, from genserv's ring of recent events.
      assert.equal((await http(base(), 'POST', '/servers', { name: 'early', behaviour: 'misbehaving' })).status, 201);
      const crash = await http(base(), 'POST', '/call', { server: 'early', message: 'message' });
      assert.equal(crash.body.error, 'server_crashed', JSON.stringify(crash.body));
      await until('early restarted', async () => {
        const r = await http(base(), 'GET', '/servers/early');
        return r.status === 200 && r.body.restarts === 1 && r.body.status === 'running';
      });
      assert.equal((await http(base(), 'DELETE', '/servers/early')).status, 200);
    });

    await step('the table lists the default servers, live', async () => {
      await page.goto(`${base()}/`);
      await until('the connection indicator to say live', async () =>
        (await page.locator('#conn').getAttribute('data-state')) === 'live'
        && (await page.locator('#conn-text').innerText()) === 'live');
      const rows = await until('six rows', async () => {
        const r = await tableRows(page);
        return r.length === DEFAULT_SERVERS.length && r.every((x) => x.status === 'running') && r;
      });
      assert.deepEqual(rows.map((r) => r.name), DEFAULT_SERVERS);
      assert.deepEqual(rows.map((r) => r.behaviour), DEFAULT_SERVERS.map(behaviourOf));
      assert.equal((await rowOf(page, 'ticker')).restarts, '0');
      assert.match(await page.locator('#server-count').innerText(), /\(6\)/);
      // ... and the tree they form.
      await until('the root tree', async () =>
        (await page.locator('#trees details[data-name="root"] [data-kind="server"]').count()) === 5);
    });

    await step('history: the crash from before the page opened is in the event log', async () => {
      const rows = await until('early\'s crash, marked as history', async () => {
        const r = await eventRows(page);
        return r.some((e) => e.history && e.type === 'crashed' && / early\b/.test(e.text)) && r;
      });
      const crashed = rows.find((e) => e.history && e.type === 'crashed' && / early\b/.test(e.text));
      assert.match(crashed.text, /history crashed early \(misbehaving\) .*calling_self/);
      for (const type of ['started', 'restarted', 'stopped']) {
        assert.ok(rows.some((e) => e.history && e.type === type && / early\b/.test(e.text)), `history: ${type} early`);
      }
      // Oldest below: the start is under the crash, the stop above it.
      const at = (type) => rows.findIndex((e) => e.history && e.type === type && / early\b/.test(e.text));
      assert.ok(at('stopped') < at('crashed') && at('crashed') < at('started'), JSON.stringify(rows));
      // History is for reading: it does not bring the stopped server back into the table.
      assert.equal(await rowOf(page, 'early'), null);
    });

    await step('behaviours are described in words a reader can look up', async () => {
      const list = (await http(base(), 'GET', '/behaviours')).body.behaviours;
      const counter = list.find((b) => b.name === 'counter');
      assert.ok(counter && counter.description.length > 0, 'GET /behaviours describes counter');
      // In the start form when chosen, as the list's tooltip, and in the Behaviours panel.
      await page.locator('#start-behaviour').selectOption('counter');
      await until('counter described in the start form', async () =>
        (await page.locator('#start-description').innerText()) === counter.description);
      const button = page.locator('#behaviours-body').getByRole('button', { name: 'counter', exact: true });
      assert.equal(await button.getAttribute('title'), counter.description);
      await button.click();
      await until('counter described in the panel', async () =>
        (await page.locator('#bh-description').innerText()) === counter.description);
      // No internal word that points nowhere, anywhere on the page (tooltips included).
      const words = await page.evaluate(() => document.body.innerText + [...document.querySelectorAll('[title]')]
        .map((e) => e.title).join(' '));
      assert.doesNotMatch(words, /\bseed('s)?\b/i);
    });

    await step('the system overview shows genserv as a whole', async () => {
      const sys = (await http(base(), 'GET', '/system')).body;
      assert.equal(typeof sys.version, 'string');
      // The panel shows the last GET /system it read; the page's own event stream may have been
      // (re)connecting at that read (the panel reads again soon after a reconnection), so wait
      // for a read that counts it rather than take the first one.
      const facts = await until('the system facts', async () => {
        const f = await systemFacts(page);
        return f.version === sys.version && f.servers === String(DEFAULT_SERVERS.length) &&
          Number(f['event streams']) >= 1 && f;
      });
      assert.match(facts.uptime, /^\d+ s$|^\d+ m \d+ s$/);
      assert.equal(facts.schedulers, String(sys.schedulers.length));
      assert.ok(parseBytes(facts['memory (RSS)']) > 1024 * 1024, `RSS shown as ${facts['memory (RSS)']}`);
      assert.ok(parseBytes(facts['servers\u2019 memory']) > 0, `servers' memory shown as ${facts['servers\u2019 memory']}`);
      assert.ok(Number(facts['event streams']) >= 1, 'the page\'s own event stream is counted');
      assert.ok(Number(facts.connections) >= 1, 'the page\'s own connection is counted');
      assert.match(facts['held calls'], /^\d+$/);
      // One bar per scheduler, each with its utilisation in per cent.
      const bars = await page.$$eval('#schedulers > li', (lis) => lis.map((li) => ({
        value: li.querySelector('meter').value, text: li.innerText.replace(/\s+/g, ' ').trim() })));
      assert.equal(bars.length, sys.schedulers.length);
      for (const b of bars) {
        assert.match(b.text, /^scheduler \d+ \d+ %$/);
        assert.ok(b.value >= 0 && b.value <= 1);
      }
      // No --data-dir: no store, and the panel says so.
      assert.equal(await page.locator('#system-store').getAttribute('data-state'), 'none');
      // The uptime counts on between reads.
      const u0 = facts.uptime;
      await until('the uptime to count on', async () => (await systemFacts(page)).uptime !== u0, 4000);
      // A server started elsewhere shows in the count without a reload.
      assert.equal((await http(base(), 'POST', '/servers', { name: 'sys_probe', behaviour: 'counter' })).status, 201);
      await until('7 servers', async () => (await systemFacts(page)).servers === String(DEFAULT_SERVERS.length + 1), 6000);
      assert.equal((await http(base(), 'DELETE', '/servers/sys_probe')).status, 200);
      await until('6 servers', async () => (await systemFacts(page)).servers === String(DEFAULT_SERVERS.length), 6000);
      await until('sys_probe gone', async () => (await rowOf(page, 'sys_probe')) === null);
    });

    await step('the servers table has a memory column, sortable', async () => {
      const listed = (await http(base(), 'GET', '/servers')).body.servers;
      // (genserv measures a server when it handles a message or its state is read: 0 before.)
      assert.ok(listed.every((x) => Number.isFinite(x.memory_bytes) && x.memory_bytes >= 0), 'GET /servers memory_bytes');
      const rows = await tableRows(page);
      for (const r of rows) assert.ok(parseBytes(r.memory_bytes) >= 0, `${r.name}'s memory shown as ${r.memory_bytes}`);
      // The ticker handles a tick twice a second: its state's size is shown, as genserv says.
      await until('the ticker\'s memory', async () => parseBytes((await rowOf(page, 'ticker')).memory_bytes) > 0);
      const tickerMem = listed.find((x) => x.name === 'ticker').memory_bytes;
      assert.ok(tickerMem > 0);
      const sorted = async (dir) => {
        const r = await tableRows(page);
        const v = r.map((x) => parseBytes(x.memory_bytes));
        return v.every((x, i) => i === 0 || (dir > 0 ? v[i - 1] <= x : v[i - 1] >= x)) && r;
      };
      await page.locator('th button[data-sort="memory_bytes"]').click();
      await until('sorted by memory, ascending', () => sorted(1));
      assert.equal(await page.locator('th:has(button[data-sort="memory_bytes"])').getAttribute('aria-sort'), 'ascending');
      await page.locator('th button[data-sort="memory_bytes"]').click();
      await until('sorted by memory, descending', () => sorted(-1));
      await page.locator('th button[data-sort="name"]').click();
      await until('sorted by name again', async () =>
        JSON.stringify((await tableRows(page)).map((r) => r.name)) === JSON.stringify(DEFAULT_SERVERS));
      // The selected server's facts say what its state and mailbox take.
      // (The ticker: the next step expects it selected, as on a fresh page.)
      await selectServer(page, 'ticker');
      await until('the ticker\'s memory facts', async () => {
        const t = await page.locator('#detail-facts').innerText();
        return /memory\s+[\d.]+ (B|KiB|MiB)/.test(t) && /state\s+[\d.]+ (B|KiB|MiB)/.test(t);
      });
    });

    await step('every pending timer is listed: the ticker\'s own, and another client\'s', async () => {
      // The ticker sends itself "tick" with send_after: its timer is listed, counting down.
      const tick = await until('the ticker\'s own timer', async () => (await timerRows(page)).find((t) =>
        t.server === 'ticker' && t.origin === 'server:ticker' && t.state === 'pending'
        && /"tick"/.test(t.text) && /by server ticker/.test(t.text) && /(\d+ ms|\d\.\d s) left|due…/.test(t.text)));
      assert.match(tick.id, /^[0-9a-f]{48}$/);
      // ... and when it fires the ticker makes the next one, which the list picks up.
      await until('the ticker\'s next timer', async () => (await timerRows(page)).some((t) =>
        t.origin === 'server:ticker' && t.id !== tick.id), 8000);
      // A timer another client made over HTTP (not from this page).
      const made = await http(base(), 'POST', '/send_after', { server: 'counter', message: 'increment', delay_ms: 60000 });
      assert.equal(made.status, 202, JSON.stringify(made.body));
      const other = await until('the other client\'s timer', async () =>
        (await timerRows(page)).find((t) => t.id === made.body.timer), 6000);
      assert.equal(other.origin, 'http');
      assert.match(other.text, /counter "increment" by an HTTP client/);
      assert.match(other.text, /(\d+|\d+ m \d+) s left/);
      // Cancelled elsewhere: it leaves the list.
      assert.equal((await http(base(), 'DELETE', `/timers/${made.body.timer}`)).status, 200);
      await until('the cancelled timer gone', async () =>
        !(await timerRows(page)).some((t) => t.id === made.body.timer && t.state === 'pending'), 6000);
    });

    await step('the ticker counts down on screen without a reload', async () => {
      await page.evaluate(() => {
        window.__sameDocument = true;
      });
      // The ticker is selected on a fresh page so that its countdown is in view.
      assert.equal(await page.locator('#detail-name').innerText(), 'ticker');
      const count = async () => {
        const m = /"count":\s*(-?\d+)/.exec(await stateText(page));
        return m ? Number(m[1]) : null;
      };
      const c0 = await until('the ticker state', count);
      const c1 = await until('the count to go down', async () => ((await count()) < c0 ? count() : null));
      await until('the count to go down again', async () => (await count()) < c1);
      const h0 = Number((await rowOf(page, 'ticker')).messages_handled.replace(/\D/g, ''));
      await until('the handled cell to grow', async () =>
        Number((await rowOf(page, 'ticker')).messages_handled.replace(/\D/g, '')) > h0);
      assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page reloaded');

      // Folded JSON stays folded across live updates (the tree is rebuilt on each one).
      await page.locator('#state-collapse').click();
      await page.evaluate(() => {
        document.querySelector('#state-view details[data-path="$"]').dataset.old = 'yes';
      });
      await until('the state redrawn', () => page.evaluate(() =>
        document.querySelector('#state-view details[data-path="$"]').dataset.old === undefined));
      assert.equal(await page.locator('#state-view details[data-path="$"]').evaluate((d) => d.open), false);
      assert.match(await stateText(page), /3 keys/);
      await page.locator('#state-view summary').first().click(); // unfold by hand
      await until('unfolded', async () => /"count"/.test(await stateText(page)));
      await until('the activity chart to draw a line', () => page.locator('#chart .chart-rate .chart-line').count());
    });

    await step('a call from the form shows its reply and how long it took', async () => {
      await selectServer(page, 'counter');
      await until('counter hints', () => page.locator('#msg-hints .hint', { hasText: 'get_count' }).count());
      await sendFromForm(page, 'call', '"get_count"');
      const [e] = await until('the reply', async () => {
        const log = await callLog(page);
        return log.length && log[0].state === 'ok' && log;
      });
      assert.equal(e.kind, 'call');
      assert.equal(e.server, 'counter');
      assert.match(e.text, /reply 0 in \d+ ms/);
    });

    await step('casts to counter change the count on screen', async () => {
      await sendFromForm(page, 'cast', '"increment"', { times: 3 });
      await until('"count": 3 in the state', async () => /"count":\s*3\b/.test(await stateText(page)));
      const [cast] = await callLog(page);
      assert.equal(cast.kind, 'cast');
      assert.match(cast.text, /accepted \(3 of 3\)/);
      await sendFromForm(page, 'call', '"get_count"', { times: 1 });
      await until('reply 3', async () => {
        const [e] = await callLog(page);
        return e.kind === 'call' && e.state === 'ok' && /reply 3 in/.test(e.text);
      });
      // A message that is not JSON is refused by the form, with a hint, and sends nothing.
      const before = (await callLog(page)).length;
      await sendFromForm(page, 'cast', 'increment');
      await until('the form to explain', async () =>
        /string in quotes: "increment"/.test(await page.locator('#msg-result').innerText()));
      assert.equal((await callLog(page)).length, before);
    });

    await step('a busy server does not flood the page: redraws are coalesced', async () => {
      assert.equal((await http(base(), 'POST', '/servers', { name: 'busy', behaviour: 'counter' })).status, 201);
      await until('busy in the table', () => rowOf(page, 'busy'));
      const events = countEvents(base(), 'busy');
      await page.evaluate(() => {
        const row = [...document.querySelectorAll('#servers-body tr')].find((t) => t.dataset.name === 'busy');
        window.__redraws = 0;
        window.__observer = new MutationObserver((records) => {
          window.__redraws += records.length;
        });
        window.__observer.observe(row.querySelector('[data-col="messages_handled"]'),
          { childList: true, characterData: true, subtree: true });
      });
      const t0 = Date.now();
      let sent = 0;
      await Promise.all(Array.from({ length: 6 }, async () => {
        while (Date.now() - t0 < 2000) {
          const r = await fetch(`${base()}/cast`, { method: 'POST', body: '{"server":"busy","message":"increment"}' });
          await r.arrayBuffer();
          sent += 1;
        }
      }));
      const elapsed = Date.now() - t0;
      await until(`the final count ${sent} in the table`, async () =>
        (await rowOf(page, 'busy')).messages_handled.replace(/\D/g, '') === String(sent));
      const redraws = await page.evaluate(() => {
        window.__observer.disconnect();
        return window.__redraws;
      });
      events.stop();
      // At most one redraw per 200 ms while the flood lasted, plus the final one.
      const allowed = Math.ceil((Date.now() - t0) / 200) + 2;
      assert.ok(events.count > 3 * allowed, `genserv sent only ${events.count} events for busy: this proves nothing`);
      assert.ok(redraws <= allowed, `${redraws} redraws of the cell for ${events.count} events in ${elapsed} ms`);
      console.log(`(${sent} casts, ${events.count} events, ${redraws} redraws) `);
      assert.equal((await http(base(), 'DELETE', '/servers/busy')).status, 200);
      await until('busy gone', async () => (await rowOf(page, 'busy')) === null);
    });

    await step('batcher pushes are held as pending calls, then released together', async () => {
      // A batcher of our own with a long interval, flushed by hand: deterministic.
      await startFromForm(page, 'batcher', 'batch_demo', '{"interval_ms": 60000}');
      await until('batch_demo in the table', () => rowOf(page, 'batch_demo'));
      await until('batch_demo selected', async () => (await page.locator('#detail-name').innerText()) === 'batch_demo');
      await sendFromForm(page, 'call', '["push", 5]', { times: 3, timeoutMs: 30000 });
      await until('three pending calls', async () => {
        const log = (await callLog(page)).filter((e) => e.server === 'batch_demo');
        return log.length === 3 && log.every((e) => e.state === 'pending' && /pending/.test(e.text));
      });
      await until('held calls 3 in the table', async () => (await rowOf(page, 'batch_demo')).held_calls === '3');
      await until('"pending": 3 in the state', async () => /"pending":\s*3\b/.test(await stateText(page)));
      // The open-reply ledger: three http callers of the page's own address, the oldest first
      // and highlighted, each with its tag and deadline.
      await until('three held calls in the ledger', async () => (await heldRows(page)).length === 3);
      const ledger = await heldRows(page);
      assert.deepEqual(ledger.map((r) => r.oldest), [true, false, false]);
      for (const r of ledger) {
        assert.equal(r.kind, 'http');
        assert.match(r.text, /http 127\.0\.0\.1:\d+ push/);
        assert.match(r.text, /since .* deadline .* left/);
      }
      assert.ok(Number(ledger[0].callId) < Number(ledger[2].callId), 'the oldest call first');
      await sendFromForm(page, 'send', '"flush"');
      await until('the three calls answered "ok"', async () => {
        const log = (await callLog(page)).filter((e) => e.server === 'batch_demo' && e.kind === 'call');
        return log.length === 3 && log.every((e) => e.state === 'ok' && /reply "ok" in/.test(e.text));
      });
      await until('held calls 0 in the table', async () => (await rowOf(page, 'batch_demo')).held_calls === '0');
      await until('an empty ledger', async () => (await heldRows(page)).length === 0
        && await page.locator('#held-empty').isVisible());
      await until('the batch in the state', async () => {
        const s = await stateText(page);
        return /"last_batch_size":\s*3\b/.test(s) && /"last_batch_sum":\s*15\b/.test(s);
      });
      // The default batcher (1 s interval) releases pushes at its next flush.
      await selectServer(page, 'batcher');
      await sendFromForm(page, 'call', '["push", 1]', { times: 2, timeoutMs: 10000 });
      await until('the default batcher to release both pushes', async () => {
        const log = (await callLog(page)).slice(0, 2);
        return log.every((e) => e.server === 'batcher' && e.state === 'ok' && /reply "ok"/.test(e.text));
      }, 5000);
    });

    await step('starting a server adds it to the table', async () => {
      await startFromForm(page, 'receiver', 'inbox', '');
      await until('inbox in the table, running', async () => (await rowOf(page, 'inbox'))?.status === 'running');
      await until('inbox selected', async () => (await page.locator('#detail-name').innerText()) === 'inbox');
      assert.match(await page.locator('#start-result').innerText(), /started inbox/);
      // A refused start shows genserv's error.
      await startFromForm(page, 'receiver', 'inbox', '');
      await until('already_started shown', async () =>
        /409 already_started/.test(await page.locator('#start-result').innerText()));
    });

    await step('a send_after shows in the timer list, counts down and fires', async () => {
      await selectServer(page, 'inbox');
      await sendFromForm(page, 'send_after', '["greeting", "hi"]', { delayMs: 1500 });
      const timer = page.locator('#timer-list > li[data-origin="page"]').first();
      await until('a pending timer to inbox', async () =>
        (await timer.getAttribute('data-state')) === 'pending'
        && (await timer.getAttribute('data-server')) === 'inbox'
        && /\d s left|\d+ ms left/.test(await timer.innerText()));
      assert.match(await timer.innerText(), /\["greeting","hi"\]/);
      await until('the timer to fire', async () =>
        (await timer.getAttribute('data-state')) === 'fired' && /fired/.test(await timer.innerText()), 6000);
      await until('the message in inbox\'s state', async () => {
        const s = await stateText(page);
        return /"received":\s*1\b/.test(s) && /"greeting"/.test(s);
      });

      // A long timer, cancelled from the list: genserv no longer has it.
      await sendFromForm(page, 'send_after', '"later"', { delayMs: 60000 });
      const long = page.locator('#timer-list > li[data-origin="page"][data-state="pending"]').first();
      const id = await until('the long timer', () => long.getAttribute('data-timer-id'));
      await until('its countdown', async () => /\d+ m \d+ s left|\d+ s left/.test(await long.innerText()));
      await long.getByRole('button', { name: /cancel timer/ }).click();
      const done = page.locator(`#timer-list > li[data-timer-id="${id}"]`);
      await until('cancelled in the list', async () =>
        (await done.getAttribute('data-state')) === 'cancelled' && /cancelled with/.test(await done.innerText()));
      assert.equal((await http(base(), 'GET', `/timers/${id}`)).status, 404);
    });

    await step('stopping a server asks first, then removes it from the table', async () => {
      await selectServer(page, 'inbox');
      await page.locator('#stop-button').click();
      await until('the confirmation', () => page.locator('#confirm-dialog').evaluate((d) => d.open));
      assert.match(await page.locator('#confirm-text').innerText(), /Stop “inbox”\?/);
      await page.locator('#confirm-cancel').click();
      await until('the dialog closed', async () => !(await page.locator('#confirm-dialog').evaluate((d) => d.open)));
      assert.ok(await rowOf(page, 'inbox'), 'cancel must not stop the server');
      assert.equal((await http(base(), 'GET', '/servers/inbox')).status, 200);

      await page.locator('#stop-button').click();
      await page.locator('#confirm-ok').click();
      await until('inbox gone from the table', async () => (await rowOf(page, 'inbox')) === null);
      await until('the detail to say so', async () => /was stopped|stopped/.test(await page.locator('#detail-empty').innerText()));
      assert.equal((await http(base(), 'GET', '/servers/inbox')).status, 404);
    });

    await step('a supervision tree shows nested and collapsible, with status and restarts per node', async () => {
      const tree = { name: 'shop', strategy: 'one_for_all', children: [
        { name: 'stock', behaviour: 'counter' },
        { name: 'desk', children: [{ name: 'clerk', behaviour: 'misbehaving' }] }] };
      assert.equal((await http(base(), 'POST', '/supervisors', tree)).status, 201);
      const shop = page.locator('#trees details[data-name="shop"]');
      const clerk = shop.locator('details[data-name="desk"] [data-name="clerk"]');
      await until('the tree on screen, live', async () => (await clerk.count()) === 1);
      assert.match(await shop.locator('> summary').innerText(), /shop\s*one_for_all\s*running\s*restarts 0/);
      assert.match(await clerk.innerText(), /clerk\s*misbehaving\s*running\s*restarts 0/);
      // A crash of clerk: one_for_all above does not see it (desk restarts clerk); the page
      // shows the restart without a reload.
      await http(base(), 'POST', '/call', { server: 'clerk', message: 'message' });
      await until('clerk restarted once, on screen', async () => /restarts 1/.test(await clerk.innerText()));
      // Collapsing a supervisor hides its children, and stays collapsed across redraws.
      await shop.locator('> summary').click();
      await until('shop collapsed', async () => !(await shop.evaluate((d) => d.open)));
      assert.equal(await clerk.isVisible(), false);
      await http(base(), 'POST', '/call', { server: 'clerk', message: 'message' });
      await until('restarts 2 read while collapsed', async () => /restarts 2/.test(await clerk.textContent()));
      assert.equal(await shop.evaluate((d) => d.open), false);
      await shop.locator('> summary').click();
      await until('shop open again', async () => await clerk.isVisible());
      // Selecting a server in the tree selects it in the page.
      await clerk.getByRole('button', { name: 'clerk', exact: true }).click();
      await until('clerk selected', async () => (await page.locator('#detail-name').innerText()) === 'clerk');
      assert.equal((await http(base(), 'DELETE', '/supervisors/shop')).status, 200);
      await until('the tree gone from the page', async () => (await shop.count()) === 0);
      assert.equal(await page.locator('#trees details[data-name="root"]').count(), 1, 'the boot tree stays');
    });

    await step('a Lua behaviour read from a .lua file is listed with its vsn and starts from the form', async () => {
      // Keyboard: the button opens the form and puts the caret in its first field.
      await page.locator('#bh-new').focus();
      await page.keyboard.press('Enter');
      await until('the upload form', () => page.locator('#bh-form').isVisible());
      assert.equal(await page.evaluate(() => document.activeElement.id), 'bh-name');
      await page.locator('#bh-file').setInputFiles({ name: 'lc.lua', mimeType: 'text/x-lua',
        buffer: Buffer.from(LUA_V1) });
      await until('the file in the editor', async () => (await page.locator('#bh-source').inputValue()) === LUA_V1);
      assert.equal(await page.locator('#bh-name').inputValue(), 'lc', 'the name comes from the file name');
      await page.locator('#bh-vsn').fill('1');
      await page.locator('#bh-submit').click();
      await until('lc listed as Lua, vsn 1, no server', async () => {
        const r = await behaviourRow(page, 'lc');
        return r && r.kind === 'Lua' && r.vsn === '1' && r.servers === '0';
      });
      assert.equal((await behaviourRows(page))[0].name, 'lc', 'Lua behaviours come first');
      assert.equal(await page.locator('#bh-form').isVisible(), false);
      assert.match(await page.locator('#bh-outcome').innerText(), /Loaded “lc”, vsn 1\./);
      // Selected: its source, line by line, its limits and when it was loaded.
      await until('its source shown', async () =>
        JSON.stringify(await codeLines(page)) === JSON.stringify(LUA_V1.split('\n').slice(0, -1)));
      const fact = (k) => page.locator(`#bh-facts [data-fact="${k}"]`).innerText();
      assert.equal(await fact('vsn'), '1');
      assert.equal(await fact('memory per server'), '16 MiB');
      assert.equal(await fact('instructions per callback'), '10,000,000');
      assert.match(await fact('loaded'), /\d{1,2}:\d\d:\d\d/);
      assert.equal(await page.locator('#bh-code').evaluate((el) => getComputedStyle(el).whiteSpace), 'pre');

      // The start form's list was read again: lc is in it.
      await until('lc in the start form', () => page.locator('#start-behaviour option[value="lc"]').count());
      await startFromForm(page, 'lc', 'lc1', '');
      await until('lc1 running in the table', async () => {
        const r = await rowOf(page, 'lc1');
        return r && r.status === 'running' && r.behaviour === 'lc';
      });
      await until('one server of lc', async () => (await behaviourRow(page, 'lc')).servers === '1'
        && /1 server runs it: lc1/.test(await page.locator('#bh-servers').innerText()));
      await until('lc1 selected', async () => (await page.locator('#detail-name').innerText()) === 'lc1');
      await sendFromForm(page, 'cast', '"tick"', { times: 2 });
      await until('its count 2 in the state', async () => (await stateText(page)).trim() === '2');
    });

    await step('a version that does not load shows Lua\'s message and line, and changes nothing', async () => {
      await page.locator('#bh-upgrade').click();
      await until('the upgrade form', () => page.locator('#bh-form').isVisible());
      assert.equal(await page.locator('#bh-form-h').innerText(), 'Upload a new version of “lc”');
      assert.equal(await page.locator('#bh-source').inputValue(), LUA_V1, 'the current source, to edit');
      assert.equal(await page.locator('#bh-vsn').inputValue(), '2', 'the next vsn suggested');
      await page.locator('#bh-source').fill(LUA_BROKEN);
      await page.locator('#bh-submit').click();
      const result = page.locator('#bh-form-result');
      await until('Lua\'s error with its line', async () =>
        /400 bad_request: lc:4: '}' expected/.test(await result.innerText()));
      assert.equal(await result.locator('.bh-error-code').textContent(), LUA_BROKEN.split('\n')[3]);
      assert.match(await result.innerText(), /line 4:/);
      assert.match(await result.innerText(), /Nothing changed/);
      // "go to line 4", by keyboard, puts the caret on that line of the editor.
      await result.getByRole('button', { name: 'go to line 4' }).focus();
      await page.keyboard.press('Enter');
      const caret = await page.evaluate(() => {
        const t = document.activeElement;
        return t.id === 'bh-source' && t.value.slice(0, t.selectionStart).split('\n').length;
      });
      assert.equal(caret, 4, 'the caret is on line 4 of the editor');
      assert.equal((await behaviourRow(page, 'lc')).vsn, '1');
      assert.equal((await http(base(), 'GET', '/behaviours/lc')).body.source, LUA_V1);
      await page.locator('#bh-cancel').click();
      assert.equal(await page.locator('#bh-form').isVisible(), false);
      assert.equal(await page.evaluate(() => document.activeElement.id), 'bh-upgrade');
    });

    await step('deleting a behaviour that a server runs is refused, naming the server', async () => {
      await page.locator('#bh-delete').click();
      await until('the confirmation', () => page.locator('#confirm-dialog').evaluate((d) => d.open));
      assert.equal(await page.locator('#confirm-h').innerText(), 'Delete behaviour');
      assert.match(await page.locator('#confirm-text').innerText(), /Delete the Lua behaviour “lc”\?/);
      await page.locator('#confirm-ok').click();
      const outcome = page.locator('#bh-outcome');
      await until('409 behaviour_in_use shown', async () =>
        /Not deleted: 409 behaviour_in_use\. 1 server runs “lc”; stop it first/.test(await outcome.innerText()));
      assert.deepEqual(await outcome.locator('li').allInnerTexts(), ['lc1']);
      assert.ok(await behaviourRow(page, 'lc'), 'lc is still listed');
    });

    await step('a new version upgrades the running server: each outcome shown, error then ok', async () => {
      const outcome = page.locator('#bh-outcome');
      const items = () => outcome.locator('li').evaluateAll((lis) => lis.map((li) =>
        [li.dataset.server, li.dataset.outcome, li.innerText.replace(/\s+/g, ' ').trim()]));
      // Without extra, v2's code_change indexes a null and raises: the server keeps v1 and its
      // state, and its outcome says why.
      await page.locator('#bh-upgrade').click();
      await page.locator('#bh-source').fill(LUA_V2);
      await page.locator('#bh-source').press('Control+Enter'); // sends, as the label says
      await until('the failed outcome', async () => (await outcome.getAttribute('data-action')) === 'upgraded'
        && (await outcome.getAttribute('data-state')) === 'error', 10000);
      assert.match(await outcome.innerText(),
        /“lc” is now vsn 2 \(was vsn 1\): 0 servers upgraded, 1 server kept the old code\./);
      const [bad] = await items();
      assert.deepEqual(bad.slice(0, 2), ['lc1', 'error']);
      assert.match(bad[2], /^lc1 error .*attempt to index.* it keeps its old code and state$/);
      await sendFromForm(page, 'call', '"get"');
      await until('v1 still answers', async () => {
        const [e] = await callLog(page);
        return e.server === 'lc1' && e.state === 'ok' && /reply 2 in/.test(e.text);
      });

      // With extra, by keyboard this time: vsn 3 is suggested, the source is v2's.
      await page.locator('#bh-upgrade').focus();
      await page.keyboard.press('Enter');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'bh-vsn');
      assert.equal(await page.locator('#bh-vsn').inputValue(), '3');
      assert.equal(await page.locator('#bh-source').inputValue(), LUA_V2);
      await page.locator('#bh-extra').fill('{"note": "from the page"}');
      await page.locator('#bh-submit').click();
      await until('the ok outcome', async () => (await outcome.getAttribute('data-state')) === 'ok'
        && /now vsn 3/.test(await outcome.innerText()), 10000);
      assert.match(await outcome.innerText(),
        /“lc” is now vsn 3 \(was vsn 2\): 1 server upgraded, 0 servers kept the old code\./);
      const [good] = await items();
      assert.deepEqual(good.slice(0, 2), ['lc1', 'ok']);
      assert.match(good[2], /^lc1 ok /);
      await until('vsn 3 listed', async () => (await behaviourRow(page, 'lc')).vsn === '3');
      await until('the new source shown', async () => (await codeLines(page)).some((l) => l.includes('code_change')));
      // The server kept running, its state reshaped by code_change, and the new code answers.
      await until('the reshaped state', async () => {
        const st = await stateText(page);
        return /"count":\s*2\b/.test(st) && /"note":\s*"from the page"/.test(st);
      });
      await sendFromForm(page, 'call', '"get"');
      await until('v2 answers', async () => {
        const [e] = await callLog(page);
        // (A Lua table's keys come in no set order.)
        return e.server === 'lc1' && e.state === 'ok' && /reply \{/.test(e.text)
          && e.text.includes('"count":2') && e.text.includes('"note":"from the page"');
      });
      assert.equal((await rowOf(page, 'lc1')).restarts, '0');
    });

    await step('screenshot', async () => {
      // The README's picture: the ticker counting down, calls in the log, a pending timer.
      await page.locator('#start-behaviour').selectOption('ticker');
      assert.equal(await page.locator('#start-result').innerText(), '', 'a changed form drops the old result');
      await selectServer(page, 'ticker');
      await sendFromForm(page, 'send_after', '"tick"', { delayMs: 45000 });
      await sendFromForm(page, 'call', '"get_count"');
      await until('the call answered', async () => (await callLog(page))[0].state === 'ok');
      await until('the chart has a history', async () =>
        (await page.locator('#chart .chart-rate .chart-line').getAttribute('points')).split(' ').length > 5, 10000);
      // At 1280 px every column of the servers table is in view, memory and uptime included.
      const hidden = await page.evaluate(() => {
        const wrap = document.querySelector('#servers-table').parentElement;
        return wrap.scrollWidth - wrap.clientWidth;
      });
      assert.ok(hidden <= 1, `the servers table hides ${hidden}px at ${DESKTOP.width}px`);
      await page.mouse.move(0, 0);
      fs.mkdirSync(path.dirname(SHOT_TMP), { recursive: true });
      await page.screenshot({ path: SHOT_TMP, fullPage: true, animations: 'disabled' });
      assert.ok(fs.statSync(SHOT_TMP).size > 10000, 'screenshot is suspiciously small');
      if (SHOT_DOC) {
        fs.mkdirSync(path.dirname(SHOT_DOC), { recursive: true });
        fs.copyFileSync(SHOT_TMP, SHOT_DOC);
      }
    });

    await step('at phone width (390 px) the new panels show real data, nothing sideways', async () => {
      await page.setViewportSize(PHONE);
      try {
        const overflow = await page.evaluate(() =>
          document.documentElement.scrollWidth - document.documentElement.clientWidth);
        assert.ok(overflow <= 1, `the page scrolls sideways by ${overflow}px at ${PHONE.width}px`);
        // The system overview: its numbers, each in view.
        const facts = await systemFacts(page);
        assert.ok(facts.version && parseBytes(facts['memory (RSS)']) > 0, JSON.stringify(facts));
        for (const f of ['version', 'uptime', 'memory (RSS)', 'event streams']) {
          assert.ok(await inViewX(page, `#system-facts dd[data-fact="${f}"]`, PHONE.width), `system ${f} out of view`);
        }
        assert.ok(await inViewX(page, '#schedulers > li meter', PHONE.width), 'a scheduler bar out of view');
        // The memory column, in the ticker's card.
        const mem = page.locator('#servers-body tr[data-name="ticker"] td[data-col="memory_bytes"]');
        assert.ok(parseBytes(await mem.innerText()) > 0);
        assert.ok(await inViewX(page, '#servers-body tr[data-name="ticker"] td[data-col="memory_bytes"]', PHONE.width));
        // The ticker's own timer, counting down, and the history of the early crash.
        await until('the ticker\'s timer at phone width', async () =>
          (await timerRows(page)).some((t) => t.origin === 'server:ticker' && t.state === 'pending'));
        assert.ok(await inViewX(page, '#timer-list > li[data-origin="server:ticker"]', PHONE.width), 'a timer out of view');
        assert.ok(await inViewX(page, '#event-log > li[data-history="yes"][data-type="crashed"]', PHONE.width),
          'the crash in history out of view');
        await page.mouse.move(0, 0);
        // The phone's screen as it opens (the System panel and the first servers), not the
        // whole five-screen-high page.
        await page.evaluate(() => window.scrollTo(0, 0));
        await page.screenshot({ path: SHOT_PHONE_TMP, animations: 'disabled' });
        assert.ok(fs.statSync(SHOT_PHONE_TMP).size > 10000, 'phone screenshot is suspiciously small');
        if (SHOT_PHONE_DOC) fs.copyFileSync(SHOT_PHONE_TMP, SHOT_PHONE_DOC);
      } finally {
        await page.setViewportSize(DESKTOP);
      }
    });

    await step('a Lua behaviour no server runs is deleted and leaves the start form', async () => {
      await selectServer(page, 'lc1');
      await page.locator('#stop-button').click();
      assert.equal(await page.locator('#confirm-h').innerText(), 'Stop server');
      await page.locator('#confirm-ok').click();
      await until('lc1 gone', async () => (await rowOf(page, 'lc1')) === null);
      await until('no server of lc', async () => (await behaviourRow(page, 'lc')).servers === '0');
      await page.locator('#behaviours-body').getByRole('button', { name: 'lc', exact: true }).click();
      await until('lc selected', async () => (await page.locator('#bh-detail-name').innerText()) === 'lc'
        && (await page.locator('#bh-delete').isVisible()));
      await page.locator('#bh-delete').click();
      await page.locator('#confirm-ok').click();
      await until('lc deleted', async () => /Deleted “lc”\./.test(await page.locator('#bh-outcome').innerText())
        && (await behaviourRow(page, 'lc')) === null);
      await until('lc gone from the start form', async () =>
        (await page.locator('#start-behaviour option[value="lc"]').count()) === 0);
      assert.equal(await page.locator('#bh-detail').isVisible(), false);
      assert.equal((await http(base(), 'GET', '/behaviours/lc')).status, 404);
    });

    await step('a state, a name and an error holding HTML show as text and run nothing', async () => {
      const name = '<img src=x onerror="window.__xss=\'name\'">';
      const entry = '<img src=x onerror="window.__xss=\'state\'"><script>window.__xss=\'script\'</script>';
      const key = '<img src=x onerror=window.__xss=1>';
      assert.equal((await http(base(), 'POST', '/servers', { name, behaviour: 'journal' })).status, 201);
      assert.equal((await http(base(), 'POST', '/cast', { server: name, message: ['add_entry', entry] })).status, 202);
      assert.equal((await http(base(), 'POST', '/cast',
        { server: name, message: ['add_entry', { [key]: entry }] })).status, 202);
      // A Lua behaviour whose name and source hold HTML, and a version whose error message does.
      const bName = '<img src=x onerror="window.__xss=\'behaviour\'">';
      const bSource = '-- <script>window.__xss=\'source\'</script>\nreturn {handle_cast = function(m, s) return {"noreply", s} end}\n';
      const bError = 'error("<img src=x onerror=window.__xss=\'error\'>")';
      assert.equal((await http(base(), 'POST', '/behaviours', { name: bName, source: bSource })).status, 201);
      // A timer to it whose message holds HTML: listed in the timers panel of both tabs.
      const xssTimer = await http(base(), 'POST', '/send_after', { server: name, message: entry, delay_ms: 60000 });
      assert.equal(xssTimer.status, 202);

      // In this tab the CSP would block an injected handler; in a second tab the CSP is
      // removed (genserv sends one), so that an injected onerror would really run there.
      const plain = await context.newPage();
      watch(plain, 'tab without CSP');
      await plain.route((url) => url.pathname === '/', async (route) => {
        const res = await route.fetch();
        const headers = { ...res.headers() };
        delete headers['content-security-policy'];
        await route.fulfill({ response: res, headers });
      });
      await plain.goto(`${base()}/`);
      for (const p of [page, plain]) {
        // The tab in front: Chromium runs a hidden tab's timers at most once a second, which
        // made each wait of this loop in the first tab cost about a second.
        await p.bringToFront();
        await until('the server in the table', () => rowOf(p, name));
        await selectServer(p, name);
        assert.equal(await p.locator('#detail-name').innerText(), name);
        await until('the entries in the state, as text', async () => {
          const s = await stateText(p);
          return s.includes(JSON.stringify(entry)) && s.includes(JSON.stringify(key));
        });
        await sendFromForm(p, 'call', '"entries"');
        await until('the reply, as text', async () => {
          const [e] = await callLog(p);
          return e.state === 'ok' && e.text.includes('<img src=x onerror=') && e.text.includes('<script>');
        });
        // An error message carrying the payload (init refuses the unknown key and names it).
        await startFromForm(p, 'counter', 'xss_args', `{${JSON.stringify(key)}: 1}`);
        await until('the init error, as text', async () =>
          (await p.locator('#start-result').innerText()).includes(key));
        // The behaviour: its name, its source and Lua's error message, all as text.
        await p.locator('#bh-reload').click(); // the first tab has not heard of it
        await until('the behaviour listed', () => behaviourRow(p, bName));
        await p.locator('#behaviours-body').getByRole('button', { name: bName, exact: true }).click();
        await until('its source, as text', async () =>
          (await p.locator('#bh-detail-name').innerText()) === bName
          && (await codeLines(p))[0] === bSource.split('\n')[0]);
        await p.locator('#bh-upgrade').click();
        await p.locator('#bh-source').fill(bError);
        await p.locator('#bh-submit').click();
        await until('the error message, as text', async () =>
          (await p.locator('#bh-form-result').innerText()).includes("<img src=x onerror=window.__xss='error'>"));
        await p.locator('#bh-cancel').click();
        // The timer: its target and message, as text.
        await until('the timer, as text', async () => (await timerRows(p)).some((t) =>
          t.id === xssTimer.body.timer && t.server === name && t.text.includes(name) && t.text.includes(JSON.stringify(entry))), 6000);
      }
      // The first tab saw the server start; the second tab, opened after, has it in history.
      assert.ok((await page.locator('#event-log').innerText()).includes(name), 'name in the events');
      assert.ok((await eventRows(plain)).some((e) => e.history && e.type === 'started' && e.text.includes(name)),
        'name in the history');
      assert.equal((await http(base(), 'DELETE', `/timers/${xssTimer.body.timer}`)).status, 200);
      for (const p of [page, plain]) {
        const dom = await p.evaluate(() => ({
          imgs: document.querySelectorAll('img').length,
          scripts: [...document.scripts].map((el) => new URL(el.src).pathname),
          xss: window.__xss,
        }));
        assert.equal(dom.imgs, 0, 'an <img> element was created from data');
        assert.deepEqual(dom.scripts, ['/app.js'], 'a <script> element was created from data');
        assert.equal(dom.xss, undefined, 'injected script ran');
      }
      await plain.close();
      await page.bringToFront();
    });

    await step('keyboard: tab to a server, select it, filter and sort', async () => {
      await page.locator('#filter').fill('');
      await page.evaluate(() => document.activeElement && document.activeElement.blur());
      await page.locator('body').focus();
      let reached = false;
      for (let i = 0; i < 60 && !reached; i++) {
        await page.keyboard.press('Tab');
        reached = await page.evaluate(() => document.activeElement?.textContent === 'counter'
          && document.activeElement.classList.contains('row-select'));
      }
      assert.ok(reached, 'Tab never reached the counter row');
      await page.keyboard.press('Enter');
      await until('counter selected by keyboard', async () => (await page.locator('#detail-name').innerText()) === 'counter');

      await page.keyboard.press('/');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'filter');
      await page.keyboard.type('tick');
      await until('only the ticker', async () => {
        const r = await tableRows(page);
        return r.length === 1 && r[0].name === 'ticker';
      });
      await page.locator('#filter').fill('batcher'); // matches the behaviour too
      await until('both batchers', async () =>
        JSON.stringify((await tableRows(page)).map((r) => r.name)) === '["batch_demo","batcher"]');
      await page.locator('#filter').fill('');

      await page.locator('th button[data-sort="name"]').click(); // name: ascending -> descending
      assert.equal(await page.locator('th', { has: page.locator('[data-sort="name"]') }).getAttribute('aria-sort'), 'descending');
      const names = (await tableRows(page)).map((r) => r.name).filter((n) => DEFAULT_SERVERS.includes(n));
      assert.deepEqual(names, [...DEFAULT_SERVERS].reverse());
      await page.locator('th button[data-sort="held_calls"]').click();
      assert.equal(await page.locator('th', { has: page.locator('[data-sort="held_calls"]') }).getAttribute('aria-sort'), 'ascending');
      await page.locator('th button[data-sort="name"]').click();
    });

    await step('narrow window, dark and light colour schemes', async () => {
      await page.setViewportSize({ width: 380, height: 800 });
      const narrow = await page.evaluate(() => ({
        overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
        table: document.querySelector('.table-wrap').getBoundingClientRect().width,
      }));
      assert.ok(narrow.overflow <= 1, `the page scrolls sideways by ${narrow.overflow}px at 380px`);
      assert.ok(narrow.table > 300 && narrow.table <= 380, 'the table region fits the window');
      for (const col of ['status', 'held_calls', 'memory_bytes', 'uptime']) {
        const box = await page.locator(`#servers-body tr[data-name="ticker"] td[data-col="${col}"]`).boundingBox();
        assert.ok(box && box.x >= 0 && box.x + box.width <= 380, `ticker's ${col} is out of view when narrow`);
      }
      assert.match(await page.locator('#servers-body tr[data-name="ticker"] td[data-col="status"]').innerText(), /running/);
      // The Behaviours panel too: a long name is cut, its servers column stays in view.
      for (const col of ['name', 'kind', 'vsn', 'servers']) {
        const box = await page.locator(`#behaviours-body tr:first-child td[data-col="${col}"]`).boundingBox();
        assert.ok(box && box.x >= 0 && box.x + box.width <= 380, `a behaviour's ${col} is out of view when narrow`);
      }
      await page.locator('#servers-body').getByRole('button', { name: 'ticker', exact: true }).click();
      await until('selectable when narrow', async () => (await page.locator('#detail-name').innerText()) === 'ticker');
      const colours = async () => page.evaluate(() => {
        const cs = (sel, p) => getComputedStyle(document.querySelector(sel))[p];
        return {
          bg: cs('.panel', 'backgroundColor'), fg: cs('body', 'color'),
          muted: cs('.muted', 'color'),
          badgeBg: cs('#detail-status', 'backgroundColor'), badgeFg: cs('#detail-status', 'color'),
          luaBg: cs('#behaviours-body .kind-lua', 'backgroundColor'), luaFg: cs('#behaviours-body .kind-lua', 'color'),
          codeBg: cs('#bh-code', 'backgroundColor'), codeFg: cs('#bh-code', 'color'),
          lineNo: getComputedStyle(document.querySelector('#bh-code .code-line'), '::before').color,
          histBg: cs('#event-log .badge.history', 'backgroundColor'), histFg: cs('#event-log .badge.history', 'color'),
          originFg: cs('#timer-list .timer-origin', 'color'), timerBg: cs('#timer-list > li', 'backgroundColor'),
        };
      });
      const light = await colours();
      await page.emulateMedia({ colorScheme: 'dark' });
      const dark = await colours();
      await page.screenshot({ path: path.join(HERE, 'screenshots', 'dark-narrow.tmp.png'), fullPage: true });
      await page.emulateMedia({ colorScheme: 'light' });
      await page.setViewportSize(DESKTOP);
      assert.notEqual(light.bg, dark.bg, 'the dark scheme changes the background');
      for (const [scheme, c] of [['light', light], ['dark', dark]]) {
        assert.ok(contrast(c.fg, c.bg) >= 7, `${scheme}: body text contrast ${contrast(c.fg, c.bg)}`);
        assert.ok(contrast(c.muted, c.bg) >= 4.5, `${scheme}: muted text contrast ${contrast(c.muted, c.bg)}`);
        assert.ok(contrast(c.badgeFg, c.badgeBg) >= 4.5, `${scheme}: status badge contrast`);
        assert.ok(contrast(c.luaFg, c.luaBg) >= 4.5, `${scheme}: Lua badge contrast ${contrast(c.luaFg, c.luaBg)}`);
        assert.ok(contrast(c.codeFg, c.codeBg) >= 7, `${scheme}: source contrast ${contrast(c.codeFg, c.codeBg)}`);
        assert.ok(contrast(c.lineNo, c.codeBg) >= 4.5, `${scheme}: line numbers contrast ${contrast(c.lineNo, c.codeBg)}`);
        assert.ok(contrast(c.histFg, c.histBg) >= 4.5, `${scheme}: history badge contrast ${contrast(c.histFg, c.histBg)}`);
        const timerBg = /rgba\(0, 0, 0, 0\)|transparent/.test(c.timerBg) ? c.bg : c.timerBg;
        assert.ok(contrast(c.originFg, timerBg) >= 4.5, `${scheme}: timer origin contrast ${contrast(c.originFg, timerBg)}`);
      }
    });

    await step('the event stream reconnects by itself after genserv restarts', async () => {
      const port = new URL(base()).port;
      // (What the new process's history must replace: early's, still in the log.)
      assert.ok((await eventRows(page)).some((e) => e.history && / early\b/.test(e.text)), 'early\'s history before the restart');
      // While genserv is away, answer the page's reconnections with a 503 that is not a stream,
      // like a proxy would: EventSource gives up for good on that, and the page must retry.
      await page.route('**/events', (route) => route.fulfill({ status: 503,
        contentType: 'application/json', body: '{"error":"overloaded","message":"test"}' }));
      // genserv ends the open event stream and exits 0 (docs/API.md, Shutdown); under
      // ASan a leak or an error would make that exit code non-zero.
      assert.equal(await stopGenserv(g), 0, `genserv's exit code on SIGTERM\n${g.stderr()}`);
      // "retrying in N s" is the page's own retry, after EventSource gave up on the 503.
      await until('the indicator to show the lost stream', async () =>
        (await page.locator('#conn').getAttribute('data-state')) === 'reconnecting'
        && /retrying in \d+ s/.test(await page.locator('#conn-text').innerText()), 8000);
      assert.ok(await page.evaluate(() => document.body.classList.contains('stale')));
      // Same port, so that the page's origin still points at it. Retry while it is released.
      // This one has a store, whose health the System panel then shows.
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'genserv-browser-data-'));
      g = await until('genserv to listen again on the same port', async () => {
        try {
          return await startGenserv(`127.0.0.1:${port}`, ['--data-dir', dataDir]);
        } catch {
          return null;
        }
      }, 10000);
      await page.unroute('**/events');
      await until('live again', async () =>
        (await page.locator('#conn').getAttribute('data-state')) === 'live', 20000);
      // The new process runs only the defaults: the snapshot replaced what the page had.
      await until('the default servers only', async () =>
        JSON.stringify((await tableRows(page)).map((r) => r.name)) === JSON.stringify(DEFAULT_SERVERS));
      // ... and has only its built-in behaviours: the list was read again on reconnection.
      await until('no Lua behaviour listed', async () => {
        const rows = await behaviourRows(page);
        return rows.length > 0 && rows.every((r) => r.kind === 'built-in');
      });
      assert.ok(!(await page.evaluate(() => document.body.classList.contains('stale'))));
      // The new process's history replaced the old one's: early's crash was another process's.
      await until('the old history gone', async () =>
        !(await eventRows(page)).some((e) => e.history && / early\b/.test(e.text)));
      // The new process's System panel: a fresh uptime, and its store, healthy.
      await until('the store in the System panel', async () =>
        (await page.locator('#system-store').getAttribute('data-state')) === 'healthy', 8000);
      const store = await page.locator('#system-store').innerText();
      assert.match(store, /^store: healthy · .*genserv-browser-data-.* · durability \w+ · commit lag \d+ · \d+ errors$/);
      assert.match((await systemFacts(page)).uptime, /^\d+ s$/);
    });

    await step('with --token, the page asks for the token and then works', async () => {
      const port = new URL(base()).port;
      assert.equal(await stopGenserv(g), 0, `genserv's exit code on SIGTERM\n${g.stderr()}`);
      g = await until('genserv with a token on the same port', async () => {
        try {
          return await startGenserv(`127.0.0.1:${port}`, ['--token', 'letmein']);
        } catch {
          return null;
        }
      }, 10000);
      const form = page.locator('#token-form');
      await until('the token form', () => form.isVisible(), 15000);
      assert.equal(await page.locator('#conn').getAttribute('data-state'), 'reconnecting');
      await page.locator('#token-input').fill('wrong');
      await page.locator('#token-form button[type="submit"]').click();
      await until('the wrong token refused', async () => (await form.isVisible())
        && /refused/.test(await page.locator('#token-result').innerText()), 10000);
      await page.locator('#token-input').fill('letmein');
      await page.locator('#token-form button[type="submit"]').click();
      await until('live with the token', async () =>
        (await page.locator('#conn').getAttribute('data-state')) === 'live', 10000);
      assert.equal(await form.isVisible(), false);
      await until('the default servers', async () =>
        JSON.stringify((await tableRows(page)).map((r) => r.name)) === JSON.stringify(DEFAULT_SERVERS));
      await selectServer(page, 'counter');
      await sendFromForm(page, 'call', '"get_count"');
      await until('a call with the token', async () => {
        const [e] = await callLog(page);
        return e.server === 'counter' && e.state === 'ok' && /reply 0 in/.test(e.text);
      });
    });

    const csp = await page.evaluate(() => window.__csp);
    assert.deepEqual(csp, [], 'CSP violations');
    assert.deepEqual(problems, [], 'dialogs, page errors or console errors');
    await context.close();
    context = null;
    assert.equal(await stopGenserv(g), 0, `genserv's exit code on SIGTERM\n${g.stderr()}`);
    console.log(`PASS: ${steps.length} steps in ${((Date.now() - t0) / 1000).toFixed(1)} s; `
      + `screenshot ${path.relative(ROOT, SHOT_TMP)}${SHOT_DOC ? ` and ${path.relative(ROOT, SHOT_DOC)}` : ''}`);
  } catch (e) {
    console.log('FAILED');
    if (page) {
      await page.screenshot({ path: path.join(HERE, 'screenshots', 'failure.tmp.png'), fullPage: true })
        .then(() => console.error(`screenshot of the failure: ${path.join(HERE, 'screenshots', 'failure.tmp.png')}`))
        .catch(() => {});
    }
    if (problems.length) console.error('also seen in the page:', problems);
    console.error(`genserv stderr:\n${g.stderr()}`);
    throw e;
  } finally {
    if (context) await context.close().catch(() => {});
    await stopGenserv(g).catch(() => {});
    killChildren();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e && e.stack ? e.stack : e);
  killChildren();
  process.exit(1);
});
