// dom.js: build elements from data without ever parsing HTML.
//
// Server names, states, replies and error messages are untrusted. They only ever reach the
// page as text nodes (textContent) or as values of harmless attributes (title, data-*), never
// through innerHTML, and no attribute name comes from data. The page therefore has nothing to
// sanitize: a state holding "<img src=x onerror=...>" is shown as those characters.

const FORBIDDEN = /^(on|style$|innerhtml$|outerhtml$|href$|src$|srcdoc$)/i;

/**
 * h('li', {class: 'x', title: t}, child, 'text', ...): a new element.
 * props: class, dataset (object), text, on<event> (a function), or attributes whose names are
 * written in this code base. Children: nodes, strings (as text), arrays, null (skipped).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (FORBIDDEN.test(k)) throw new Error(`h(): attribute ${k} is not allowed`);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** svg('polyline', {points: '0,1 2,3'}): an SVG element; numeric attributes only. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (FORBIDDEN.test(k)) throw new Error(`svg(): attribute ${k} is not allowed`);
    el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Set an element's text only when it changed; returns whether it did. */
export function setText(el, text) {
  const s = String(text);
  if (el.textContent === s) return false;
  el.textContent = s;
  return true;
}

/** Replay a one-shot CSS animation class (e.g. a flash on change). */
export function flash(el, cls = 'flash') {
  el.classList.remove(cls);
  void el.offsetWidth; // restart the animation
  el.classList.add(cls);
}

/** A short, single-line JSON rendering of a value for lists and logs (text, not HTML). */
export function jsonInline(value, max = 160) {
  let s;
  try {
    s = JSON.stringify(value);
  } catch {
    s = String(value);
  }
  if (s === undefined) s = 'undefined';
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}
