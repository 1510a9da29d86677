// chart.js: a server's message rate and mailbox length over the last minutes, in inline SVG.
// The span grows from one minute (a fresh page) to five.
//
// History samples every server once a second from what the event stream last said (no extra
// requests), so a server's chart already has a past when it is selected. The rate is the
// difference of messages_handled between samples (reads of the state are not messages: they
// do not count).

import { h, svg } from './dom.js';

export const WINDOW_MS = 5 * 60 * 1000;
const W = 300; // viewBox units; the SVG stretches to its box
const H = 48;

export class History {
  constructor(windowMs = WINDOW_MS) {
    this.windowMs = windowMs;
    this.samples = new Map(); // name -> [{t, handled, mailbox}]
    this.since = Date.now();
  }

  /** The span to draw: the time since the page opened, at least a minute, at most windowMs. */
  span(now = Date.now()) {
    return Math.min(this.windowMs, Math.max(60000, now - this.since));
  }

  /** Record one sample per server in views (Map name -> view). */
  sample(views, now = Date.now()) {
    for (const [name, v] of views) {
      if (!Number.isFinite(v.messages_handled)) continue;
      let list = this.samples.get(name);
      if (!list) this.samples.set(name, (list = []));
      list.push({ t: now, handled: v.messages_handled, mailbox: v.mailbox_len || 0 });
      while (list.length && list[0].t < now - this.windowMs - 2000) list.shift();
    }
    for (const name of this.samples.keys()) if (!views.has(name)) this.samples.delete(name);
  }

  /** [{t, rate, mailbox}] for one server; rate in messages per second. */
  series(name) {
    const list = this.samples.get(name) || [];
    const out = [];
    for (let i = 1; i < list.length; i++) {
      const a = list[i - 1];
      const b = list[i];
      const dt = (b.t - a.t) / 1000;
      const rate = dt > 0 ? Math.max(0, b.handled - a.handled) / dt : 0;
      out.push({ t: b.t, rate, mailbox: b.mailbox });
    }
    return out;
  }
}

/** Draw the two charts of series over the last spanMs into container (replacing it). */
export function renderChart(container, series, spanMs = WINDOW_MS, now = Date.now()) {
  const shown = series.filter((p) => p.t >= now - spanMs);
  const last = shown.length ? shown[shown.length - 1] : null;
  const ago = `${Math.round(spanMs / 60000)} min ago`;
  container.replaceChildren(
    chartRow('messages / s', 'rate', shown, now, spanMs, ago, (v) => v.toFixed(v < 10 ? 1 : 0), last),
    chartRow('mailbox', 'mailbox', shown, now, spanMs, ago, (v) => String(Math.round(v)), last),
    h('div', { class: 'chart-axis muted', 'aria-hidden': 'true' },
      h('span', {}, ago), h('span', {}, 'now')),
  );
}

function chartRow(label, key, series, now, spanMs, ago, fmt, last) {
  const peak = series.reduce((m, p) => Math.max(m, p[key]), 0);
  const max = niceMax(peak);
  const x = (t) => ((t - (now - spanMs)) / spanMs) * W;
  const y = (v) => H - (v / max) * (H - 2) - 1;
  const pts = series.map((p) => `${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`);
  const current = last ? fmt(last[key]) : '–';
  const desc = `${label}: now ${current}, peak ${fmt(peak)} since ${ago}`;
  const plot = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none',
    class: `chart-svg chart-${key}`, role: 'img', 'aria-label': desc },
  svg('line', { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: 'chart-base' }),
  svg('line', { x1: 0, y1: 0.5, x2: W, y2: 0.5, class: 'chart-grid' }));
  if (pts.length > 1) {
    const first = pts[0].split(',')[0];
    const lastX = pts[pts.length - 1].split(',')[0];
    plot.append(
      svg('polygon', { points: `${first},${H} ${pts.join(' ')} ${lastX},${H}`, class: 'chart-area' }),
      svg('polyline', { points: pts.join(' '), class: 'chart-line' }),
    );
  }
  return h('figure', { class: 'chart-row', dataset: { series: key } },
    h('figcaption', {},
      h('span', { class: 'chart-label' }, label),
      h('span', { class: 'chart-now' }, ` now ${current}`),
      h('span', { class: 'muted' }, ` · scale ${fmt(max)}`)),
    plot);
}

function niceMax(v) {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}
