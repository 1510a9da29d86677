// table.js: the table of servers, sortable and filterable, updated in place.
//
// Rows are keyed by server name and kept across updates: only cells whose text changed are
// rewritten (and flash), and rows are only moved when the order changes, so the keyboard
// focus and the reader's eye stay where they were while events stream in.

import { h, setText, flash } from './dom.js';
import { formatBytes, formatCount, formatUptime } from './format.js';
import { STATUSES } from './schema.js';

// Sorting by status follows the runtime's own order of statuses.
const STATUS_ORDER = Object.fromEntries(STATUSES.map((s, i) => [s, i]));

export const COLUMNS = [
  { key: 'name', label: 'name', kind: 'text' },
  { key: 'behaviour', label: 'behaviour', kind: 'text' },
  { key: 'status', label: 'status', kind: 'status' },
  { key: 'mailbox_len', label: 'mailbox', kind: 'num', title: 'messages waiting' },
  { key: 'messages_handled', label: 'handled', kind: 'num', title: 'messages handled' },
  { key: 'restarts', label: 'restarts', kind: 'num' },
  { key: 'held_calls', label: 'held calls', kind: 'num',
    title: 'calls the server holds open for a deferred reply' },
  { key: 'memory_bytes', label: 'memory', kind: 'num',
    title: 'what its state and mailbox take (approximate)' },
  { key: 'uptime', label: 'uptime', kind: 'num' },
];

export class ServerTable {
  /**
   * @param {object} o  table, tbody, filter (input), count and empty (elements),
   *                    onSelect(name) when a row is chosen.
   */
  constructor({ table, tbody, filter, count, empty, onSelect }) {
    this.tbody = tbody;
    this.filter = filter;
    this.count = count;
    this.empty = empty;
    this.onSelect = onSelect;
    this.rows = new Map(); // name -> {tr, cells: {key: td}, button}
    this.sort = { key: 'name', dir: 1 };
    this.selected = null;
    this.order = [];
    this.views = new Map();
    this.headers = new Map();

    const tr = table.tHead.rows[0];
    for (const col of COLUMNS) {
      const button = h('button', { type: 'button', class: 'sort', title: col.title || null,
        dataset: { sort: col.key } }, col.label, h('span', { class: 'sort-mark',
        'aria-hidden': 'true' }));
      button.addEventListener('click', () => this.sortBy(col.key));
      const th = h('th', { scope: 'col', class: col.kind === 'num' ? 'num' : null }, button);
      this.headers.set(col.key, th);
      tr.append(th);
    }
    filter.addEventListener('input', () => this.render(this.views));
    tbody.addEventListener('click', (e) => {
      const row = e.target.closest('tr');
      if (row && row.dataset.name !== undefined && !e.target.closest('button')) {
        this.onSelect(row.dataset.name);
      }
    });
    this.updateHeaders();
  }

  sortBy(key) {
    this.sort = this.sort.key === key ? { key, dir: -this.sort.dir } : { key, dir: 1 };
    this.updateHeaders();
    this.render(this.views);
  }

  updateHeaders() {
    for (const [key, th] of this.headers) {
      const on = key === this.sort.key;
      th.setAttribute('aria-sort', on ? (this.sort.dir > 0 ? 'ascending' : 'descending') : 'none');
      th.querySelector('.sort-mark').textContent = on ? (this.sort.dir > 0 ? ' ▲' : ' ▼') : '';
    }
  }

  select(name) {
    this.selected = name;
    for (const [n, row] of this.rows) {
      const on = n === name;
      row.tr.classList.toggle('selected', on);
      row.button.setAttribute('aria-pressed', on ? 'true' : 'false');
    }
  }

  /** Bring the table in line with views (Map name -> server view; see app.js). */
  render(views, now = Date.now()) {
    this.views = views;
    for (const [name, row] of this.rows) {
      if (!views.has(name)) {
        row.tr.remove();
        this.rows.delete(name);
      }
    }
    for (const [name, v] of views) {
      let row = this.rows.get(name);
      if (!row) {
        row = this.makeRow(name);
        this.rows.set(name, row);
      }
      this.fillRow(row, v, now);
    }

    const needle = this.filter.value.trim().toLowerCase();
    const shown = [...views.values()].filter((v) => !needle
      || v.name.toLowerCase().includes(needle)
      || String(v.behaviour || '').toLowerCase().includes(needle));
    shown.sort((a, b) => this.compare(a, b, now));
    const order = shown.map((v) => v.name);

    const same = order.length === this.order.length && order.every((n, i) => n === this.order[i]);
    if (!same) {
      const focused = this.tbody.contains(document.activeElement) ? document.activeElement : null;
      for (const row of this.rows.values()) row.tr.hidden = true;
      for (const name of order) {
        const { tr } = this.rows.get(name);
        tr.hidden = false;
        this.tbody.append(tr); // moves it to the end: rows end up in `order`
      }
      if (focused && focused.isConnected) focused.focus({ preventScroll: true });
      this.order = order;
    }

    setText(this.count, needle ? `(${order.length} of ${views.size})` : `(${views.size})`);
    this.empty.hidden = order.length > 0;
    if (order.length === 0) {
      setText(this.empty, views.size ? 'No server matches the filter.' : 'No server is running.');
    }
  }

  /** The uptime column only, once a second. */
  tick(now) {
    for (const [name, row] of this.rows) {
      const v = this.views.get(name);
      if (v) setText(row.cells.uptime, formatUptime(uptimeOf(v, now)));
    }
    if (this.sort.key === 'uptime') this.render(this.views, now);
  }

  makeRow(name) {
    const cells = {};
    const button = h('button', { type: 'button', class: 'row-select', 'aria-pressed': 'false',
      title: `select ${name}` }, name);
    button.addEventListener('click', () => this.onSelect(name));
    const tr = h('tr', { dataset: { name } });
    for (const col of COLUMNS) {
      // data-label: the column's name, shown above the value when a narrow window lays rows
      // out as cards (style.css).
      const td = h('td', { class: col.kind === 'num' ? 'num' : null,
        dataset: { col: col.key, label: col.label } });
      if (col.key === 'name') td.append(button, h('span', { class: 'badge durable', hidden: true,
        title: 'durable: its state and timers are stored and survive a restart' }, 'durable'));
      if (col.key === 'status') td.append(h('span', { class: 'badge' }));
      cells[col.key] = td;
      tr.append(td);
    }
    if (name === this.selected) {
      tr.classList.add('selected');
      button.setAttribute('aria-pressed', 'true');
    }
    return { tr, cells, button, fresh: true };
  }

  fillRow(row, v, now) {
    const { cells } = row;
    const fresh = row.fresh;
    row.fresh = false;
    setText(cells.behaviour, v.behaviour || '');
    const durable = cells.name.lastChild;
    durable.hidden = v.durable !== true;
    const badge = cells.status.firstChild;
    if (setText(badge, v.display)) badge.className = `badge status-${v.display}`;
    const crash = v.last_crash_reason == null ? '' : `last crash: ${JSON.stringify(v.last_crash_reason)}`;
    if (crash) cells.status.title = crash;
    else cells.status.removeAttribute('title');
    for (const key of ['mailbox_len', 'messages_handled', 'restarts', 'held_calls']) {
      if (setText(cells[key], formatCount(v[key])) && !fresh) flash(cells[key]);
    }
    setText(cells.memory_bytes, formatBytes(v.memory_bytes));
    const m = v.memory && typeof v.memory === 'object' ? v.memory : null;
    if (m) cells.memory_bytes.title = `state ${formatBytes(m.state_bytes)}, mailbox ${formatBytes(m.mailbox_bytes)}`;
    cells.held_calls.classList.toggle('hot', v.held_calls > 0);
    cells.mailbox_len.classList.toggle('hot', v.mailbox_len > 0);
    setText(cells.uptime, formatUptime(uptimeOf(v, now)));
  }

  compare(a, b, now) {
    const { key, dir } = this.sort;
    let x;
    let y;
    if (key === 'status') {
      x = STATUS_ORDER[a.display] ?? 9;
      y = STATUS_ORDER[b.display] ?? 9;
    } else if (key === 'uptime') {
      x = uptimeOf(a, now);
      y = uptimeOf(b, now);
    } else {
      x = a[key];
      y = b[key];
    }
    let c;
    if (typeof x === 'number' && typeof y === 'number') c = x - y;
    else c = String(x ?? '').localeCompare(String(y ?? ''));
    if (c === 0 && key !== 'name') c = a.name.localeCompare(b.name);
    return c * dir;
  }
}

/** A running server's uptime now, from the uptime it reported and when it reported it. */
export function uptimeOf(v, now) {
  if (!Number.isFinite(v.uptime_ms)) return NaN;
  return v.status === 'running' ? v.uptime_ms + Math.max(0, now - v.receivedAt) : v.uptime_ms;
}
