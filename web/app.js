// Placeholder dashboard: list the servers from GET /servers. Server data is untrusted, so it
// is only ever written with textContent, never as HTML.
const body = document.getElementById('servers');
const error = document.getElementById('error');
const columns = ['name', 'behaviour', 'status', 'mailbox_len', 'messages_handled', 'restarts',
  'held_calls'];

function render(servers) {
  const rows = servers.map((s) => {
    const tr = document.createElement('tr');
    for (const c of columns) {
      const td = document.createElement('td');
      td.textContent = s[c] === undefined ? '' : String(s[c]);
      tr.appendChild(td);
    }
    return tr;
  });
  body.replaceChildren(...rows);
}

async function refresh() {
  try {
    const res = await fetch('/servers', { headers: { Accept: 'application/json' } });
    if (!res.ok) throw new Error(`GET /servers: ${res.status}`);
    render((await res.json()).servers);
    error.textContent = '';
  } catch (e) {
    error.textContent = String(e.message || e);
  }
}

refresh();
setInterval(refresh, 2000);
