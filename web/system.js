// system.js: the System panel, genserv as a whole, like the first tab of Erlang's observer:
// version, uptime, the schedulers and how busy each one is, memory (the process's resident
// set and what the servers' states and mailboxes take), servers, connections, held calls,
// event streams and, when genserv runs with a store, the store's health.
//
// GET /system is read every POLL_MS while the page is visible, and soon after a lifecycle
// event (a start or a crash changes the counts), at most once per MIN_MS; one read at a time.
// The uptime counts on between reads. Every value reaches the page as text (dom.js).

import { h, setText } from './dom.js';
import { api, errorText } from './api.js';
import { formatBytes, formatCount, formatUptime } from './format.js';

const POLL_MS = 3000;
const MIN_MS = 500;

const num = (x) => (Number.isFinite(x) ? x : NaN);

export class SystemPanel {
  /** o: facts (a <dl>), schedulers (a <ul>), store (a <p>), meta (a status line). */
  constructor({ facts, schedulers, store, meta }) {
    this.factsEl = facts;
    this.schedulersEl = schedulers;
    this.storeEl = store;
    this.meta = meta;
    this.body = null; // the last GET /system answer
    this.readAt = 0; // Date.now() when it came
    this.inFlight = false;
    this.again = false;
    this.lastAt = 0;
    this.timer = null;
    this.bars = []; // [{li, bar, pct}] per scheduler, kept across reads
    setInterval(() => this.refresh(), POLL_MS);
    setInterval(() => this.tickUptime(), 1000);
    this.refresh();
  }

  /** Read GET /system soon (a lifecycle event, a reconnection); reads are at most MIN_MS apart. */
  refresh() {
    if (document.hidden && this.body) return;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    if (this.timer) return;
    const wait = Math.max(0, MIN_MS - (performance.now() - this.lastAt));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.read();
    }, wait);
  }

  async read() {
    this.inFlight = true;
    const r = await api.system();
    this.inFlight = false;
    this.lastAt = performance.now();
    if (r.ok && r.body && typeof r.body === 'object') {
      this.body = r.body;
      this.readAt = Date.now();
      this.meta.classList.remove('error');
      setText(this.meta, '');
      this.render();
    } else {
      this.meta.classList.add('error');
      setText(this.meta, `GET /system: ${errorText(r)}`);
    }
    if (this.again) {
      this.again = false;
      this.refresh();
    }
  }

  uptimeNow() {
    const b = this.body;
    return b ? num(b.uptime_ms) + (Date.now() - this.readAt) : NaN;
  }

  tickUptime() {
    const dd = this.factsEl.querySelector('[data-fact="uptime"]');
    if (dd && this.body) setText(dd, formatUptime(this.uptimeNow()));
  }

  render() {
    const b = this.body;
    const mem = b.memory && typeof b.memory === 'object' ? b.memory : {};
    const scheds = Array.isArray(b.schedulers) ? b.schedulers : [];
    const facts = [
      ['version', typeof b.version === 'string' ? b.version : '–'],
      ['uptime', formatUptime(this.uptimeNow())],
      ['schedulers', formatCount(scheds.length)],
      ['memory (RSS)', formatBytes(num(mem.rss_bytes)), 'resident memory of the genserv process'],
      ['servers\u2019 memory', formatBytes(num(mem.servers_bytes)),
        'what all servers\u2019 states and mailboxes take (approximate)'],
      ['servers', formatCount(num(b.servers))],
      ['connections', formatCount(num(b.connections)), 'open HTTP connections'],
      ['held calls', formatCount(num(b.held_calls)), 'calls held open for a deferred reply'],
      ['event streams', formatCount(num(b.event_streams)), 'open GET /events streams'],
    ];
    // Rebuilt only when a fact's text changed, so that a selection in it survives reads.
    const key = JSON.stringify(facts.filter(([k]) => k !== 'uptime'));
    if (this.factsEl.dataset.key !== key) {
      this.factsEl.dataset.key = key;
      this.factsEl.replaceChildren(...facts.map(([k, v, title]) => h('div', { title: title || null },
        h('dt', {}, k), h('dd', { dataset: { fact: k } }, v))));
    }
    this.renderSchedulers(scheds);
    this.renderStore(b.store);
  }

  renderSchedulers(scheds) {
    while (this.bars.length > scheds.length) this.bars.pop().li.remove();
    while (this.bars.length < scheds.length) {
      const i = this.bars.length;
      const label = h('span', { class: 'sched-id' });
      const bar = h('meter', { min: '0', max: '1', low: '0.7', high: '0.9', optimum: '0' });
      const pct = h('span', { class: 'sched-pct' });
      const li = h('li', { class: 'sched', dataset: { scheduler: String(i) } }, label, bar, pct);
      this.schedulersEl.append(li);
      this.bars.push({ li, label, bar, pct });
    }
    scheds.forEach((s, i) => {
      const b = this.bars[i];
      const id = s && Number.isFinite(s.id) ? s.id : i;
      const u = s && Number.isFinite(s.utilisation) ? Math.min(1, Math.max(0, s.utilisation)) : NaN;
      setText(b.label, `scheduler ${id}`);
      b.bar.value = Number.isFinite(u) ? u : 0;
      b.bar.setAttribute('aria-label', `scheduler ${id} utilisation`);
      setText(b.pct, Number.isFinite(u) ? `${Math.round(u * 100)} %` : '–');
    });
  }

  renderStore(store) {
    if (!store || typeof store !== 'object') {
      this.storeEl.dataset.state = 'none';
      setText(this.storeEl, 'store: none (genserv runs without --data-dir)');
      return;
    }
    const healthy = store.healthy === true;
    this.storeEl.dataset.state = healthy ? 'healthy' : 'unhealthy';
    const parts = [`store: ${healthy ? 'healthy' : 'NOT healthy'}`];
    if (typeof store.path === 'string') parts.push(store.path);
    if (typeof store.durability === 'string') parts.push(`durability ${store.durability}`);
    if (Number.isFinite(store.commit_lag)) parts.push(`commit lag ${formatCount(store.commit_lag)}`);
    if (Number.isFinite(store.errors_total)) parts.push(`${formatCount(store.errors_total)} errors`);
    setText(this.storeEl, parts.join(' · '));
  }
}
