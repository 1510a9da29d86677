// Calling genserv from Node with the global fetch, no npm package: node --no-warnings client.mjs
// (Node 18 prints an ExperimentalWarning for fetch on stderr; --no-warnings hides it.)
// GENSERV_URL is genserv's address (default http://127.0.0.1:8080); GENSERV_TOKEN, when set,
// is sent as a bearer token.
const URL = process.env.GENSERV_URL ?? 'http://127.0.0.1:8080';
const TOKEN = process.env.GENSERV_TOKEN;

// POSTs a JSON body; returns [HTTP status, decoded JSON answer]. fetch resolves for every
// status, so an error is a status and a body {"error", "message"} like any other answer.
async function post(path, body, waitMs = 10000) {
    const headers = { 'Content-Type': 'application/json' };
    if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
    const response = await fetch(URL + path, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(waitMs),
    });
    return [response.status, await response.json()];
}

// GenServer.call/3: genserv enforces timeoutMs; the client waits 5 s longer.
function call(server, message, timeoutMs = 5000) {
    return post('/call', { server, message, timeout_ms: timeoutMs }, timeoutMs + 5000);
}

function reply([status, answer]) {
    if (status !== 200) throw new Error(`unexpected answer ${status}: ${JSON.stringify(answer)}`);
    return JSON.stringify(answer.reply);
}

console.log('call counter get_count ->', reply(await call('counter', 'get_count')));
let [status, answer] = await post('/cast', { server: 'counter', message: 'increment' });
console.log('cast counter increment ->', status);
console.log('call counter get_count ->', reply(await call('counter', 'get_count')));

// A deferred reply: the batcher holds the call until its next flush (once a second).
console.log('call batcher ["push", 5] ->', reply(await call('batcher', ['push', 5], 10000)));

// No reply within timeout_ms: 504 and the error "timeout" (a late reply is dropped).
[status, answer] = await call('slow', ['sleep', 2000], 300);
console.log('call slow ["sleep", 2000] with timeout_ms 300 ->', status, answer.error);

// Every error is a status and a JSON body {"error": CODE, "message": TEXT}.
[status, answer] = await call('nosuch', 'get_count');
console.log('call nosuch get_count ->', status, `${answer.error}: ${answer.message}`);
