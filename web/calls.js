// calls.js: the log of calls, casts and sends made from this page, newest first.
//
// A call's entry shows "pending" with a running clock until its answer comes, however late
// (genserv holds the HTTP response open for a deferred reply), then the reply or the error and
// how long it took. A browser opens at most six HTTP/1.1 connections to one host and the event
// stream holds one, so the page keeps at most MAX_OPEN calls open and queues the rest in the
// page: that leaves connections for reading states, so the dashboard stays live while a
// batcher holds calls.

import { h, setText, jsonInline } from './dom.js';
import { api, errorText } from './api.js';
import { formatMs, clock } from './format.js';

const MAX_OPEN = 3;
const MAX_ENTRIES = 60;

export class CallLog {
  constructor(list) {
    this.list = list;
    this.open = 0;
    this.queue = [];
    this.pending = new Set(); // entries whose clock runs
    this.timer = null;
  }

  /** Call server with message; resolves to the api result once answered. */
  call(server, message, timeoutMs) {
    const entry = this.add('call', server, message);
    entry.setState('queued', 'queued in the page (too many calls open)');
    return new Promise((resolve) => {
      this.queue.push(async () => {
        entry.start();
        const r = await api.call(server, message, timeoutMs);
        if (r.ok && r.body && 'reply' in r.body) entry.done('ok', `reply ${jsonInline(r.body.reply, 400)}`, r.ms);
        else entry.done('error', errorText(r), r.ms);
        resolve(r);
      });
      this.pump();
    });
  }

  /** Log a cast/send/send_after already made (count times), with its outcome. */
  logSent(kind, server, message, count, results, ms) {
    const entry = this.add(kind, server, message, count);
    const failed = results.filter((r) => !r.ok);
    if (failed.length === 0) {
      const what = kind === 'send_after'
        ? `timer${count > 1 ? 's' : ''} ${results.map((r) => r.body.timer).join(', ')}`
        : 'accepted';
      entry.done('ok', count > 1 ? `${what} (${count} of ${count})` : what, ms);
    } else {
      entry.done('error', `${count - failed.length} of ${count} accepted; ${errorText(failed[0])}`, ms);
    }
  }

  pump() {
    while (this.open < MAX_OPEN && this.queue.length) {
      const run = this.queue.shift();
      this.open += 1;
      run().finally(() => {
        this.open -= 1;
        this.pump();
      });
    }
  }

  add(kind, server, message, count = 1) {
    const status = h('span', { class: 'call-status' });
    const time = h('span', { class: 'call-time muted' });
    const li = h('li', { class: 'call', dataset: { kind, server, state: 'pending' } },
      h('div', { class: 'call-head' },
        h('span', { class: 'call-kind' }, count > 1 ? `${kind} ×${count}` : kind),
        h('span', { class: 'call-server' }, server),
        h('code', { class: 'call-message' }, jsonInline(message)),
        h('span', { class: 'call-clock muted' }, clock())),
      h('div', { class: 'call-outcome' }, status, time));
    this.list.prepend(li);
    while (this.list.children.length > MAX_ENTRIES) {
      const old = this.list.lastElementChild;
      this.pending.delete(old.entry);
      old.remove();
    }
    let t0 = performance.now();
    const entry = {
      li,
      start: () => {
        t0 = performance.now();
        entry.setState('pending', 'pending…');
        this.pending.add(entry);
        this.ensureTicking();
      },
      tick: (now) => setText(time, ` ${formatMs(now - t0)}`),
      setState: (state, text) => {
        li.dataset.state = state;
        setText(status, text);
      },
      done: (state, text, ms) => {
        this.pending.delete(entry);
        entry.setState(state, text);
        setText(time, ` in ${formatMs(ms)}`);
      },
    };
    li.entry = entry;
    return entry;
  }

  ensureTicking() {
    if (this.timer) return;
    this.timer = setInterval(() => {
      const now = performance.now();
      for (const e of this.pending) e.tick(now);
      if (this.pending.size === 0) {
        clearInterval(this.timer);
        this.timer = null;
      }
    }, 100);
  }
}
