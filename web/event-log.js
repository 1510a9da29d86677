// event-log.js: the last lifecycle events (started, stopped, crashed, restarted, down), so a
// crash that the supervisor repaired in a blink is still seen, with its reason.
//
// History: on connect, GET /events first sends genserv's ring of recent lifecycle events
// (from before the page opened). They are shown marked "history", with the time genserv gives
// them, so that an operator arriving after a crash sees "crashed (reason)". A reconnection
// sends the ring again: it replaces the history shown, and live entries it repeats are not
// doubled (an event is known by its sequence number or its time, type and server).

import { h, jsonInline } from './dom.js';
import { clock } from './format.js';

const MAX = 50;

/** When genserv says the event happened, as a Date, or null (docs/API.md, GET /events). */
function timeOf(ev) {
  for (const k of ['at_ms', 'time_ms', 'ts_ms']) if (Number.isFinite(ev[k])) return new Date(ev[k]);
  for (const k of ['at', 'time']) {
    if (typeof ev[k] === 'string' || Number.isFinite(ev[k])) {
      const d = new Date(ev[k]);
      if (!Number.isNaN(d.getTime())) return d;
    }
  }
  return null;
}

function keyOf(ev) {
  if (Number.isFinite(ev.seq)) return `seq:${ev.seq}`;
  const t = timeOf(ev);
  return t ? `${t.getTime()} ${ev.type} ${ev.server}` : null;
}

export class EventLog {
  constructor(list, empty) {
    this.list = list;
    this.empty = empty;
    this.keys = new Map(); // key -> li, for events genserv gave a sequence number or a time
  }

  /** A live lifecycle event (opts.history: one from genserv's ring, from before this stream). */
  add(ev, { history = false } = {}) {
    const key = keyOf(ev);
    if (key !== null && this.keys.has(key)) {
      const old = this.keys.get(key);
      if (old.isConnected) return; // already shown (a reconnection's history repeats it)
    }
    const at = timeOf(ev);
    const reason = ev.reason === undefined ? null
      : h('code', { class: 'event-reason' }, jsonInline(ev.reason, 200));
    const li = h('li', { class: `event event-${ev.type}${history ? ' event-history' : ''}`,
      dataset: history ? { type: ev.type, history: 'yes' } : { type: ev.type } },
    h('span', { class: 'muted', title: at ? at.toLocaleString() : null }, clock(at || new Date())), ' ',
    history ? h('span', { class: 'badge history', title: 'from before this page connected' }, 'history') : null,
    history ? ' ' : null,
    h('span', { class: 'event-type' }, ev.type), ' ',
    h('span', { class: 'event-server' }, String(ev.server)),
    ev.behaviour ? h('span', { class: 'muted' }, ` (${ev.behaviour})`) : null,
    reason ? ' ' : null, reason);
    if (key !== null) this.keys.set(key, li);
    li.dataset.at = String((at || new Date()).getTime());
    if (history) this.insertByTime(li);
    else this.list.prepend(li);
    this.trim();
  }

  /** A batch of history, oldest first: it replaces the history shown before. */
  history(events) {
    for (const li of [...this.list.querySelectorAll('.event-history')]) li.remove();
    for (const ev of events) {
      if (ev && typeof ev === 'object' && typeof ev.type === 'string') this.add(ev, { history: true });
    }
  }

  /** History goes below the newer entries: before the first entry older than it. */
  insertByTime(li) {
    const t = Number(li.dataset.at);
    const older = [...this.list.children].find((c) => c.dataset.at !== undefined && Number(c.dataset.at) <= t);
    if (older) this.list.insertBefore(li, older);
    else this.list.append(li);
  }

  trim() {
    while (this.list.children.length > MAX) this.list.lastElementChild.remove();
    for (const [k, li] of this.keys) if (!li.isConnected) this.keys.delete(k);
    this.empty.hidden = this.list.children.length > 0;
  }

  note(text) {
    this.list.prepend(h('li', { class: 'event event-note muted', dataset: { at: String(Date.now()) } },
      `${clock()} ${text}`));
    this.trim();
  }
}
