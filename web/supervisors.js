// supervisors.js: the supervision trees (GET /supervisors) as a collapsible tree. A supervisor
// is a <details> element (open or closed by the user, kept across redraws), a server a line;
// each node shows its status and how many times its supervisor restarted it. Selecting a
// server's name selects it in the rest of the page.
//
// The tree is read again (at most every RELOAD_MS) when a lifecycle event arrives: genserv
// has no event of its own for trees, and a started, stopped, crashed, restarted or down server
// is what changes one.

import { request } from './api.js';
import { h } from './dom.js';

const RELOAD_MS = 300;

export class SupervisorTree {
  constructor({ root, empty, onSelectServer }) {
    this.root = root;
    this.empty = empty;
    this.onSelectServer = onSelectServer;
    this.closed = new Set(); // supervisors the user collapsed (all start open)
    this.timer = null;
    this.seq = 0;
  }

  /** Read the trees again soon (coalesced). */
  refresh() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.load();
    }, RELOAD_MS);
  }

  async load() {
    const seq = ++this.seq;
    const r = await request('GET', '/supervisors');
    if (seq !== this.seq || !r.ok || !r.body || !Array.isArray(r.body.supervisors)) return;
    this.render(r.body.supervisors);
  }

  render(trees) {
    this.empty.hidden = trees.length > 0;
    this.root.replaceChildren(...trees.map((t) => h('li', {}, this.node(t))));
  }

  node(n) {
    if (!n || typeof n !== 'object' || typeof n.name !== 'string') return null;
    const facts = [
      h('span', { class: `badge status-${cssWord(n.status)}`, text: String(n.status ?? '?') }),
      h('span', { class: 'muted', text: `restarts ${Number(n.restarts) || 0}` }),
    ];
    if (n.kind !== 'supervisor') {
      const name = h('button', { type: 'button', class: 'link tree-server', text: n.name,
        title: `select ${n.name}`, onclick: () => this.onSelectServer(n.name) });
      return h('div', { class: 'tree-node', dataset: { kind: 'server', name: n.name } },
        name, h('span', { class: 'muted', text: String(n.behaviour ?? '') }), ...facts);
    }
    const children = Array.isArray(n.children) ? n.children : [];
    const details = h('details', { class: 'tree-sup', dataset: { kind: 'supervisor', name: n.name },
      open: !this.closed.has(n.name) },
    h('summary', {}, h('strong', { text: n.name }),
      h('span', { class: 'muted', text: String(n.strategy ?? '') }), ...facts),
    h('ul', { class: 'tree-children' }, children.map((c) => h('li', {}, this.node(c)))));
    details.addEventListener('toggle', () => {
      if (details.open) this.closed.delete(n.name);
      else this.closed.add(n.name);
    });
    return details;
  }
}

// A status as a class name: only the words genserv uses, anything else "unknown".
function cssWord(s) {
  return ['running', 'starting', 'restarting', 'terminating', 'stopping', 'stopped', 'down'].includes(s) ? s : 'unknown';
}
