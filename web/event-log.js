// event-log.js: the last lifecycle events (started, stopped, crashed, restarted, down), so a
// crash that the supervisor repaired in a blink is still seen, with its reason.

import { h, jsonInline } from './dom.js';
import { clock } from './format.js';

const MAX = 30;

export class EventLog {
  constructor(list, empty) {
    this.list = list;
    this.empty = empty;
  }

  add(ev) {
    const reason = ev.reason === undefined ? null
      : h('code', { class: 'event-reason' }, jsonInline(ev.reason, 200));
    this.list.prepend(h('li', { class: `event event-${ev.type}`, dataset: { type: ev.type } },
      h('span', { class: 'muted' }, clock()), ' ',
      h('span', { class: 'event-type' }, ev.type), ' ',
      h('span', { class: 'event-server' }, String(ev.server)),
      ev.behaviour ? h('span', { class: 'muted' }, ` (${ev.behaviour})`) : null,
      reason ? ' ' : null, reason));
    this.trim();
  }

  trim() {
    while (this.list.children.length > MAX) this.list.lastElementChild.remove();
    this.empty.hidden = this.list.children.length > 0;
  }

  note(text) {
    this.list.prepend(h('li', { class: 'event event-note muted' }, `${clock()} ${text}`));
    this.trim();
  }
}
