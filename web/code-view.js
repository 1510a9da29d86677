// code-view.js: source code as numbered lines, read-only, without a highlighter.
//
// Every line is a text node in its own block (a behaviour's source is untrusted data); the
// numbers are CSS counters (style.css, .code-line::before), so they are neither in the text a
// reader selects and copies nor in what the test reads back as the source.

import { h } from './dom.js';

/** The lines of a source text ("\r\n", "\n" or "\r" ends a line, as in Lua). */
export function sourceLines(text) {
  return String(text).split(/\r\n|\n\r|\n|\r/);
}

/** Show source in pre (a <pre class="code">); a no-op when it did not change. */
export function renderCode(pre, source) {
  const text = String(source ?? '');
  if (pre.dataset.rendered === 'yes' && pre.sourceText === text) return;
  const lines = sourceLines(text);
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop(); // the final newline
  pre.sourceText = text;
  pre.dataset.rendered = 'yes';
  pre.classList.toggle('code-wide-gutter', lines.length >= 1000);
  pre.replaceChildren(...lines.map((line) => h('span', { class: 'code-line' }, line)));
}

/** Forget what pre shows. */
export function clearCode(pre) {
  pre.sourceText = undefined;
  delete pre.dataset.rendered;
  pre.replaceChildren();
}

/**
 * The line a Lua load error names: "name:4: '}' expected near 'end'" -> 4 (Lua prefixes its
 * messages with the chunk's name, which is the behaviour's, and the line). null if none.
 */
export function errorLine(message, chunkName) {
  if (typeof message !== 'string') return null;
  let rest = message;
  if (chunkName && message.startsWith(`${chunkName}:`)) rest = message.slice(chunkName.length);
  const m = /^:(\d+):/.exec(rest) || /:(\d+): /.exec(message);
  return m ? Number(m[1]) : null;
}

/** Put textarea's caret on (1-based) line n, select that line and scroll it into view. */
export function selectLine(textarea, n) {
  const lines = textarea.value.split('\n');
  const index = Math.min(Math.max(1, n), lines.length) - 1;
  let start = 0;
  for (let i = 0; i < index; i++) start += lines[i].length + 1;
  textarea.focus();
  textarea.setSelectionRange(start, start + lines[index].length);
  const lineHeight = parseFloat(getComputedStyle(textarea).lineHeight) || 18;
  textarea.scrollTop = Math.max(0, (index - 2) * lineHeight);
}
