// timers.js: every pending timer, counting down, cancellable, like observer's view of timers.
//
// GET /timers?all=true lists every pending timer genserv holds, whoever made it: a client over
// HTTP, a server for itself (the ticker's next tick), another server, an embedding thread, or
// the store (restored at start). The list
// is read every POLL_MS and on demand (after the page's own send_after); between reads each
// row counts down locally from the remaining time it was last told. A timer's reference is
// opaque (48 hex digits that cannot be guessed); a row shows a short tag of it and keeps the
// whole for the API. Only a timer made over HTTP can be cancelled from here (DELETE
// /timers/REF answers 404 for the others): a server's own timers are its business.
//
// The page's own timers (made from the message form) are followed more closely: their row
// appears at once, is read with GET /timers/REF every few seconds and, once the time is up,
// says whether the timer fired (404 no_such_timer) or was cancelled, and stays a few seconds
// so marked. A timer made elsewhere leaves the list as soon as a read no longer lists it
// (the ticker makes one a second: lingering rows would pile up).

import { h, setText, jsonInline } from './dom.js';
import { api, errorText } from './api.js';
import { formatMs, formatCount } from './format.js';

const SYNC_MS = 5000; // how often one of the page's pending timers is read from genserv
const POLL_MS = 2000; // how often GET /timers is read
const DUE_POLL_MS = 500; // sooner while a listed timer is due: its successor is likely listed
const LIMIT = 200; // the soonest timers listed (GET /timers?limit=)
const LINGER_MS = 8000; // how long one of the page's finished timers stays in the list

// A reference is the timer's number (16 hex digits) and a MAC (32): the number, without its
// leading zeros, tells timers apart.
function shortRef(ref) {
  const s = String(ref);
  return s.length === 48 ? s.slice(0, 16).replace(/^0+(?=.)/, '') : s;
}

/** created_by as words (docs/API.md, GET /timers). */
function originText(createdBy, own) {
  if (own) return 'from this page';
  if (typeof createdBy !== 'string') return '';
  if (createdBy.startsWith('server:')) return `by server ${createdBy.slice(7)}`;
  if (createdBy === 'server') return 'by another server';
  if (createdBy === 'http') return 'by an HTTP client';
  if (createdBy === 'restored') return 'restored from the store';
  if (createdBy === 'runtime') return 'by the embedding program';
  return `by ${createdBy}`;
}

export class TimerList {
  /** list: the <ul>; empty: the "none" line; more: the "N more" line. */
  constructor(list, empty, more) {
    this.list = list;
    this.empty = empty;
    this.more = more;
    this.timers = new Map(); // ref -> timer
    this.done = new Set(); // refs that fired or were cancelled: a read sent before may list them
    this.interval = null;
    this.polling = false;
    this.pollAgain = false;
    this.everListed = false; // GET /timers answered once: rows are genserv's, not only the page's
    this.lastPoll = 0;
    setInterval(() => this.poll(), POLL_MS);
    this.poll();
  }

  /** A send_after made from this page (the message form). */
  add(id, server, message, delayMs) {
    let t = this.timers.get(id);
    if (t) {
      // A read of GET /timers listed it before its POST answered: it is the page's own.
      t.own = true;
      t.li.dataset.origin = 'page';
      setText(t.origin, originText('http', true));
    } else {
      t = this.makeRow(id, server, message, delayMs, { own: true, createdBy: 'http' });
    }
    t.lastSync = performance.now();
    this.poll();
  }

  makeRow(id, server, message, remainingMs, { own, createdBy, intervalMs }) {
    const left = h('span', { class: 'timer-left' });
    const bar = h('progress', { max: String(Math.max(1, remainingMs)), value: String(remainingMs),
      'aria-label': `time left on timer ${id}` });
    const cancel = h('button', { type: 'button', class: 'small' }, 'cancel');
    const origin = h('span', { class: 'timer-origin muted' }, originText(createdBy, own));
    const every = Number.isFinite(intervalMs)
      ? h('span', { class: 'timer-interval muted' }, `every ${formatMs(intervalMs)}`) : null;
    const li = h('li', { class: 'timer', dataset: { timerId: String(id), state: 'pending', server,
      origin: own ? 'page' : String(createdBy ?? '') } },
    h('div', { class: 'timer-head' },
      h('span', { class: 'timer-id', title: String(id) }, `#${shortRef(id)}`),
      h('span', { class: 'timer-server' }, server),
      h('code', { class: 'timer-message' }, jsonInline(message)), origin, every),
    h('div', { class: 'timer-body' }, bar, left, cancel));
    const t = { id, li, left, bar, cancel, origin, own, createdBy,
      deadline: performance.now() + remainingMs, state: 'pending', lastSync: 0, syncing: false,
      seenAt: 0 };
    cancel.setAttribute('aria-label', `cancel timer ${id} to ${server}`);
    cancel.hidden = !own && createdBy !== 'http';
    cancel.addEventListener('click', () => this.cancel(t));
    this.timers.set(id, t);
    this.place(t);
    this.update();
    this.tick();
    if (!this.interval) this.interval = setInterval(() => this.tick(), 200);
    return t;
  }

  /** Keep pending rows soonest first; finished ones below them. */
  place(t) {
    const after = [...this.list.children].find((li) => {
      const o = this.timers.get(li.dataset.timerId);
      return o && o !== t && (o.state !== 'pending' || o.deadline > t.deadline);
    });
    if (after) this.list.insertBefore(t.li, after);
    else this.list.append(t.li);
  }

  /** Read GET /timers: add the timers the page did not know, correct every countdown. */
  async poll() {
    if (document.hidden && this.everListed) return;
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    this.polling = true;
    this.lastPoll = performance.now();
    const r = await api.timers(LIMIT);
    this.polling = false;
    const now = performance.now();
    if (r.ok && r.body && Array.isArray(r.body.timers)) {
      this.everListed = true;
      const listed = new Set();
      for (const e of r.body.timers) {
        if (!e || typeof e !== 'object') continue;
        const ref = typeof e.timer === 'string' ? e.timer : e.ref;
        if (typeof ref !== 'string' || !Number.isFinite(e.remaining_ms)) continue;
        listed.add(ref);
        if (this.done.has(ref)) continue;
        let t = this.timers.get(ref);
        if (!t) {
          t = this.makeRow(ref, String(e.server), e.message, e.remaining_ms,
            { own: false, createdBy: e.created_by, intervalMs: e.interval_ms });
        } else if (t.state === 'pending') {
          t.deadline = now + e.remaining_ms;
          if (!t.own && t.createdBy !== e.created_by) {
            t.createdBy = e.created_by;
            setText(t.origin, originText(e.created_by, false));
            t.cancel.hidden = e.created_by !== 'http';
          }
        }
        t.seenAt = now;
      }
      // A timer made elsewhere that is no longer listed fired or was cancelled: it leaves.
      // (Only when the list was complete: past LIMIT a timer may just be further away.)
      const complete = !(r.body.count > r.body.timers.length) && r.body.truncated !== true;
      for (const t of [...this.timers.values()]) {
        if (!t.own && t.state === 'pending' && !listed.has(t.id) && complete) {
          t.li.remove();
          this.timers.delete(t.id);
        }
      }
      const more = Number.isFinite(r.body.count) ? r.body.count - r.body.timers.length : 0;
      this.more.hidden = !(more > 0);
      setText(this.more, more > 0 ? `and ${formatCount(more)} more, further away (GET /timers)` : '');
      this.update();
    }
    if (this.pollAgain) {
      this.pollAgain = false;
      this.poll();
    }
  }

  async cancel(t) {
    if (t.state !== 'pending') return;
    t.cancel.disabled = true;
    const r = await api.cancelTimer(t.id);
    if (r.ok) {
      this.finish(t, 'cancelled', `cancelled with ${formatMs(r.body.remaining_ms)} left`);
    } else if (r.status === 404) {
      this.finish(t, 'fired', 'fired before it could be cancelled');
    } else {
      t.cancel.disabled = false;
      setText(t.left, errorText(r));
    }
  }

  tick() {
    const now = performance.now();
    for (const t of this.timers.values()) {
      if (t.state !== 'pending') continue;
      const remaining = Math.max(0, t.deadline - now);
      if (remaining > Number(t.bar.max)) t.bar.max = remaining;
      t.bar.value = remaining;
      setText(t.left, remaining > 0 ? `${formatMs(remaining)} left` : 'due…');
      const due = remaining <= 0;
      if (t.own && !t.syncing && (now - t.lastSync > (due ? 250 : SYNC_MS))) this.sync(t);
      // A timer made elsewhere that is due has fired (or is about to): read the list again
      // soon rather than show "due…" until the next regular read.
      if (!t.own && due && !this.polling && now - this.lastPoll > DUE_POLL_MS) this.poll();
    }
    if (this.timers.size === 0) {
      clearInterval(this.interval);
      this.interval = null;
    }
  }

  async sync(t) {
    t.syncing = true;
    const r = await api.readTimer(t.id);
    t.syncing = false;
    t.lastSync = performance.now();
    if (t.state !== 'pending') return;
    if (r.ok && Number.isFinite(r.body.remaining_ms)) {
      t.deadline = performance.now() + r.body.remaining_ms;
    } else if (r.status === 404) {
      // Gone: fired, or cancelled by someone else (the API cannot tell which).
      const early = t.deadline - performance.now() > 1000;
      this.finish(t, early ? 'gone' : 'fired', early ? 'gone (cancelled elsewhere?)' : 'fired');
    }
  }

  finish(t, state, text) {
    t.state = state;
    t.li.dataset.state = state;
    t.bar.value = 0;
    t.cancel.hidden = true;
    setText(t.left, text);
    this.done.add(t.id);
    this.list.append(t.li); // below the pending ones
    setTimeout(() => {
      t.li.remove();
      if (this.timers.get(t.id) === t) this.timers.delete(t.id);
      this.update();
    }, t.own ? LINGER_MS : 1500);
    // A read sent before the timer ended may still list it; long after, none will.
    setTimeout(() => this.done.delete(t.id), LINGER_MS + 2 * POLL_MS);
    this.update();
  }

  update() {
    const pending = [...this.timers.values()].filter((t) => t.state === 'pending').length;
    this.empty.hidden = this.timers.size > 0;
    this.list.setAttribute('aria-label', `${pending} pending timer${pending === 1 ? '' : 's'}`);
  }
}
