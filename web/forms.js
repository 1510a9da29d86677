// forms.js: the form that sends a message to the selected server as a call, cast, send or
// send_after, with the behaviour's documented messages (GET /behaviours) as one-click hints.

import { h, setText, jsonInline } from './dom.js';
import { api } from './api.js';

const SUBMIT_LABEL = { call: 'Call', cast: 'Cast', send: 'Send', send_after: 'Send after delay' };
const KIND_OF_HINT = { call: 'call', cast: 'cast', info: 'send' };

/**
 * Parse the message box. Returns {value} or {error}. A bare word is not JSON: say how to
 * write it rather than guess (is `true` a boolean or an atom?).
 */
export function parseMessage(text) {
  const s = text.trim();
  if (s === '') return { error: 'Write a message in JSON, e.g. "get_count" or ["push", 5].' };
  try {
    return { value: JSON.parse(s) };
  } catch {
    if (/^:?[A-Za-z_][\w?!]*$/.test(s)) {
      return { error: `Not JSON. An atom is a string in quotes: "${s.replace(/^:/, '')}".` };
    }
    return { error: 'Not valid JSON.' };
  }
}

function intField(input, min, max, name) {
  const n = Number(input.value);
  if (input.value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    return { error: `${name} must be an integer from ${min} to ${max}.` };
  }
  return { value: n };
}

export class MessageForm {
  /** o: form, hints, result (elements); calls (CallLog), timers (TimerList). */
  constructor({ form, hints, result, calls, timers }) {
    this.form = form;
    this.hints = hints;
    this.result = result;
    this.calls = calls;
    this.timers = timers;
    this.server = null;
    this.behaviour = null;
    this.text = form.querySelector('#msg-text');
    this.submit = form.querySelector('#msg-submit');
    form.addEventListener('change', (e) => {
      if (e.target.name === 'kind') this.kindChanged();
    });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.send();
    });
    this.text.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.send();
      }
    });
    this.kindChanged();
  }

  get kind() {
    return this.form.elements.kind.value;
  }

  set kind(k) {
    this.form.elements.kind.value = k;
    this.kindChanged();
  }

  kindChanged() {
    const k = this.kind;
    for (const el of this.form.querySelectorAll('[data-for-kind]')) el.hidden = el.dataset.forKind !== k;
    this.submit.textContent = SUBMIT_LABEL[k];
  }

  /** Target another server (name, or null), with the behaviour's description (or null). */
  setServer(name, behaviour) {
    const changed = name !== this.server;
    this.server = name;
    this.behaviour = behaviour;
    for (const el of this.form.elements) el.disabled = name === null;
    if (changed) setText(this.result, '');
    this.hints.replaceChildren();
    if (!behaviour || !Array.isArray(behaviour.messages)) return;
    for (const m of behaviour.messages) {
      const kind = KIND_OF_HINT[m.kind] || 'send';
      const example = jsonInline(m.example, 80);
      const button = h('button', { type: 'button', class: 'hint', title: m.description || null,
        dataset: { kind, message: JSON.stringify(m.example) } },
      h('span', { class: 'hint-kind' }, kind), ' ', h('code', {}, example));
      button.addEventListener('click', () => {
        this.kind = kind;
        this.text.value = JSON.stringify(m.example);
        setText(this.result, m.description || '');
        this.text.focus();
      });
      this.hints.append(button);
    }
  }

  async send() {
    const server = this.server;
    if (server === null) return;
    const kind = this.kind;
    const msg = parseMessage(this.text.value);
    const repeat = intField(this.form.elements.repeat, 1, 100, 'times');
    const timeout = intField(this.form.elements.timeout_ms, 0, 300000, 'timeout_ms');
    const delay = intField(this.form.elements.delay_ms, 0, 2147483647, 'delay_ms');
    const error = msg.error || repeat.error || (kind === 'call' && timeout.error)
      || (kind === 'send_after' && delay.error);
    this.result.classList.toggle('error', Boolean(error));
    if (error) {
      setText(this.result, error);
      return;
    }
    setText(this.result, '');
    const n = repeat.value;

    if (kind === 'call') {
      // All at once: a batcher should see them in one batch (up to the page's open-call cap).
      for (let i = 0; i < n; i++) this.calls.call(server, msg.value, timeout.value);
      return;
    }
    // Casts and sends one after another, so that they arrive in the order sent.
    const t0 = performance.now();
    const results = [];
    for (let i = 0; i < n; i++) {
      let r;
      if (kind === 'cast') r = await api.cast(server, msg.value);
      else if (kind === 'send') r = await api.send(server, msg.value);
      else r = await api.sendAfter(server, msg.value, delay.value);
      results.push(r);
      if (kind === 'send_after' && r.ok) this.timers.add(r.body.timer, server, msg.value, delay.value);
      if (!r.ok) break;
    }
    this.calls.logSent(kind, server, msg.value, n, results, performance.now() - t0);
  }
}
