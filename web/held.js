// held.js: the open-reply ledger of the selected server (GET /servers/NAME/held): who waits on
// the calls it holds for a deferred reply, oldest first, the oldest highlighted.
//
// Each row shows the caller (an HTTP client's address and port, or the calling server's
// name), since when it waits, its deadline and the message's tag. The ledger is read when the
// selection or the server's held_calls changes, and every few seconds while calls are held (so
// that the waits grow); one read at a time.

import { h, setText } from './dom.js';
import { api, errorText } from './api.js';
import { formatMs } from './format.js';

const REFRESH_MS = 3000; // how often a ledger with held calls is read again
const LIMIT = 50; // the oldest calls shown

function clockOf(unixMs) {
  return Number.isFinite(unixMs) ? new Date(unixMs).toLocaleTimeString() : '–';
}

export class HeldList {
  constructor(list, empty, meta) {
    this.list = list;
    this.empty = empty;
    this.meta = meta;
    this.name = null;
    this.held = -1; // the held_calls of the last read
    this.inFlight = false;
    this.again = false;
    this.lastAt = 0;
    this.timer = null;
  }

  /** The selected server's view changed (v: its status, or null): read the ledger if needed. */
  want(v) {
    const name = v ? v.name : null;
    if (name !== this.name) {
      this.name = name;
      this.held = -1;
      this.list.replaceChildren();
      setText(this.meta, '');
      this.empty.hidden = false;
    }
    if (name === null) return;
    const stale = v.held_calls > 0 && performance.now() - this.lastAt > REFRESH_MS;
    if (v.held_calls !== this.held || stale) this.fetch(v.held_calls);
    if (v.held_calls > 0 && !this.timer)
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.name !== null) this.fetch(this.held);
      }, REFRESH_MS);
  }

  async fetch(held) {
    if (this.inFlight) {
      this.again = true;
      return;
    }
    const name = this.name;
    this.inFlight = true;
    const r = await api.held(name, LIMIT);
    this.inFlight = false;
    this.lastAt = performance.now();
    if (name !== this.name) return;
    this.held = held;
    if (r.ok && r.body && Array.isArray(r.body.calls)) this.render(r.body);
    else setText(this.meta, errorText(r));
    if (this.again) {
      this.again = false;
      this.fetch(this.held);
    }
  }

  render(body) {
    const now = Date.now();
    const rows = body.calls.map((c, i) => h('li', {
      class: i === 0 ? 'held oldest' : 'held',
      dataset: { kind: String(c.kind), callId: String(c.id) },
    },
    h('div', { class: 'held-head' },
      h('span', { class: 'held-kind' }, String(c.kind)),
      h('span', { class: 'held-caller' }, c.caller == null ? '(no label)' : String(c.caller)),
      h('code', { class: 'held-tag' }, c.tag == null ? '–' : String(c.tag)),
      i === 0 ? h('span', { class: 'badge held-oldest' }, 'oldest') : null),
    h('div', { class: 'held-body muted' },
      h('span', { class: 'held-since' },
        `since ${clockOf(c.since_ms)} (${formatMs(now - c.since_ms)})`),
      h('span', { class: 'held-deadline' }, c.deadline_ms == null ? 'no deadline'
        : `deadline ${clockOf(c.deadline_ms)} (${formatMs(c.deadline_ms - now)} left)`))));
    this.list.replaceChildren(...rows);
    this.empty.hidden = rows.length > 0;
    setText(this.meta, body.count > rows.length ? `${rows.length} oldest of ${body.count}`
      : body.count > 0 ? `${body.count}` : '');
    this.list.setAttribute('aria-label', `${body.count} held call${body.count === 1 ? '' : 's'}`);
  }
}
