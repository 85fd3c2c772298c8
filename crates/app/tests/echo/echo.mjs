// Laravel Echo and pusher-js, as a Laravel front end uses them, against chat-server.
// Run by crates/app/tests/api/realtime.rs, which starts the servers and passes:
//   BASE, BASE2 (a second instance sharing Redis), WS2 (optional: the second
//   instance's dedicated WebSocket listener, CHAT_WS_BIND), KEY (the app key), THREAD_A,
//   THREAD_B (threads of client 7), TOKEN_CLIENT (client 7), TOKEN_ADMIN,
//   TOKEN_STRANGER (a client of neither thread).
// Prints one line per check; exits non-zero on the first failure.
import Echo from 'laravel-echo';
import Pusher from 'pusher-js';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`missing ${name}`);
  return value;
};
const BASE = env('BASE'), BASE2 = env('BASE2'), KEY = env('KEY');
const A = Number(env('THREAD_A')), B = Number(env('THREAD_B'));
const CLIENT = env('TOKEN_CLIENT'), ADMIN = env('TOKEN_ADMIN'), STRANGER = env('TOKEN_STRANGER');

const echoes = [];
function echo(base, token, extra = {}, ws = base) {
  const url = new URL(ws);
  const e = new Echo({
    broadcaster: 'pusher',
    Pusher,
    key: KEY,
    cluster: 'mt1',
    wsHost: url.hostname,
    wsPort: Number(url.port),
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    authEndpoint: `${base}/broadcasting/auth`,
    bearerToken: token,
    ...extra,
  });
  echoes.push(e);
  return e;
}

/** Resolves with the first value `register(resolve)` produces, or rejects after `ms`. */
function within(ms, what, register) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
    register((value) => { clearTimeout(timer); resolve(value); });
  });
}

function subscribed(channel) {
  return within(5000, 'subscription', (done) => channel.subscribed(done));
}

async function post(base, thread, text, token = CLIENT) {
  const r = await fetch(`${base}/api/chat/threads/${thread}/messages`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ type: 'text', text }),
  });
  if (r.status !== 200) throw new Error(`post: ${r.status} ${await r.text()}`);
  return (await r.json()).message ?? null;
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
  console.log(`ok - ${message}`);
}

async function main() {
  // A participant's channel: MessageCreated with the list shape, nothing of thread B.
  const client = echo(BASE, CLIENT);
  const seen = [];
  const onA = client.private(`chat.${A}`);
  onA.listen('MessageCreated', (e) => seen.push(e));
  await subscribed(onA);
  check(true, 'a participant subscribes to its thread');
  await post(BASE, B, 'for thread B only');
  const created = within(5000, 'MessageCreated', (done) =>
    onA.listen('MessageCreated', (e) => e.text === 'hello over http' && done(e)));
  await post(BASE, A, 'hello over http');
  const event = await created;
  for (const field of ['id', 'type', 'text', 'lat', 'lng', 'media_url', 'sender_id', 'created_at', 'redacted', 'thread_id']) {
    check(field in event, `MessageCreated carries ${field}`);
  }
  check(event.thread_id === A && event.type === 'text' && event.sender_id === 7, 'MessageCreated is the posted message');
  check(seen.every((e) => e.thread_id === A) && !seen.some((e) => e.text === 'for thread B only'),
    "a socket on thread A never receives thread B's events");

  // A stranger is refused by the authorizer: Echo reports it through .error().
  const stranger = echo(BASE, STRANGER);
  const refused = await within(5000, 'refusal', (done) => stranger.private(`chat.${A}`).error(done));
  check(refused.status === 403, `a user who may not view the thread is refused (${refused.status})`);

  // A forged signature is refused by the WebSocket server itself.
  const forger = echo(BASE, STRANGER, {
    authorizer: (channel) => ({
      authorize: (socketId, callback) => callback(null, { auth: `${KEY}:${'0'.repeat(64)}` }),
    }),
  });
  const forged = await within(5000, 'forged refusal', (done) => forger.private(`chat.${A}`).error(done));
  check(forged.status === 401, `a forged signature is refused (${forged.status})`);

  // Whispers (client events) reach the other subscribers.
  const admin = echo(BASE, ADMIN);
  const adminOnA = admin.private(`chat.${A}`);
  await subscribed(adminOnA);
  const whispered = within(5000, 'whisper', (done) => adminOnA.listenForWhisper('typing', done));
  onA.whisper('typing', { typing: true });
  check((await whispered).typing === true, 'a whisper reaches the other subscriber');

  // Another instance: a subscriber there receives a post made through this one.
  // On the second instance, its dedicated WebSocket listener when it has one.
  const far = echo(BASE2, CLIENT, {}, process.env.WS2 || BASE2);
  const farOnA = far.private(`chat.${A}`);
  await subscribed(farOnA);
  const crossed = within(5000, 'cross-instance MessageCreated', (done) =>
    farOnA.listen('MessageCreated', (e) => e.text === 'across instances' && done(e)));
  await post(BASE, A, 'across instances');
  check((await crossed).thread_id === A, 'a subscriber on the other instance receives the post');

  // A whisper from a socket on the other instance reaches this one's subscribers, and
  // never comes back to its sender.
  let echoed = false;
  farOnA.listenForWhisper('typing', () => { echoed = true; });
  const farWhisper = within(5000, 'cross-instance whisper', (done) =>
    adminOnA.listenForWhisper('typing', (w) => w.from === 'far' && done(w)));
  farOnA.whisper('typing', { typing: true, from: 'far' });
  check((await farWhisper).typing === true, 'a whisper reaches the subscribers on another instance');
  await new Promise((resolve) => setTimeout(resolve, 300));
  check(!echoed, 'a whisper does not come back to its sender');

  // Closing the thread: ThreadClosed on every subscriber.
  const closed = within(5000, 'ThreadClosed', (done) => onA.listen('ThreadClosed', done));
  const farClosed = within(5000, 'ThreadClosed far', (done) => farOnA.listen('ThreadClosed', done));
  const r = await fetch(`${BASE}/api/chat/threads/${A}/close`, {
    method: 'PATCH', headers: { Authorization: `Bearer ${ADMIN}` },
  });
  check(r.status === 200, 'the thread closes');
  const e = await closed;
  check(e.thread_id === A && e.status === 'closed' && typeof e.closed_at === 'string', 'ThreadClosed carries thread_id, status, closed_at');
  check((await farClosed).thread_id === A, 'ThreadClosed reaches the other instance');
}

main().then(
  () => { echoes.forEach((e) => e.disconnect()); console.log('all checks passed'); process.exit(0); },
  (error) => { console.error(`not ok - ${error.message}`); process.exit(1); },
);
