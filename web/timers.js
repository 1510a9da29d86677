// timers.js: the send_after timers made from this page, counting down, cancellable.
//
// The page lists the timers it made itself. A timer's reference is opaque (48 hex digits that
// cannot be guessed); the list shows a short tag of it and keeps the whole for the API. The
// countdown runs locally from the delay; GET /timers/REF corrects it every few seconds and,
// once the time is up, tells whether the timer fired (404 no_such_timer). DELETE /timers/REF
// cancels it. Finished timers stay in the list for a few seconds, marked fired or cancelled,
// then leave.

import { h, setText, jsonInline } from './dom.js';
import { api, errorText } from './api.js';
import { formatMs } from './format.js';

const SYNC_MS = 5000; // how often a pending timer is read from genserv

// A reference is the timer's number (16 hex digits) and a MAC (32): the number, without its
// leading zeros, tells the page's timers apart.
function shortRef(ref) {
  const s = String(ref);
  return s.length === 48 ? s.slice(0, 16).replace(/^0+(?=.)/, '') : s;
}
const LINGER_MS = 8000; // how long a finished timer stays in the list

export class TimerList {
  constructor(list, empty) {
    this.list = list;
    this.empty = empty;
    this.timers = new Map(); // id -> timer
    this.interval = null;
  }

  add(id, server, message, delayMs) {
    const left = h('span', { class: 'timer-left' });
    const bar = h('progress', { max: String(Math.max(1, delayMs)), value: String(delayMs),
      'aria-label': `time left on timer ${id}` });
    const cancel = h('button', { type: 'button', class: 'small' }, 'cancel');
    const li = h('li', { class: 'timer', dataset: { timerId: String(id), state: 'pending', server } },
      h('div', { class: 'timer-head' },
        h('span', { class: 'timer-id', title: String(id) }, `#${shortRef(id)}`),
        h('span', { class: 'timer-server' }, server),
        h('code', { class: 'timer-message' }, jsonInline(message))),
      h('div', { class: 'timer-body' }, bar, left, cancel));
    const t = { id, li, left, bar, cancel, delayMs, deadline: performance.now() + delayMs,
      state: 'pending', lastSync: performance.now(), syncing: false };
    cancel.setAttribute('aria-label', `cancel timer ${id} to ${server}`);
    cancel.addEventListener('click', () => this.cancel(t));
    this.timers.set(id, t);
    this.list.prepend(li);
    this.update();
    this.tick();
    if (!this.interval) this.interval = setInterval(() => this.tick(), 200);
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
      t.bar.value = remaining;
      setText(t.left, remaining > 0 ? `${formatMs(remaining)} left` : 'due…');
      const due = remaining <= 0;
      if (!t.syncing && (now - t.lastSync > (due ? 250 : SYNC_MS))) this.sync(t);
    }
    if (![...this.timers.values()].some((t) => t.state === 'pending')) {
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
    setTimeout(() => {
      t.li.remove();
      this.timers.delete(t.id);
      this.update();
    }, LINGER_MS);
    this.update();
  }

  update() {
    const pending = [...this.timers.values()].filter((t) => t.state === 'pending').length;
    this.empty.hidden = this.timers.size > 0;
    this.list.setAttribute('aria-label', `${pending} pending timer${pending === 1 ? '' : 's'}`);
  }
}
