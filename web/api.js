// api.js: the HTTP contract of docs/API.md, as small fetch helpers.
//
// Every helper resolves (never rejects) to {ok, status, body, ms}: body is the parsed JSON
// answer (an {error, message, reason?} object on failure, or a synthetic one when the network
// or the JSON failed), ms the time from sending to the whole answer.

// The bearer token, when genserv runs with --token or --read-token (docs/API.md, Access). It is
// kept for this tab only (sessionStorage), asked for when an answer is 401.
const TOKEN_KEY = 'genserv.token';
let token = null;
try {
  token = sessionStorage.getItem(TOKEN_KEY);
} catch {
  token = null; // storage disabled: ask again after a reload
}
let onUnauthorized = () => {};

export const auth = {
  get token() {
    return token;
  },
  set(t) {
    token = t || null;
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // not kept; fine
    }
  },
  /** fn() is called on every 401 answer. */
  onUnauthorized(fn) {
    onUnauthorized = fn;
  },
  /** The event stream's URL: EventSource cannot send headers, so the token is a parameter. */
  eventsUrl() {
    return token ? `/events?access_token=${encodeURIComponent(token)}` : '/events';
  },
};

export async function request(method, path, body) {
  const t0 = performance.now();
  const init = { method, cache: 'no-store', headers: { Accept: 'application/json' } };
  const sentToken = token;
  if (sentToken) init.headers.Authorization = `Bearer ${sentToken}`;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  let text;
  try {
    res = await fetch(path, init);
    text = await res.text();
  } catch (e) {
    return {
      ok: false, status: 0, ms: performance.now() - t0,
      body: { error: 'network_error', message: String((e && e.message) || e) },
    };
  }
  const ms = performance.now() - t0;
  // A 401 for a token replaced meanwhile says nothing about the new one.
  if (res.status === 401 && sentToken === token) onUnauthorized();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { error: 'bad_response', message: `not JSON: ${text.slice(0, 200)}` };
  }
  return { ok: res.ok, status: res.status, body: parsed, ms };
}

/** A server name in a path: percent-encoded, '/' included (docs/API.md, Conventions). */
export const serverPath = (name) => `/servers/${encodeURIComponent(name)}`;
export const timerPath = (id) => `/timers/${encodeURIComponent(String(id))}`;
export const behaviourPath = (name) => `/behaviours/${encodeURIComponent(name)}`;

/** A body of a behaviour's code: fields left undefined are left out (genserv refuses "vsn": ""). */
function codeBody(fields) {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
}

export const api = {
  behaviours: () => request('GET', '/behaviours'),
  behaviour: (name) => request('GET', behaviourPath(name)),
  /** POST /behaviours: register a Lua behaviour (vsn may be undefined: the source's own). */
  loadBehaviour: ({ name, vsn, source }) =>
    request('POST', '/behaviours', codeBody({ name, vsn, source })),
  /** PUT /behaviours/NAME: a hot upgrade; answers once every server running it answered. */
  upgradeBehaviour: (name, { vsn, source, extra }) =>
    request('PUT', behaviourPath(name), codeBody({ vsn, source, extra })),
  deleteBehaviour: (name) => request('DELETE', behaviourPath(name)),
  /** GET /system: genserv as a whole (version, uptime, schedulers, memory, counts, store). */
  system: () => request('GET', '/system'),
  servers: () => request('GET', '/servers'),
  server: (name) => request('GET', serverPath(name)),
  /** GET /servers/NAME/held: who waits on the calls it holds, oldest first. */
  held: (name, limit) => request('GET', `${serverPath(name)}/held?limit=${limit}`),
  start: (spec) => request('POST', '/servers', spec),
  stop: (name) => request('DELETE', serverPath(name)),
  call: (server, message, timeoutMs) =>
    request('POST', '/call', timeoutMs === undefined
      ? { server, message } : { server, message, timeout_ms: timeoutMs }),
  cast: (server, message) => request('POST', '/cast', { server, message }),
  send: (server, message) => request('POST', '/send', { server, message }),
  sendAfter: (server, message, delayMs) =>
    request('POST', '/send_after', { server, message, delay_ms: delayMs }),
  /** GET /timers?all=true: every pending timer, soonest first (the servers' own included). */
  timers: (limit) => request('GET', `/timers?all=true&limit=${limit}`),
  readTimer: (id) => request('GET', timerPath(id)),
  cancelTimer: (id) => request('DELETE', timerPath(id)),
};

/** An error answer as one line of text: "404 no_such_server: no server ... (reason: ...)". */
export function errorText(r) {
  const b = r.body && typeof r.body === 'object' ? r.body : {};
  const code = typeof b.error === 'string' ? b.error : 'error';
  let s = r.status ? `${r.status} ${code}` : code;
  if (typeof b.message === 'string') s += `: ${b.message}`;
  if (b.reason !== undefined && b.reason !== null) s += ` (reason: ${JSON.stringify(b.reason)})`;
  return s;
}
