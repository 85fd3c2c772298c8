// Pusher's own server library (npm `pusher`), unchanged, against chat-server's Pusher
// HTTP API. Run by crates/app/tests/api/host.rs, which subscribed a socket to
// CHANNEL first and checks what it receives.
import Pusher from 'pusher';
import crypto from 'node:crypto';

const { HOST, PORT, APP_ID, KEY, SECRET, CHANNEL, PRESENCE, UNKNOWN } = process.env;
const pusher = new Pusher({ appId: APP_ID, key: KEY, secret: SECRET, host: HOST, port: PORT, useTLS: false });
const check = (ok, what) => { if (!ok) { console.error('FAILED: ' + what); process.exit(1); } console.log('ok: ' + what); };
const status = async (promise) => { try { return (await promise).status; } catch (e) { return e.status; } };

// The host's own events reach the thread's subscribers.
check(await status(pusher.trigger(CHANNEL, 'NurseEnRoute', { eta: '15 min' })) === 200, 'trigger');
check(await status(pusher.triggerBatch([
  { channel: CHANNEL, name: 'VisitRescheduled', data: { at: '10:30' } },
])) === 200, 'triggerBatch');
// And on the thread's presence channel (Laravel's PresenceChannel('chat.{id}')).
check(await status(pusher.trigger(PRESENCE, 'CarerArrived', { door: 'front' })) === 200, 'trigger on the presence channel');
check(await status(pusher.trigger(PRESENCE, 'App\\Events\\MessageCreated', { text: 'forged' })) === 400, "the chat's own event name on presence");
check(await status(pusher.trigger('presence-chat.999999', 'CarerArrived', {})) === 400, 'a presence channel of no thread');
check(await status(pusher.trigger(`presence-chat.0${PRESENCE.slice('presence-chat.'.length)}`, 'Aliased', {})) === 400, 'a presence alias');

// Occupancy, counted from the registry.
const channels = await (await pusher.get({ path: '/channels', params: { filter_by_prefix: 'private-chat.' } })).json();
check(CHANNEL in channels.channels, 'the subscribed channel is listed');
const info = await (await pusher.get({ path: `/channels/${CHANNEL}`, params: { info: 'subscription_count' } })).json();
check(info.occupied === true && info.subscription_count === 1, 'channel info: ' + JSON.stringify(info));
const vacant = await (await pusher.get({ path: `/channels/${UNKNOWN}`, params: { info: 'subscription_count' } })).json();
check(vacant.occupied === false && vacant.subscription_count === 0, 'a vacant channel');
check(await status(pusher.get({ path: '/channels', params: { info: 'user_count' } })) === 400, 'user_count needs presence');

// What the host may not send.
check(await status(pusher.trigger(CHANNEL, 'App\\Events\\MessageCreated', { text: 'forged' })) === 400, "the chat's own event name");
check(await status(pusher.trigger(CHANNEL, 'MessageCreated', { text: 'forged' })) === 400, "the chat's own name unprefixed");
check(await status(pusher.trigger(CHANNEL, 'Big', 'x'.repeat(10 * 1024 + 1))) === 413, 'data over 10 KB');
check(await status(pusher.trigger(UNKNOWN, 'NurseEnRoute', {})) === 400, 'a channel of no thread');
check(await status(pusher.trigger('news', 'NurseEnRoute', {})) === 400, 'a channel that is not a thread\'s');
// Channel names are exact strings: another spelling of the thread id is no channel,
// and its event reaches nobody (the socket on CHANNEL checks that it got nothing).
const [prefix, id] = [CHANNEL.slice(0, CHANNEL.lastIndexOf('.') + 1), CHANNEL.slice(CHANNEL.lastIndexOf('.') + 1)];
for (const alias of [`${prefix}0${id}`, `${prefix}00${id}`]) {
  check(await status(pusher.trigger(alias, 'Aliased', {})) === 400, `the alias ${alias}`);
  check(await status(pusher.triggerBatch([{ channel: alias, name: 'Aliased', data: {} }])) === 400, `the alias ${alias} in a batch`);
}

// Signatures: the wrong secret, and a timestamp of long ago.
const forger = new Pusher({ appId: APP_ID, key: KEY, secret: SECRET + 'x', host: HOST, port: PORT, useTLS: false });
check(await status(forger.trigger(CHANNEL, 'NurseEnRoute', {})) === 401, 'a wrong signature');
const body = JSON.stringify({ name: 'Late', channels: [CHANNEL], data: '{}' });
const md5 = crypto.createHash('md5').update(body).digest('hex');
const old = Math.floor(Date.now() / 1000) - 601;
const query = `auth_key=${KEY}&auth_timestamp=${old}&auth_version=1.0&body_md5=${md5}`;
const path = `/apps/${APP_ID}/events`;
const sig = crypto.createHmac('sha256', SECRET).update(`POST\n${path}\n${query}`).digest('hex');
const late = await fetch(`http://${HOST}:${PORT}${path}?${query}&auth_signature=${sig}`, {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body,
});
check(late.status === 401, 'a timestamp more than 600 s old');

console.log('all checks passed');
