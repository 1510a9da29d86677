// lifecycle.js: start a server from the behaviour list, stop one after a confirmation (the
// page's one confirmation dialog, which the Behaviours panel's delete uses too).
//
// The confirmation is an in-page <dialog> (modal, Escape cancels), not window.confirm(): it
// can be styled for dark mode, and a page that never opens a native dialog lets the browser
// test treat any dialog as injected script.

import { h, setText, jsonInline } from './dom.js';
import { api, errorText } from './api.js';
import { parseMessage } from './forms.js';

export class StartForm {
  /** o: form (the start form), onStarted(name), serverNames() -> Set of names in use. */
  constructor({ form, onStarted, serverNames }) {
    this.form = form;
    this.onStarted = onStarted;
    this.serverNames = serverNames;
    this.behaviours = new Map();
    this.select = form.querySelector('#start-behaviour');
    this.name = form.querySelector('#start-name');
    this.args = form.querySelector('#start-args');
    this.description = form.querySelector('#start-description');
    this.messages = form.querySelector('#start-messages');
    this.result = form.querySelector('#start-result');
    this.nameEdited = false;
    this.name.addEventListener('input', () => {
      this.nameEdited = this.name.value !== '';
    });
    this.select.addEventListener('change', () => this.behaviourChanged());
    // An answer describes the form as it was sent; editing it makes the answer stale.
    form.addEventListener('input', () => this.clearResult());
    form.addEventListener('change', () => this.clearResult());
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.start();
    });
  }

  /** list: GET /behaviours' behaviours. */
  setBehaviours(list) {
    const current = this.select.value;
    const was = JSON.stringify(this.behaviours.get(current) ?? null);
    this.behaviours = new Map(list.map((b) => [b.name, b]));
    this.select.replaceChildren(...list.map((b) => h('option', { value: b.name,
      title: typeof b.description === 'string' && b.description ? b.description : null }, b.name)));
    if (this.behaviours.has(current)) this.select.value = current;
    // The list is reloaded after every upload: what the reader typed stays unless the chosen
    // behaviour itself changed (or went).
    if (this.select.value !== current || JSON.stringify(this.behaviours.get(current)) !== was) {
      this.behaviourChanged();
    }
  }

  /** Pick behaviour name in the form (from the Behaviours panel) and move to its name field. */
  choose(name) {
    if (!this.behaviours.has(name)) return;
    this.select.value = name;
    this.nameEdited = false; // suggest a free name for this behaviour
    this.clearResult();
    this.behaviourChanged();
    this.name.focus();
  }

  behaviourChanged() {
    const b = this.behaviours.get(this.select.value);
    if (!b) return;
    setText(this.description, b.description || '');
    this.args.value = b.args === null || b.args === undefined ? '' : JSON.stringify(b.args, null, 1)
      .replace(/\n\s*/g, ' ');
    this.messages.replaceChildren(...(b.messages || []).map((m) => h('li', {},
      h('span', { class: 'hint-kind' }, m.kind), ' ', h('code', {}, jsonInline(m.example, 80)),
      m.description ? h('span', { class: 'muted' }, ` ${m.description}`) : null)));
    if (!this.nameEdited) this.name.value = this.freeName(b.name);
  }

  clearResult() {
    setText(this.result, '');
    this.result.classList.remove('error');
  }

  freeName(base) {
    const used = this.serverNames();
    if (!used.has(base)) return base;
    for (let i = 2; ; i++) if (!used.has(`${base}_${i}`)) return `${base}_${i}`;
  }

  async start() {
    const name = this.name.value;
    const spec = { name, behaviour: this.select.value,
      restart: this.form.elements.restart.value };
    if (this.form.elements.sensitive.checked) spec.sensitive = true;
    if (this.form.elements.durable.checked) spec.durable = true;
    let error = null;
    if (name.length === 0) error = 'A server needs a name.';
    else if (new TextEncoder().encode(name).length > 255) error = 'A name is at most 255 bytes.';
    if (!error && this.args.value.trim() !== '') {
      const args = parseMessage(this.args.value);
      if (args.error) error = `init args: ${args.error}`;
      else spec.args = args.value;
    }
    this.result.classList.toggle('error', Boolean(error));
    if (error) {
      setText(this.result, error);
      return;
    }
    setText(this.result, `starting ${name}…`);
    const r = await api.start(spec);
    this.result.classList.toggle('error', !r.ok);
    if (!r.ok) {
      setText(this.result, errorText(r));
      return;
    }
    setText(this.result, `started ${name}`);
    this.nameEdited = false;
    this.onStarted(r.body);
    this.name.value = this.freeName(spec.behaviour);
  }
}

/**
 * Ask, in the page's own dialog, whether to go ahead: title, text and the ok button's label
 * (the dialog serves every confirmation of the page). Resolves true to go ahead.
 */
export function confirmAction(dialog, { title, text, ok }) {
  setText(dialog.querySelector('#confirm-h'), title);
  setText(dialog.querySelector('#confirm-text'), text);
  setText(dialog.querySelector('#confirm-ok'), ok);
  return new Promise((resolve) => {
    dialog.returnValue = '';
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
  });
}

/** Ask whether to stop name; resolves true to go ahead. */
export function confirmStop(dialog, name) {
  return confirmAction(dialog, { title: 'Stop server', ok: 'Stop',
    text: `Stop “${name}”? It handles what is already in its mailbox, its terminate runs, `
      + 'callers it still holds get server_stopped, and it is not restarted.' });
}

/** Stop name after confirming; returns {stopped, text}. */
export async function stopServer(dialog, name) {
  if (!(await confirmStop(dialog, name))) return { stopped: false, text: '' };
  const r = await api.stop(name);
  if (r.ok) return { stopped: true, text: `stopped ${name}` };
  return { stopped: false, text: errorText(r) };
}
