// json-view.js: a server's state as pretty-printed, collapsible JSON, updated in place.
//
// Objects and arrays are <details> elements, so they fold with a click or the keyboard
// (Enter/Space on the summary) without any script of ours. Which ones are folded is kept by
// path ($, $.count, $[3].name) across updates, and leaves whose value changed since the last
// update flash, which is how a ticker's count is seen moving. Every value is text: a state is
// untrusted data.

import { h } from './dom.js';

const MAX_CHILDREN = 200; // a 10,000-entry journal must not cost 10,000 nodes per update

export class JsonView {
  constructor(container) {
    this.container = container;
    this.collapsed = new Set();
    this.leaves = new Map(); // path -> JSON text at the last render
    this.lastText = undefined;
  }

  /** Forget folds and history (another server was selected). */
  reset() {
    this.collapsed.clear();
    this.leaves = new Map();
    this.lastText = undefined;
    this.container.replaceChildren();
  }

  /** Show value; a no-op when it did not change. */
  render(value) {
    const text = JSON.stringify(value);
    if (text === this.lastText) return;
    const first = this.lastText === undefined;
    this.lastText = text;
    const leaves = new Map();
    const changed = [];
    const root = this.node(value, '$', leaves, changed, first);
    this.leaves = leaves;
    this.container.replaceChildren(root);
    for (const el of changed) el.classList.add('j-changed');
  }

  setAll(open) {
    for (const d of this.container.querySelectorAll('details')) d.open = open;
  }

  node(value, path, leaves, changed, first) {
    if (value === null || typeof value !== 'object') {
      const text = JSON.stringify(value) ?? String(value);
      const type = value === null ? 'null' : typeof value;
      const el = h('span', { class: `j-${type}`, dataset: { path } }, text);
      if (!first && this.leaves.has(path) && this.leaves.get(path) !== text) changed.push(el);
      leaves.set(path, text);
      return el;
    }
    const isArray = Array.isArray(value);
    const [open, close] = isArray ? ['[', ']'] : ['{', '}'];
    const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
    if (entries.length === 0) {
      leaves.set(path, isArray ? '[]' : '{}');
      return h('span', { class: 'j-empty' }, open + close);
    }
    const noun = isArray ? (entries.length === 1 ? 'item' : 'items')
      : (entries.length === 1 ? 'key' : 'keys');
    const summary = h('summary', {},
      h('span', { class: 'j-punct' }, open),
      h('span', { class: 'j-fold', 'aria-hidden': 'true' }, ` … ${close}`),
      h('span', { class: 'j-count' }, ` ${entries.length} ${noun}`));
    const body = h('div', { class: 'j-body' });
    const shown = entries.slice(0, MAX_CHILDREN);
    shown.forEach(([k, v], i) => {
      const childPath = isArray ? `${path}[${k}]` : `${path}.${JSON.stringify(k)}`;
      const row = h('div', { class: 'j-row' });
      if (!isArray) row.append(h('span', { class: 'j-key' }, JSON.stringify(k)), h('span', { class: 'j-punct' }, ': '));
      row.append(this.node(v, childPath, leaves, changed, first));
      if (i < entries.length - 1) row.append(h('span', { class: 'j-punct' }, ','));
      body.append(row);
    });
    if (entries.length > shown.length) {
      body.append(h('div', { class: 'j-more' },
        `… ${entries.length - shown.length} more not shown (first ${MAX_CHILDREN} of ${entries.length})`));
    }
    const details = h('details', { class: 'j-node', dataset: { path } }, summary, body,
      h('span', { class: 'j-punct j-close' }, close));
    details.open = !this.collapsed.has(path);
    details.addEventListener('toggle', () => {
      if (details.open) this.collapsed.delete(path);
      else this.collapsed.add(path);
    });
    return details;
  }
}
