// The page's logic, all of it on @chat-server/client: the API calls, the retries,
// and the real-time subscription that hands each message once, in order.
// Fields may be prefilled from the query string (?api=…&token=…&request=…&open=1).
import { ChatClient, NetworkError } from '@chat-server/client';

const $ = (id) => document.getElementById(id);
const state = { chat: null, thread: null, subscription: null };

for (const [name, value] of new URLSearchParams(location.search)) {
  if ($(name) && name !== 'open') $(name).value = value;
}

function say(text) { $('status').textContent = text; }

function why(error) {
  // What a browser reports when CORS refuses the answer (or the server is down).
  if (error instanceof NetworkError) return 'the browser refused the call (or the server is down): ' + error.message;
  return `${error.status} ${error.code}: ${error.message}`;
}

function show(m) {
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

function redact(id) {
  const li = document.querySelector(`#messages li[data-id="${id}"]`);
  if (li) li.replaceChildren(li.querySelector('.meta'), '(redacted)');
}

function online(members) {
  const who = members.map((m) => `${m.id} (${m.info.role})`);
  $('online').textContent = who.length ? who.join(', ') : 'nobody';
}

async function post(send) {
  try {
    await send(); // retried with its Idempotency-Key: stored once
    say('');
  } catch (e) {
    say('Not sent: ' + why(e));
  }
}

$('open').addEventListener('click', async () => {
  state.chat = new ChatClient({
    baseUrl: $('api').value,
    token: () => $('token').value.trim(),
    pusherKey: $('key').value,
  });
  try {
    const opened = await state.chat.openThread(Number($('request').value));
    state.thread = opened.threadId;
    $('thread').textContent = state.thread;
    state.subscription = await state.chat.subscribe(state.thread, {
      message: show,
      retracted: redact,
      closed: () => { say('The thread is closed.'); $('compose').disabled = true; },
      presence: online,
      typing: () => {
        $('typing').textContent = 'Someone is typing…';
        setTimeout(() => { $('typing').textContent = ''; }, 1500);
      },
      error: (e) => say(e.message ?? String(e)),
    });
    $('compose').disabled = false;
    say('');
  } catch (e) {
    say('Cannot open: ' + why(e));
  }
});

$('send').addEventListener('click', () => {
  const text = $('text').value;
  $('text').value = '';
  return post(() => state.chat.sendText(state.thread, text));
});

$('text').addEventListener('input', () => state.subscription?.typing());

$('locate').addEventListener('click', () => post(() => state.chat.sendLocation(state.thread, 40.7128, -74.006)));

$('photo').addEventListener('change', () => {
  const file = $('photo').files[0];
  if (file) return post(() => state.chat.sendImage(state.thread, file, file.type));
});

if (new URLSearchParams(location.search).get('open') === '1') $('open').click();
