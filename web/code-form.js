// code-form.js: the form that sends a Lua behaviour's source: a new behaviour (POST
// /behaviours: name, vsn, source) or a new version of one (PUT /behaviours/NAME: vsn, source,
// and extra for its servers' code_change).
//
// The source is typed, pasted, or read from a .lua file the reader picks (the file never leaves
// the page except as the source it shows). A source that does not load stays in the form with
// Lua's message, the line it names and a button that puts the caret on that line; genserv
// changed nothing. Success is handed to the Behaviours panel, which shows what happened.

import { h, setText } from './dom.js';
import { api, errorText } from './api.js';
import { sourceLines, errorLine, selectLine } from './code-view.js';

// A file above this is not read into the editor (genserv's default limit of a source is 1 MiB,
// --lua-max-source-bytes; a larger one it refuses by itself, with its own message).
const MAX_FILE_BYTES = 8 * 1024 * 1024;
const bytes = (s) => new TextEncoder().encode(s).length;

export class CodeForm {
  /**
   * o: form (the form element), onOpened(), onLoaded(body) after a 201, onUpgraded(name, body, oldVsn)
   * after a 200, onClosed() when the form closes without sending.
   */
  constructor({ form, onOpened, onLoaded, onUpgraded, onClosed }) {
    this.form = form;
    this.onOpened = onOpened;
    this.onLoaded = onLoaded;
    this.onUpgraded = onUpgraded;
    this.onClosed = onClosed;
    this.mode = 'new';
    this.target = null; // the behaviour being upgraded: GET /behaviours/NAME's answer
    this.busy = false;
    const $ = (sel) => form.querySelector(sel);
    this.title = $('#bh-form-h');
    this.name = $('#bh-name');
    this.vsn = $('#bh-vsn');
    this.file = $('#bh-file');
    this.source = $('#bh-source');
    this.extra = $('#bh-extra');
    this.submit = $('#bh-submit');
    this.result = $('#bh-form-result');
    this.nameEdited = false;

    this.name.addEventListener('input', () => {
      this.nameEdited = this.name.value !== '';
    });
    this.file.addEventListener('change', () => this.readFile());
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.send();
    });
    this.source.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.send();
      }
    });
    form.querySelector('#bh-cancel').addEventListener('click', () => this.close(true));
  }

  get open() {
    return !this.form.hidden;
  }

  /** Open the form for a new behaviour. */
  openNew() {
    this.show('new', null);
    setText(this.title, 'Upload a new Lua behaviour');
    this.name.value = '';
    this.nameEdited = false;
    this.vsn.value = '1';
    this.source.value = '';
    this.name.focus();
  }

  /** Open the form for a new version of detail (GET /behaviours/NAME of a Lua behaviour). */
  openUpgrade(detail) {
    this.show('upgrade', detail);
    setText(this.title, `Upload a new version of “${detail.name}”`);
    this.vsn.value = nextVsn(detail.vsn);
    this.source.value = typeof detail.source === 'string' ? detail.source : '';
    this.extra.value = '';
    this.vsn.focus();
    this.vsn.select();
  }

  show(mode, target) {
    this.mode = mode;
    this.target = target;
    this.form.dataset.mode = mode;
    for (const el of this.form.querySelectorAll('[data-for-mode]')) el.hidden = el.dataset.forMode !== mode;
    setText(this.submit, mode === 'new' ? 'Upload' : 'Upgrade');
    this.file.value = '';
    this.clearResult();
    this.form.hidden = false;
    this.onOpened();
  }

  /** Close the form; byReader: the reader cancelled (focus goes back where they came from). */
  close(byReader = false) {
    if (!this.open) return;
    this.form.hidden = true;
    this.target = null;
    this.clearResult();
    if (byReader) this.onClosed();
  }

  clearResult() {
    this.result.replaceChildren();
    this.result.classList.remove('error');
  }

  say(text, error = false) {
    this.result.replaceChildren(text);
    this.result.classList.toggle('error', error);
  }

  async readFile() {
    const f = this.file.files && this.file.files[0];
    if (!f) return;
    if (f.size > MAX_FILE_BYTES) {
      this.say(`${f.name} is ${f.size.toLocaleString()} bytes: too large to edit here.`, true);
      return;
    }
    let text;
    try {
      text = await f.text();
    } catch (e) {
      this.say(`Could not read ${f.name}: ${(e && e.message) || e}`, true);
      return;
    }
    this.source.value = text;
    // A folder of behaviours (--behaviours-dir) names each after its file: do the same.
    const base = f.name.replace(/\.lua$/i, '');
    if (this.mode === 'new' && !this.nameEdited && base !== '') this.name.value = base;
    this.say(`Read ${f.name} (${sourceLines(text).length} lines).`);
  }

  /** What the form holds, checked: {name, body} or {error}. */
  collect() {
    const name = this.mode === 'new' ? this.name.value : this.target.name;
    const vsn = this.vsn.value.trim();
    const source = this.source.value;
    if (this.mode === 'new') {
      if (name.length === 0) return { error: 'A behaviour needs a name.' };
      if (bytes(name) > 255) return { error: 'A name is at most 255 bytes.' };
    }
    if (bytes(vsn) > 255) return { error: 'A vsn is at most 255 bytes.' };
    if (source.trim() === '') return { error: 'Write the source, paste it, or read a .lua file.' };
    // An empty vsn is left out: genserv then takes the vsn the source's table gives, if any.
    const body = { vsn: vsn === '' ? undefined : vsn, source };
    if (this.mode === 'new') body.name = name;
    if (this.mode === 'upgrade' && this.extra.value.trim() !== '') {
      try {
        body.extra = JSON.parse(this.extra.value);
      } catch {
        return { error: 'extra is not valid JSON (for a string, quotes: "v2").' };
      }
    }
    return { name, body };
  }

  async send() {
    if (this.busy || !this.open) return;
    const c = this.collect();
    if (c.error) {
      this.say(c.error, true);
      return;
    }
    const mode = this.mode;
    const oldVsn = this.target ? this.target.vsn : null;
    const sentSource = c.body.source;
    this.busy = true;
    this.submit.disabled = true;
    this.say(mode === 'new' ? `loading ${c.name}…` : `upgrading ${c.name}: waiting for each server…`);
    const r = mode === 'new' ? await api.loadBehaviour(c.body) : await api.upgradeBehaviour(c.name, c.body);
    this.busy = false;
    this.submit.disabled = false;
    const same = this.open && this.mode === mode && (mode === 'new' || this.target?.name === c.name);
    if (r.ok) {
      // Done, even if the reader closed the form meanwhile: the panel says what happened.
      if (same) this.close();
      if (mode === 'new') this.onLoaded(r.body);
      else this.onUpgraded(c.name, r.body, oldVsn);
    } else if (same) {
      this.showError(r, c.name, sentSource);
    }
  }

  /** A refused upload: genserv's error, and for a source that does not load, its line. */
  showError(r, name, source) {
    const text = r.status === 400 && r.body && typeof r.body.message === 'string'
      ? `${r.status} ${r.body.error}: ${r.body.message}` : errorText(r);
    const parts = [h('p', { class: 'bh-error-text' }, text)];
    const line = r.status === 400 ? errorLine(r.body && r.body.message, name) : null;
    const lines = sourceLines(source);
    if (line !== null && line >= 1 && line <= lines.length) {
      const go = h('button', { type: 'button', class: 'small' }, `go to line ${line}`);
      go.addEventListener('click', () => selectLine(this.source, line));
      parts.push(h('p', { class: 'bh-error-line' },
        h('span', { class: 'muted' }, `line ${line}: `),
        h('code', { class: 'bh-error-code' }, lines[line - 1]), ' ', go));
    }
    if (r.status === 400) {
      parts.push(h('p', { class: 'muted' }, this.mode === 'upgrade'
        ? 'Nothing changed: the servers go on with the code they had.' : 'Nothing was registered.'));
    }
    this.result.replaceChildren(...parts);
    this.result.classList.add('error');
  }
}

/** The vsn to suggest for a new version: "3" -> "4", "1.2.9" -> "1.2.10", else empty. */
export function nextVsn(vsn) {
  if (typeof vsn !== 'string') return '';
  const m = /^(.*?)(\d+)$/.exec(vsn);
  return m ? `${m[1]}${BigInt(m[2]) + 1n}` : '';
}
