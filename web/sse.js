// sse.js: GET /events (Server-Sent Events) that reconnects by itself.
//
// The browser's EventSource already retries a dropped stream (genserv sends `retry: 2000`),
// but gives up for good when an answer is not a stream (a 503 overloaded, a proxy's error
// page). This wrapper then opens a new one with a growing delay (1 s, 2 s, ... 15 s), so the
// page never needs a reload. Every (re)connection starts with a snapshot, which replaces what
// the page knew.
//
// API: const ev = connectEvents(() => '/events', {onEvent, onState});
//   url()                 the stream's URL, asked again on every (re)connection (it carries
//                         the access token when there is one)
//   onEvent(obj)          one parsed event ({type: 'snapshot' | 'state_changed' | ...})
//   onState(state, info)  'connecting' | 'live' | 'reconnecting'; info.retryMs when the page
//                         (not the browser) schedules the next attempt
//   ev.reconnectNow()     drop the current stream and connect again at once

export function connectEvents(url, { onEvent, onState }) {
  let es = null;
  let retryTimer = null;
  let failures = 0;
  let everLive = false;

  function open() {
    retryTimer = null;
    onState(everLive ? 'reconnecting' : 'connecting', {});
    es = new EventSource(url());
    es.onopen = () => {
      failures = 0;
      everLive = true;
      onState('live', {});
    };
    es.onmessage = (e) => {
      let ev;
      try {
        ev = JSON.parse(e.data);
      } catch {
        return; // not ours; ignore rather than break the stream
      }
      if (ev && typeof ev === 'object' && typeof ev.type === 'string') onEvent(ev);
    };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        es.close();
        failures += 1;
        const retryMs = Math.min(15000, 1000 * 2 ** Math.min(failures - 1, 4));
        onState('reconnecting', { retryMs });
        retryTimer = setTimeout(open, retryMs);
      } else {
        // CONNECTING: the browser retries on its own after the server's retry delay.
        onState('reconnecting', {});
      }
    };
  }

  open();
  return {
    reconnectNow() {
      if (retryTimer) clearTimeout(retryTimer);
      if (es) es.close();
      open();
    },
  };
}
