// behaviours.js: the Behaviours panel. Every behaviour genserv can start, with its kind, its
// vsn and how many servers run it; the selected one's facts and, for a Lua behaviour, its
// source, limits and when it was loaded; uploading a new Lua behaviour or a new version of one
// (code-form.js), and deleting one after a confirmation.
//
// The list is GET /behaviours (app.js reloads it after every change made here, when the event
// stream comes back, and when a server of a behaviour the page does not know starts: genserv
// emits no event for behaviours). The server counts come from the page's live model of servers,
// so they move with the table. Names, sources, reasons and error messages are untrusted: they
// are only ever text.

import { h, setText, jsonInline } from './dom.js';
import { api, errorText } from './api.js';
import { formatCount, formatBytes, formatDate } from './format.js';
import { renderCode, clearCode } from './code-view.js';
import { CodeForm } from './code-form.js';
import { confirmAction } from './lifecycle.js';

const KIND_LABEL = { lua: 'Lua', builtin: 'built-in', plugin: 'plugin', c: 'C' };
const KIND_NOTE = {
  builtin: 'Built into genserv (C): it cannot be upgraded or deleted over HTTP.',
  plugin: 'Loaded from a plugin (a shared object, --plugin): it cannot be upgraded or deleted over HTTP.',
  c: 'Registered by the program that embeds the runtime (C).',
};
const plural = (n, one, many) => `${formatCount(n)} ${n === 1 ? one : many}`;

export class BehaviourPanel {
  /**
   * o: root (the panel), dialog (the confirmation dialog), onChanged() after an upload, an
   * upgrade or a delete (reload the lists), onStart(name) (pick it in the start form),
   * onSelectServer(name).
   */
  constructor({ root, dialog, onChanged, onStart, onSelectServer }) {
    const $ = (sel) => root.querySelector(sel);
    this.dialog = dialog;
    this.onChanged = onChanged;
    this.onStart = onStart;
    this.onSelectServer = onSelectServer;
    this.tbody = $('#behaviours-body');
    this.count = $('#behaviour-count');
    this.outcome = $('#bh-outcome');
    this.detailBox = $('#bh-detail');
    this.detailName = $('#bh-detail-name');
    this.detailKind = $('#bh-detail-kind');
    this.description = $('#bh-description');
    this.facts = $('#bh-facts');
    this.serverList = $('#bh-servers');
    this.sourceBox = $('#bh-source-box');
    this.code = $('#bh-code');
    this.note = $('#bh-note');
    this.upgradeButton = $('#bh-upgrade');
    this.deleteButton = $('#bh-delete');
    this.newButton = $('#bh-new');

    this.list = new Map(); // name -> GET /behaviours entry, in display order
    this.rows = new Map(); // name -> {tr, button, kind, vsn, servers}
    this.servers = new Map(); // behaviour -> [server names], from the live model
    this.selected = null;
    this.detail = null; // GET /behaviours/NAME of the selected one
    this.detailSeq = 0;
    this.serversKey = '';

    this.form = new CodeForm({
      form: $('#bh-form'),
      onOpened: () => {
        this.outcome.hidden = true; // the form's own result speaks now
      },
      onLoaded: (body) => this.loaded(body),
      onUpgraded: (name, body, oldVsn) => this.upgraded(name, body, oldVsn),
      onClosed: () => (this.form.mode === 'upgrade' ? this.upgradeButton : this.newButton).focus(),
    });
    this.newButton.addEventListener('click', () => this.form.openNew());
    this.upgradeButton.addEventListener('click', () => {
      if (this.detail && this.detail.kind === 'lua') this.form.openUpgrade(this.detail);
    });
    this.deleteButton.addEventListener('click', () => this.remove());
    $('#bh-start').addEventListener('click', () => {
      if (this.selected !== null) this.onStart(this.selected);
    });
    $('#bh-reload').addEventListener('click', () => {
      this.onChanged();
      if (this.selected !== null) this.fetchDetail(this.selected);
    });
  }

  // ---- the list --------------------------------------------------------------------------

  /** list: GET /behaviours' behaviours. Lua ones (the reader's own) first, then by name. */
  setList(list) {
    const sorted = list.filter((b) => b && typeof b.name === 'string')
      .sort((a, b) => (a.kind === 'lua' ? 0 : 1) - (b.kind === 'lua' ? 0 : 1) || a.name.localeCompare(b.name));
    this.list = new Map(sorted.map((b) => [b.name, b]));
    for (const [name, row] of this.rows) {
      if (!this.list.has(name)) {
        row.tr.remove();
        this.rows.delete(name);
      }
    }
    for (const b of sorted) {
      let row = this.rows.get(b.name);
      if (!row) {
        row = this.makeRow(b.name);
        this.rows.set(b.name, row);
      }
      row.tr.dataset.kind = b.kind;
      if (setText(row.kind, KIND_LABEL[b.kind] || String(b.kind))) row.kind.className = `badge kind-${b.kind}`;
      setText(row.vsn, b.vsn ?? '–');
      // The description, where the behaviours are listed (the detail shows it in full).
      const title = typeof b.description === 'string' && b.description ? b.description : `show ${b.name}`;
      if (row.button.title !== title) row.button.title = title;
    }
    // Rows move only when the order changed, keeping the keyboard focus where it was.
    const order = sorted.map((b) => this.rows.get(b.name).tr);
    if (order.some((tr, i) => this.tbody.children[i] !== tr)) {
      const focused = this.tbody.contains(document.activeElement) ? document.activeElement : null;
      this.tbody.append(...order);
      if (focused && focused.isConnected) focused.focus({ preventScroll: true });
    }
    setText(this.count, `(${this.list.size})`);
    this.fillCounts();
    if (this.selected !== null) {
      const b = this.list.get(this.selected);
      if (!b) this.gone(this.selected, false);
      // Changed elsewhere (a reload after another client's upgrade): read it again.
      else if (this.detail && this.detail.vsn !== b.vsn) this.fetchDetail(this.selected);
    }
  }

  makeRow(name) {
    const button = h('button', { type: 'button', class: 'row-select', 'aria-pressed': 'false',
      title: `show ${name}` }, name);
    button.addEventListener('click', () => this.select(name));
    const kind = h('span', { class: 'badge' });
    const vsn = h('td', { dataset: { col: 'vsn' } });
    const servers = h('td', { class: 'num', dataset: { col: 'servers' } });
    const tr = h('tr', { dataset: { name } },
      h('td', { dataset: { col: 'name' } }, button), h('td', { dataset: { col: 'kind' } }, kind),
      vsn, servers);
    tr.addEventListener('click', (e) => {
      if (!e.target.closest('button')) this.select(name);
    });
    if (name === this.selected) this.markSelected(tr, button, true);
    return { tr, button, kind, vsn, servers };
  }

  markSelected(tr, button, on) {
    tr.classList.toggle('selected', on);
    button.setAttribute('aria-pressed', on ? 'true' : 'false');
  }

  /** serversOf: Map behaviour -> [server names] of the live model (app.js, each redraw). */
  render(serversOf) {
    this.servers = serversOf;
    this.fillCounts();
    if (this.detail) this.fillServers();
  }

  fillCounts() {
    for (const [name, row] of this.rows) setText(row.servers, formatCount((this.servers.get(name) || []).length));
  }

  // ---- the selected behaviour ------------------------------------------------------------

  select(name) {
    if (this.selected !== null && this.rows.has(this.selected)) {
      const old = this.rows.get(this.selected);
      this.markSelected(old.tr, old.button, false);
    }
    this.selected = name;
    // The last outcome is about one behaviour: it goes when another is chosen.
    if (this.outcome.dataset.subject !== name) this.outcome.hidden = true;
    const row = this.rows.get(name);
    if (row) this.markSelected(row.tr, row.button, true);
    if (this.form.open && this.form.mode === 'upgrade' && this.form.target?.name !== name) this.form.close();
    this.detail = null;
    this.serversKey = '';
    this.fetchDetail(name);
  }

  async fetchDetail(name) {
    const seq = ++this.detailSeq;
    this.detailBox.hidden = false;
    setText(this.detailName, name);
    if (!this.detail || this.detail.name !== name) {
      this.detailKind.hidden = true;
      this.facts.replaceChildren();
      this.serverList.replaceChildren();
      this.sourceBox.hidden = true;
      clearCode(this.code);
      setText(this.description, 'reading…');
      this.upgradeButton.hidden = true;
      this.deleteButton.hidden = true;
    }
    const r = await api.behaviour(name);
    if (seq !== this.detailSeq || this.selected !== name) return;
    if (!r.ok) {
      if (r.status === 404) this.gone(name);
      else setText(this.description, `could not read it: ${errorText(r)}`);
      return;
    }
    this.detail = r.body;
    this.fillDetail();
  }

  /** The selected behaviour is no longer registered (deleted here or elsewhere). */
  gone(name, reload = true) {
    this.selected = null;
    this.detail = null;
    this.detailSeq += 1;
    this.detailBox.hidden = true;
    if (this.form.open && this.form.mode === 'upgrade' && this.form.target?.name === name) this.form.close();
    if (reload) this.onChanged();
  }

  fillDetail() {
    const d = this.detail;
    const lua = d.kind === 'lua';
    setText(this.detailName, d.name);
    this.detailKind.hidden = false;
    setText(this.detailKind, KIND_LABEL[d.kind] || String(d.kind));
    this.detailKind.className = `badge kind-${d.kind}`;
    setText(this.description, typeof d.description === 'string' ? d.description : '');
    setText(this.note, lua ? '' : KIND_NOTE[d.kind] || '');
    this.note.hidden = lua;
    this.upgradeButton.hidden = !lua;
    this.deleteButton.hidden = !lua;

    const facts = [['kind', KIND_LABEL[d.kind] || String(d.kind)], ['vsn', d.vsn ?? '–']];
    if (lua) {
      facts.push(['loaded', d.loaded_at ? formatDate(d.loaded_at) : '–', d.loaded_at]);
      const lim = d.limits && typeof d.limits === 'object' ? d.limits : {};
      facts.push(['memory per server', formatBytes(lim.memory_bytes),
        Number.isFinite(lim.memory_bytes) ? `${lim.memory_bytes} bytes` : null]);
      facts.push(['instructions per callback', formatCount(lim.instructions)]);
    } else if (d.args !== undefined && d.args !== null) {
      facts.push(['default init args', jsonInline(d.args, 200)]);
    }
    this.facts.replaceChildren(...facts.map(([k, v, title]) =>
      h('div', { class: String(v).length > 24 ? 'wide' : null },
        h('dt', {}, k), h('dd', { dataset: { fact: k }, title: title || null }, v))));
    this.serversKey = '';
    this.fillServers();

    this.sourceBox.hidden = !lua;
    if (lua) {
      this.code.setAttribute('aria-label', `source of ${d.name}, vsn ${d.vsn ?? 'none'}`);
      renderCode(this.code, d.source);
    } else {
      clearCode(this.code);
    }
  }

  /** The servers that run the selected behaviour, as buttons that select them. */
  fillServers() {
    const names = [...(this.servers.get(this.detail.name) || [])].sort();
    const key = JSON.stringify(names);
    if (key === this.serversKey) return;
    this.serversKey = key;
    const text = h('span', { class: 'muted' },
      names.length ? `${plural(names.length, 'server runs', 'servers run')} it: ` : 'No server runs it.');
    if (names.length === 0) this.serverList.replaceChildren(text);
    else this.serverList.replaceChildren(text, h('ul', { class: 'bh-server-list' },
      names.map((n) => h('li', {}, this.serverButton(n)))));
  }

  serverButton(name) {
    const b = h('button', { type: 'button', class: 'link', title: `select server ${name}` }, name);
    b.addEventListener('click', () => this.onSelectServer(name));
    return b;
  }

  // ---- outcomes of uploads, upgrades and deletes --------------------------------------------

  /** Show what an action on behaviour subject did: state ok or error, parts (nodes or text). */
  showOutcome(subject, action, state, ...parts) {
    this.outcome.hidden = false;
    this.outcome.dataset.subject = subject;
    this.outcome.dataset.action = action;
    this.outcome.dataset.state = state;
    this.outcome.replaceChildren(...parts.filter((p) => p !== null)); // (null would be "null")
    this.outcome.focus({ preventScroll: false });
  }

  loaded(body) {
    const name = body.name;
    const start = h('button', { type: 'button', class: 'small' }, 'start a server of it');
    start.addEventListener('click', () => this.onStart(name));
    this.onChanged();
    this.select(name);
    this.showOutcome(name, 'loaded', 'ok', h('p', {}, `Loaded “${name}”`,
      body.vsn != null ? `, vsn ${body.vsn}` : ' (no vsn)', '. ', start));
  }

  upgraded(name, body, oldVsn) {
    const outcomes = Array.isArray(body.outcomes) ? body.outcomes : [];
    const ok = Number(body.upgraded) || 0;
    const failed = Number(body.failed) || 0;
    // The behaviour's vsn before and after. A server whose code_change failed before may run
    // an older one still (genserv does not say which vsn a server runs).
    const vsn = (v) => (v != null ? `vsn ${v}` : 'no vsn');
    let summary = `“${name}” is now ${vsn(body.vsn)} (was ${vsn(oldVsn)}): `;
    if (outcomes.length === 0) {
      summary += 'no server runs it; new servers start with the new code.';
    } else {
      summary += `${plural(ok, 'server', 'servers')} upgraded, `
        + `${plural(failed, 'server', 'servers')} kept the old code.`;
    }
    const list = outcomes.map((o) => {
      const server = typeof o.server === 'string' ? o.server : String(o.server);
      const good = o.ok === true;
      return h('li', { class: 'bh-outcome-item', dataset: { server, outcome: good ? 'ok' : 'error' } },
        this.serverButton(server), ' ',
        h('span', { class: `badge ${good ? 'status-running' : 'status-down'}` }, good ? 'ok' : 'error'),
        good ? h('span', { class: 'muted' }, ' code_change ran; it runs the new code')
          : [' ', h('code', { class: 'bh-reason' }, jsonInline(o.error, 400)),
            h('span', { class: 'muted' }, ' it keeps its old code and state')]);
    });
    this.onChanged();
    if (this.selected === name) this.fetchDetail(name);
    this.showOutcome(name, 'upgraded', failed > 0 ? 'error' : 'ok', h('p', {}, summary),
      list.length ? h('ul', { class: 'bh-outcomes' }, list) : null);
  }

  async remove() {
    const d = this.detail;
    if (!d || d.kind !== 'lua') return;
    const name = d.name;
    const go = await confirmAction(this.dialog, { title: 'Delete behaviour', ok: 'Delete',
      text: `Delete the Lua behaviour “${name}”? Its code leaves genserv and no server can start `
        + 'with it any more. genserv refuses while a server runs it.' });
    this.deleteButton.focus();
    if (!go) return;
    const r = await api.deleteBehaviour(name);
    if (r.ok) {
      if (this.selected === name) this.gone(name);
      else this.onChanged();
      this.showOutcome(name, 'deleted', 'ok', h('p', {}, `Deleted “${name}”.`));
      return;
    }
    const servers = r.body && Array.isArray(r.body.servers) ? r.body.servers.map(String) : null;
    if (r.status === 409 && servers) {
      this.showOutcome(name, 'delete-refused', 'error',
        h('p', {}, `Not deleted: ${r.status} ${r.body.error}. `,
          `${plural(servers.length, 'server runs', 'servers run')} “${name}”; stop `,
          servers.length === 1 ? 'it' : 'them', ' first:'),
        h('ul', { class: 'bh-server-list' }, servers.map((s) => h('li', {}, this.serverButton(s)))));
    } else {
      this.showOutcome(name, 'delete-refused', 'error', h('p', {}, `Not deleted: ${errorText(r)}`));
    }
  }
}
