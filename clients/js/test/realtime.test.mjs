// The client's real-time side against a running chat-server: each message once and
// in order across a 4200 close in the middle of a burst, and the thread's other
// events (retraction, read markers, typing, presence, close).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatClient } from '../dist/index.js';
import { eventually, startRedis, startServer, threadFor, token } from './harness.mjs';

const client = (base, sub = 7, role = 'client', extra = {}) =>
  new ChatClient({ baseUrl: base, token: token(sub, role), retry: { baseDelayMs: 50 }, ...extra });

test('a subscriber closed with 4200 in the middle of a burst ends with every message once, in order', async () => {
  // The event bus in Redis: killing the instance's subscribed connection makes it
  // close its sockets with 4200 (events may have been missed), as a Redis failover does.
  const redis = await startRedis();
  const server = await startServer({ CHAT_REDIS_URL: redis.url });
  const states = [];
  const patient = client(server.base, 7, 'client', { onConnectionState: (s) => states.push(s) });
  try {
    const thread = await threadFor(server.base, 1, 7, [11]);
    const nurse = client(server.base, 11, 'nurse');
    // Some history first: the subscription hands it over before anything live.
    const posted = [];
    for (let i = 0; i < 5; i++) posted.push((await nurse.sendText(thread, `before ${i}`)).id);
    const received = [];
    await patient.subscribe(thread, { message: (m) => received.push(m) });
    assert.deepEqual(received.map((m) => m.id), posted, 'the history, in order');

    for (let i = 0; i < 60; i++) {
      posted.push((await nurse.sendText(thread, `burst ${i}`)).id);
      if (i === 20) assert.match(await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub'), /^:[1-9]/);
    }
    await eventually(20000, 'every message of the burst', () => received.length >= posted.length);
    // Late duplicates would come within a moment: wait for the listing to settle.
    await new Promise((r) => setTimeout(r, 500));
    const ids = received.map((m) => m.id);
    assert.deepEqual(ids, posted, 'each message once, in id order');
    assert.ok(states.filter((s) => s === 'connected').length >= 2, `reconnected after the 4200: ${states}`);
    assert.ok(received.every((m) => m.thread_id === undefined || m.thread_id === thread));
  } finally {
    await patient.disconnect();
    await server.stop();
    await redis.stop();
  }
});

test('retractions, read markers, typing, presence and the close reach the handlers', async () => {
  const server = await startServer();
  const patient = client(server.base);
  const nurse = client(server.base, 11, 'nurse');
  try {
    const thread = await threadFor(server.base, 1, 7, [11]);
    const seen = { messages: [], retracted: [], reads: [], typing: [], closed: [], members: [] };
    const mine = await patient.subscribe(thread, {
      message: (m) => seen.messages.push(m),
      retracted: (id) => seen.retracted.push(id),
      read: (e) => seen.reads.push(e),
      typing: (d) => seen.typing.push(d),
      closed: (e) => seen.closed.push(e),
      presence: (members) => seen.members.push(members.map((m) => m.id).sort()),
    });
    const theirs = await nurse.subscribe(thread, {});
    await eventually(5000, 'the nurse online', () => seen.members.some((m) => m.includes('11')));
    assert.deepEqual(mine.members().map((m) => m.id).sort(), ['11', '7']);

    const { id } = await nurse.sendText(thread, 'on my way');
    await eventually(5000, 'the message', () => seen.messages.length === 1);
    theirs.typing();
    await eventually(5000, 'the whisper', () => seen.typing.length === 1);
    assert.deepEqual(seen.typing[0], { typing: true });
    await nurse.markRead(thread, id);
    await eventually(5000, 'the read marker', () => seen.reads.some((e) => e.user_id === 11 && e.up_to === id));
    await nurse.retractMessage(thread, id);
    await eventually(5000, 'the retraction', () => seen.retracted.includes(id));
    theirs.leave();
    await eventually(5000, 'the nurse gone', () => seen.members.at(-1).join() === '7');
    await patient.closeThread(thread);
    await eventually(5000, 'the close', () => seen.closed.length === 1);
    assert.equal(seen.closed[0].status, 'closed');
    assert.deepEqual(seen.messages.map((m) => m.id), [id], 'the message once');
  } finally {
    await patient.disconnect();
    await nurse.disconnect();
    await server.stop();
  }
});

test('a subscription the server refuses rejects, naming the channel', async () => {
  const server = await startServer();
  const stranger = client(server.base, 99);
  try {
    const thread = await threadFor(server.base, 1, 7);
    await assert.rejects(stranger.subscribe(thread, {}), /refused the subscription to chat\./);
  } finally {
    await stranger.disconnect();
    await server.stop();
  }
});
