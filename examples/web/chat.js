// The page's logic: the HTTP API with fetch, real time with Laravel Echo over pusher-js.
// Fields may be prefilled from the query string (?api=…&token=…&request=…&open=1).
'use strict';

const $ = (id) => document.getElementById(id);
const state = { thread: null, echo: null, shown: new Set(), online: new Map() };

for (const [name, value] of new URLSearchParams(location.search)) {
  if ($(name) && name !== 'open') $(name).value = value;
}

function say(text) { $('status').textContent = text; }

async function call(method, path, body) {
  const headers = { Authorization: 'Bearer ' + $('token').value.trim() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let answer;
  try {
    answer = await fetch($('api').value.replace(/\/$/, '') + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    // What a browser says when CORS refuses the answer (or the server is down).
    throw new Error('the browser refused the call: ' + e.message);
  }
  const json = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(`${answer.status} ${json.code || ''}: ${json.message || ''}`);
  return json;
}

function show(m) {
  if (state.shown.has(m.id)) return; // delivery is at least once: key by id
  state.shown.add(m.id);
  const li = document.createElement('li');
  li.dataset.id = m.id;
  const meta = document.createElement('div');
  meta.className = 'meta';
  meta.textContent = `#${m.id} from ${m.sender_id} at ${m.created_at}`;
  li.append(meta);
  if (m.redacted) {
    li.append('(redacted)');
  } else if (m.type === 'text') {
    li.append(m.text); // textContent: never HTML
  } else if (m.type === 'location') {
    li.append(`location ${m.lat}, ${m.lng}`);
  } else if (m.type === 'image' && m.media_url) {
    const img = document.createElement('img');
    img.src = m.media_url;
    img.alt = 'photo';
    li.append(img);
  }
  $('messages').append(li);
}

function renderOnline() {
  const who = [...state.online.entries()].map(([id, info]) => `${id} (${info.role})`);
  $('online').textContent = who.length ? who.join(', ') : 'nobody';
}

async function refetch() {
  const page = await call('GET', `/api/chat/threads/${state.thread}/messages?limit=50`);
  page.messages.forEach(show);
}

function connect(thread) {
  const api = new URL($('api').value);
  // echo.iife.js exposes the module: its default export is the class.
  const EchoClass = window.Echo.default || window.Echo;
  state.echo = new EchoClass({
    broadcaster: 'pusher',
    Pusher,
    key: $('key').value,
    cluster: 'mt1',
    wsHost: api.hostname,
    wsPort: Number(api.port || (api.protocol === 'https:' ? 443 : 80)),
    wssPort: Number(api.port || 443),
    forceTLS: api.protocol === 'https:',
    enabledTransports: ['ws', 'wss'],
    authEndpoint: api.origin + '/broadcasting/auth',
    bearerToken: $('token').value.trim(),
  });
  state.echo.private(`chat.${thread}`)
    .listen('MessageCreated', show)
    .listen('MessageRetracted', () => refetch())
    .listen('ThreadClosed', () => { say('The thread is closed.'); $('compose').disabled = true; });
  const presence = state.echo.join(`chat.${thread}`)
    .here(() => {
      presence.subscription.members.each((m) => state.online.set(m.id, m.info));
      renderOnline();
    })
    .joining(() => {
      presence.subscription.members.each((m) => state.online.set(m.id, m.info));
      renderOnline();
    })
    .leaving(() => {
      state.online.clear();
      presence.subscription.members.each((m) => state.online.set(m.id, m.info));
      renderOnline();
    })
    .listenForWhisper('typing', () => {
      $('typing').textContent = 'Someone is typing…';
      setTimeout(() => { $('typing').textContent = ''; }, 1500);
    });
  state.presence = presence;
  // After a reconnect, what was posted meanwhile is listed, not replayed.
  state.echo.connector.pusher.connection.bind('connected', () => refetch().catch((e) => say(e.message)));
}

async function post(body) {
  try {
    const key = crypto.randomUUID(); // a retried post is stored once
    const headers = {
      Authorization: 'Bearer ' + $('token').value.trim(),
      'Content-Type': 'application/json',
      'Idempotency-Key': key,
    };
    const answer = await fetch(`${$('api').value.replace(/\/$/, '')}/api/chat/threads/${state.thread}/messages`, {
      method: 'POST', headers, body: JSON.stringify(body),
    });
    const json = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new Error(`${answer.status} ${json.code || ''}: ${json.message || ''}`);
    say('');
  } catch (e) {
    say('Not sent: ' + e.message);
  }
}

$('open').addEventListener('click', async () => {
  try {
    const opened = await call('POST', `/api/requests/${$('request').value}/chat/open`);
    state.thread = opened.threadId;
    $('thread').textContent = state.thread;
    $('compose').disabled = false;
    say('');
    await refetch();
    connect(state.thread);
  } catch (e) {
    say('Cannot open: ' + e.message);
  }
});

$('send').addEventListener('click', () => {
  const text = $('text').value;
  $('text').value = '';
  return post({ type: 'text', text });
});

$('text').addEventListener('input', () => {
  state.presence?.whisper('typing', { typing: true });
});

$('locate').addEventListener('click', () => post({ type: 'location', lat: 40.7128, lng: -74.006 }));

$('photo').addEventListener('change', async () => {
  const file = $('photo').files[0];
  if (!file) return;
  try {
    const ticket = await call('POST', `/api/chat/threads/${state.thread}/media`, { contentType: file.type });
    const put = await fetch(ticket.uploadUrl, { method: ticket.method, headers: ticket.headers, body: file });
    if (!put.ok) throw new Error('upload answered ' + put.status);
    await post({ type: 'image', mediaPath: ticket.mediaPath });
  } catch (e) {
    say('Photo not sent: ' + e.message);
  }
});

if (new URLSearchParams(location.search).get('open') === '1') $('open').click();
