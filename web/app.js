// app.js: the dashboard. Wires the event stream to the table, the selected server's details,
// the forms and the logs.
//
// Data flow: GET /events (sse.js) -> onEvent updates `views` (Map name -> server view) at
// once, cheaply -> scheduleRender() redraws at most every RENDER_MS, however busy the servers
// are (genserv already coalesces state_changed per server; this coalesces across servers and
// bounds the page's own work). The selected server's state is read with GET /servers/NAME,
// only when an event says it handled a message this page did not cause (see wantState).
// GET /behaviours feeds the start form, the message form's hints and the Behaviours panel; it
// is read again after each upload, upgrade or delete, on every reconnection, and when a server
// of a behaviour the page does not know appears (genserv has no event for behaviours).

import { api, auth } from './api.js';
import { h, setText, jsonInline } from './dom.js';
import { connectEvents } from './sse.js';
import { ServerTable, uptimeOf } from './table.js';
import { JsonView } from './json-view.js';
import { History, renderChart } from './chart.js';
import { CallLog } from './calls.js';
import { TimerList } from './timers.js';
import { HeldList } from './held.js';
import { MessageForm } from './forms.js';
import { StartForm, stopServer } from './lifecycle.js';
import { BehaviourPanel } from './behaviours.js';
import { EventLog } from './event-log.js';
import { SupervisorTree } from './supervisors.js';
import { SystemPanel } from './system.js';
import { formatBytes, formatCount, formatUptime, clock } from './format.js';
import { STATUS_FIELDS, STATUSES } from './schema.js'; // served by genserv, made from genserv.h

const RENDER_MS = 200; // the page redraws at most five times a second
const STATE_MIN_MS = 250; // and reads the selected server's state at most four times a second
const DISPLAY = new Set(STATUSES);
// Fields of a STATUS that the page shows and that a genserv.h older than issue 16 does not
// list in STATUS_FIELDS: copied all the same when present.
const FIELDS = [...new Set([...STATUS_FIELDS, 'memory_bytes', 'memory'])];

const $ = (id) => document.getElementById(id);

const views = new Map(); // name -> {STATUS fields, receivedAt, crashing, display}
const behaviours = new Map(); // name -> GET /behaviours entry
const samples = new History();
let selected = null;
let autoSelect = true; // select the ticker on the first snapshot, unless the URL names a server
let connState = 'connecting';

const table = new ServerTable({
  table: $('servers-table'), tbody: $('servers-body'), filter: $('filter'),
  count: $('server-count'), empty: $('table-empty'), onSelect: (name) => select(name),
});
const jsonView = new JsonView($('state-view'));
const calls = new CallLog($('call-log'));
const timers = new TimerList($('timer-list'), $('timers-empty'), $('timers-more'));
const held = new HeldList($('held-list'), $('held-empty'), $('held-meta'));
const eventLog = new EventLog($('event-log'), $('events-empty'));
const system = new SystemPanel({ facts: $('system-facts'), schedulers: $('schedulers'),
  store: $('system-store'), meta: $('system-meta') });
const trees = new SupervisorTree({
  root: $('trees'), empty: $('trees-empty'),
  onSelectServer: (name) => {
    select(name);
    $('detail').focus();
  },
});
const msgForm = new MessageForm({ form: $('msg-form'), hints: $('msg-hints'),
  result: $('msg-result'), calls, timers });
const startForm = new StartForm({
  form: $('start-form'),
  serverNames: () => new Set(views.keys()),
  onStarted: (status) => {
    applyStatus(status);
    select(status.name);
  },
});

const behaviourPanel = new BehaviourPanel({
  root: $('behaviours'),
  dialog: $('confirm-dialog'),
  onChanged: () => loadBehaviours(),
  onStart: (name) => startForm.choose(name),
  onSelectServer: (name) => {
    select(name);
    $('detail').focus();
  },
});

// ---- server views ----------------------------------------------------------------------

function applyStatus(st, now = Date.now()) {
  if (!st || typeof st !== 'object' || typeof st.name !== 'string') return null;
  let v = views.get(st.name);
  if (!v) {
    v = { name: st.name, crashing: false, receivedAt: now };
    views.set(st.name, v);
  }
  for (const k of FIELDS) if (k in st) v[k] = st[k];
  v.receivedAt = now;
  if (v.status === 'running' || v.status === 'down') v.crashing = false;
  v.display = displayStatus(v);
  return v;
}

function displayStatus(v) {
  let d;
  if (v.status === 'down') d = 'down';
  else if (v.crashing) d = 'restarting';
  else d = v.status;
  return DISPLAY.has(d) ? d : 'starting';
}

function ensureView(name, behaviour) {
  if (typeof name !== 'string') return null;
  noticeBehaviour(behaviour);
  return views.get(name) || applyStatus({ name, behaviour, status: 'starting' });
}

function onEvent(ev) {
  const now = Date.now();
  // genserv's ring of recent lifecycle events, sent first on connect: for the event log only,
  // since the snapshot already tells each server's status now.
  if (ev.type === 'history') {
    eventLog.history(Array.isArray(ev.events) ? ev.events : []);
    return;
  }
  if (ev.history === true) {
    eventLog.add(ev, { history: true });
    return;
  }
  switch (ev.type) {
    case 'snapshot': {
      const seen = new Set();
      for (const st of Array.isArray(ev.servers) ? ev.servers : []) {
        const v = applyStatus(st, now);
        if (v) {
          noticeBehaviour(v.behaviour);
          v.crashing = false;
          v.display = displayStatus(v);
          seen.add(v.name);
        }
      }
      for (const name of [...views.keys()]) if (!seen.has(name)) views.delete(name);
      if (autoSelect && selected === null && views.has('ticker')) select('ticker');
      autoSelect = false;
      wantState(selected, true);
      break;
    }
    case 'started':
      ensureView(ev.server, ev.behaviour);
      eventLog.add(ev);
      break;
    case 'stopped':
      views.delete(ev.server);
      eventLog.add(ev);
      if (ev.server === selected) deselect(`“${ev.server}” stopped (${jsonInline(ev.reason)}).`);
      break;
    case 'crashed': {
      const v = ensureView(ev.server, ev.behaviour);
      if (v) {
        v.crashing = true;
        v.last_crash_reason = ev.reason;
        v.display = displayStatus(v);
      }
      eventLog.add(ev);
      wantState(ev.server, true);
      break;
    }
    case 'restarted': {
      const v = ensureView(ev.server, ev.behaviour);
      if (v) {
        if (v.status === 'starting') v.status = 'running'; // a tree child, restarted under a new registration
        v.crashing = false;
        v.display = displayStatus(v);
      }
      eventLog.add(ev);
      wantState(ev.server, true);
      break;
    }
    case 'down': {
      const v = ensureView(ev.server, ev.behaviour);
      if (v) {
        v.status = 'down';
        v.crashing = false;
        v.down_reason = ev.reason;
        v.display = 'down';
      }
      eventLog.add(ev);
      wantState(ev.server, true);
      break;
    }
    case 'state_changed': {
      const v = applyStatus(ev.status, now);
      if (v) wantState(v.name, false);
      break;
    }
    default:
      return; // a newer genserv's event: nothing to show
  }
  if (ev.type !== 'state_changed') {
    trees.refresh(); // a lifecycle event may change a tree
    system.refresh(); // and the system's counts
  }
  scheduleRender();
}

// ---- rendering ---------------------------------------------------------------------------

let renderTimer = null;
let lastRender = 0;

function scheduleRender() {
  if (renderTimer) return;
  const wait = Math.max(0, RENDER_MS - (performance.now() - lastRender));
  renderTimer = setTimeout(render, wait);
}

function render() {
  renderTimer = null;
  lastRender = performance.now();
  table.render(views);
  renderDetail();
  behaviourPanel.render(serversByBehaviour());
}

/** behaviour -> [server names], from the live model. */
function serversByBehaviour() {
  const m = new Map();
  for (const v of views.values()) {
    if (typeof v.behaviour !== 'string') continue;
    const list = m.get(v.behaviour);
    if (list) list.push(v.name);
    else m.set(v.behaviour, [v.name]);
  }
  return m;
}

function renderDetail() {
  const v = selected === null ? null : views.get(selected);
  $('detail-body').hidden = !v;
  $('detail-facts').hidden = !v;
  $('detail-empty').hidden = Boolean(v);
  $('stop-button').disabled = !v;
  const badge = $('detail-status');
  badge.hidden = !v;
  held.want(v || null);
  if (!v) {
    setText($('detail-name'), selected === null ? 'No server selected' : selected);
    if (selected !== null) setText($('detail-empty'), 'No server runs under this name.');
    if (msgForm.server !== null) msgForm.setServer(null, null);
    return;
  }
  setText($('detail-name'), v.name);
  if (setText(badge, v.display)) badge.className = `badge status-${v.display}`;
  const behaviour = behaviours.get(v.behaviour) || null;
  if (msgForm.server !== v.name || msgForm.behaviour !== behaviour) msgForm.setServer(v.name, behaviour);
  renderFacts(v);
}

function renderFacts(v) {
  const now = Date.now();
  const mailbox = Number.isFinite(v.mailbox_limit)
    ? `${formatCount(v.mailbox_len)} of ${formatCount(v.mailbox_limit)}` : formatCount(v.mailbox_len);
  const facts = [
    ['behaviour', v.behaviour ?? '–'],
    ['restart', v.restart ?? '–'],
    ['mailbox', mailbox],
    ['handled', formatCount(v.messages_handled)],
    ['restarts', formatCount(v.restarts)],
    ['held calls', formatCount(v.held_calls)],
    ['memory', formatBytes(v.memory_bytes)],
    ['uptime', formatUptime(uptimeOf(v, now))],
  ];
  const m = v.memory && typeof v.memory === 'object' ? v.memory : null;
  if (m) facts.splice(facts.length - 1, 0, ['state', formatBytes(m.state_bytes)],
    ['mailbox size', formatBytes(m.mailbox_bytes)]);
  if (v.sensitive === true) facts.push(['sensitive', 'yes: its state is redacted']);
  if (v.durable === true) {
    // What the store has of it: the last committed state's sequence number, how many changes
    // wait for a commit, and its stored timers (docs/durability.md).
    facts.push(['durable', v.committed_seq == null ? 'yes: nothing committed yet'
      : `yes: committed seq ${formatCount(v.committed_seq)}`]);
    facts.push(['commit lag', formatCount(v.commit_lag ?? 0)]);
    facts.push(['stored timers', formatCount(v.stored_timers ?? 0)]);
  }
  if (v.last_crash_reason != null) facts.push(['last crash', jsonInline(v.last_crash_reason, 300)]);
  if (v.down_reason != null) facts.push(['down because', jsonInline(v.down_reason, 300)]);
  const dl = $('detail-facts');
  // Rebuilt only when a fact changed, so that selecting text in it survives updates.
  const key = JSON.stringify(facts.filter(([k]) => k !== 'uptime'));
  if (dl.dataset.key !== key || dl.children.length === 0) {
    dl.dataset.key = key;
    dl.replaceChildren(...facts.map(([k, val]) => h('div', { class: val.length > 24 ? 'wide' : null },
      h('dt', {}, k), h('dd', { dataset: { fact: k } }, val))));
  } else {
    const dd = dl.querySelector('[data-fact="uptime"]');
    if (dd) setText(dd, formatUptime(uptimeOf(v, now)));
  }
}

function renderChartNow() {
  if (selected !== null && views.has(selected)) renderChart($('chart'), samples.series(selected), samples.span());
}

// ---- selection ---------------------------------------------------------------------------

function select(name) {
  autoSelect = false;
  if (name === selected) return;
  selected = name;
  table.select(name);
  jsonView.reset();
  setText($('state-meta'), '');
  stateFetch.expected = -Infinity;
  stateFetch.status = null;
  stateFetch.restarts = null;
  const hash = name === null ? '' : `#server=${encodeURIComponent(name)}`;
  if (location.hash !== hash) window.history.replaceState(null, '', hash || location.pathname);
  render();
  renderChartNow();
  wantState(name, true);
}

function deselect(why) {
  select(null);
  setText($('detail-empty'), why);
}

function selectionFromHash() {
  const name = new URLSearchParams(location.hash.slice(1)).get('server');
  return name === null || name === '' ? null : name;
}

// ---- the selected server's state ----------------------------------------------------------

// GET /servers/NAME reads the state through the server's mailbox, but a state read is an
// inspection, not a message: it neither counts in messages_handled nor makes a state_changed.
// A read is wanted when the server handled more messages than the page's last read saw
// (`expected`), or when its status changed.
const stateFetch = { inFlight: false, wanted: false, expected: -Infinity, lastAt: 0, timer: null,
  status: null, restarts: null };

function wantState(name, force) {
  if (name === null || name !== selected) return;
  const v = views.get(name);
  if (force) {
    stateFetch.wanted = true;
  } else if (v && !stateFetch.inFlight) {
    // (While a read is out, fetchState makes this check when it returns.)
    if (v.messages_handled > stateFetch.expected || v.status !== stateFetch.status
      || v.restarts !== stateFetch.restarts) stateFetch.wanted = true;
  }
  pumpState();
}

function pumpState() {
  if (!stateFetch.wanted || stateFetch.inFlight || stateFetch.timer || selected === null) return;
  const wait = STATE_MIN_MS - (performance.now() - stateFetch.lastAt);
  if (wait > 0) {
    stateFetch.timer = setTimeout(() => {
      stateFetch.timer = null;
      pumpState();
    }, wait);
    return;
  }
  fetchState(selected);
}

async function fetchState(name) {
  stateFetch.wanted = false;
  stateFetch.inFlight = true;
  const r = await api.server(name);
  stateFetch.inFlight = false;
  stateFetch.lastAt = performance.now();
  if (name === selected) {
    if (r.ok && r.body && typeof r.body === 'object') {
      const b = r.body;
      const v = views.get(name);
      // Events may already have told a newer status than this read's.
      if (!v || !(v.messages_handled > b.messages_handled)) applyStatus(b);
      stateFetch.expected = b.messages_handled;
      stateFetch.status = b.status;
      stateFetch.restarts = b.restarts;
      if (b.state_error) jsonView.reset(); // a down server: nothing to show, not `null`
      else jsonView.render(b.state);
      setText($('state-meta'), b.state_error
        ? `state unavailable: ${b.state_error}` : `read at ${clock()}`);
      $('state-meta').classList.toggle('error', Boolean(b.state_error));
      // Events that came while the read was out: did the server handle anything since?
      const now = views.get(name);
      if (now && (now.messages_handled > stateFetch.expected || now.status !== b.status
        || now.restarts !== b.restarts)) stateFetch.wanted = true;
    } else {
      setText($('state-meta'), `state unavailable: ${r.body && r.body.error}`);
      $('state-meta').classList.add('error');
    }
    scheduleRender();
  }
  pumpState();
}

// ---- connection ---------------------------------------------------------------------------

function onConnState(state, info) {
  const was = connState;
  connState = state;
  const el = $('conn');
  el.dataset.state = state;
  let text = state === 'live' ? 'live' : state === 'connecting' ? 'connecting…' : 'reconnecting…';
  if (state === 'reconnecting' && info.retryMs) text = `disconnected, retrying in ${Math.round(info.retryMs / 1000)} s`;
  setText($('conn-text'), text);
  el.title = state === 'live' ? 'receiving live events from GET /events' : 'the event stream is down; the table may be stale';
  document.body.classList.toggle('stale', state !== 'live');
  if (state !== was && state === 'reconnecting' && was === 'live') eventLog.note('event stream lost; reconnecting');
  if (state !== was && state === 'live' && was === 'reconnecting') eventLog.note('event stream back');
  // A new connection may be to a new process, with other behaviours (or the first list failed).
  if (state === 'live' && (was !== 'live' || behaviours.size === 0)) loadBehaviours();
  // EventSource does not say why it gave up; a 401 from a plain request does (and asks for a
  // token through auth.onUnauthorized).
  if (state === 'reconnecting' && info.retryMs && $('token-form').hidden) api.servers();
}

// ---- access token (genserv --token / --read-token) -----------------------------------------

auth.onUnauthorized(() => {
  const form = $('token-form');
  if (!form.hidden) return;
  setText($('token-result'), auth.token ? 'That token was refused.' : '');
  form.hidden = false;
  $('token-input').focus();
});
$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const value = $('token-input').value.trim();
  if (!value) return;
  auth.set(value);
  $('token-input').value = '';
  $('token-form').hidden = true;
  $('token-forget').hidden = false;
  events.reconnectNow();
  loadBehaviours();
  wantState(selected, true);
});
$('token-forget').addEventListener('click', () => {
  auth.set(null);
  $('token-forget').hidden = true;
  events.reconnectNow();
});
$('token-forget').hidden = !auth.token;

let behavioursSeq = 0; // answers can cross: only the last request's is used

async function loadBehaviours() {
  const seq = ++behavioursSeq;
  const r = await api.behaviours();
  if (seq !== behavioursSeq || !r.ok || !r.body || !Array.isArray(r.body.behaviours)) return;
  behaviours.clear();
  for (const b of r.body.behaviours) if (b && typeof b.name === 'string') behaviours.set(b.name, b);
  startForm.setBehaviours([...behaviours.values()]);
  behaviourPanel.setList([...behaviours.values()]);
  renderDetail();
}

// A server of a behaviour the page has not heard of: another client loaded it. Read the list
// again, at most once a second.
let behavioursReload = null;
function noticeBehaviour(name) {
  if (typeof name !== 'string' || behaviours.size === 0 || behaviours.has(name) || behavioursReload) return;
  behavioursReload = setTimeout(() => {
    behavioursReload = null;
    loadBehaviours();
  }, 1000);
}

// ---- wiring -------------------------------------------------------------------------------

$('stop-button').addEventListener('click', async () => {
  const name = selected;
  if (name === null) return;
  const r = await stopServer($('confirm-dialog'), name);
  if (r.stopped) {
    // A server that is down emits no `stopped` event when deleted: drop it here too.
    if (views.get(name)?.status === 'down') eventLog.note(`${r.text} (it was down)`);
    views.delete(name);
    if (selected === name) deselect(`“${name}” was stopped.`);
    scheduleRender();
  } else if (r.text) {
    setText($('msg-result'), r.text);
    $('msg-result').classList.add('error');
  }
  $('stop-button').focus();
});
$('state-collapse').addEventListener('click', () => jsonView.setAll(false));
$('state-expand').addEventListener('click', () => jsonView.setAll(true));
window.addEventListener('hashchange', () => {
  const name = selectionFromHash();
  if (name !== null) select(name);
});
document.addEventListener('keydown', (e) => {
  const typing = e.target.closest('input, textarea, select');
  if (e.key === '/' && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
    e.preventDefault();
    $('filter').focus();
  }
});

setInterval(() => {
  const now = Date.now();
  samples.sample(views, now);
  table.tick(now);
  if (selected !== null && views.has(selected)) renderFacts(views.get(selected));
  renderChartNow();
}, 1000);

const fromHash = selectionFromHash();
if (fromHash !== null) select(fromHash);
render();
loadBehaviours();
const events = connectEvents(() => auth.eventsUrl(), { onEvent, onState: onConnState });
