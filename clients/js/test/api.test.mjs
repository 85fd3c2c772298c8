// The client's HTTP side against a running chat-server: posts retried without
// duplicates, no retry on a 4xx, typed errors, the one-call image upload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  ChatClient, ValidationError, ThreadClosedError, RateLimitedError, UnauthenticatedError,
  NotFoundError, ForbiddenError, UnavailableError,
} from '../dist/index.js';
import { startServer, startProxy, threadFor, token } from './harness.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server.stop(); });

const client = (base, sub = 7, role = 'client', extra = {}) =>
  new ChatClient({ baseUrl: base, token: token(sub, role), retry: { baseDelayMs: 50 }, ...extra });

/** The thread's texts as the server lists them (one page of 50). */
async function texts(thread) {
  const page = await client(server.base).listMessages(thread, { limit: 50 });
  return page.messages.map((m) => m.text);
}

test('a post whose answer is lost is retried with its key and stored once', async () => {
  const thread = await threadFor(server.base, 1, 7);
  const proxy = await startProxy(server.port);
  try {
    proxy.cutAfterRequest();
    const posted = await client(proxy.base).sendText(thread, 'the answer of this post is lost');
    const posts = proxy.requests.filter((r) => r.startsWith('POST /api/chat/threads/'));
    assert.equal(posts.length, 2, 'the cut post and its retry');
    assert.deepEqual(await texts(thread), ['the answer of this post is lost']);
    const page = await client(server.base).listMessages(thread);
    assert.equal(page.messages[0].id, posted.id, 'the retry answers the stored message');
  } finally {
    await proxy.stop();
  }
});

test('a 503 is retried after its Retry-After, with the same key', async () => {
  const thread = await threadFor(server.base, 2, 7);
  const proxy = await startProxy(server.port);
  try {
    proxy.answer503();
    const started = Date.now();
    await client(proxy.base).sendText(thread, 'after a 503');
    assert.ok(Date.now() - started >= 900, 'waited for Retry-After: 1');
    assert.equal(proxy.requests.filter((r) => r.startsWith('POST ')).length, 2);
    assert.deepEqual(await texts(thread), ['after a 503']);
  } finally {
    await proxy.stop();
  }
});

test('retries are bounded: a service that stays down ends in UnavailableError', async () => {
  const thread = await threadFor(server.base, 3, 7);
  const proxy = await startProxy(server.port);
  try {
    const c = client(proxy.base, 7, 'client', { retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 20 } });
    proxy.answer503(100);
    await assert.rejects(c.sendText(thread, 'never stored'), UnavailableError);
    assert.equal(proxy.requests.filter((r) => r.startsWith('POST ')).length, 3);
    assert.deepEqual(await texts(thread), []);
  } finally {
    await proxy.stop();
  }
});

test('a 4xx is never retried, and each is its own error', async () => {
  const thread = await threadFor(server.base, 4, 7);
  const proxy = await startProxy(server.port);
  try {
    const error = await client(proxy.base).sendText(thread, '   ').catch((e) => e);
    assert.ok(error instanceof ValidationError, String(error));
    assert.equal(error.status, 422);
    assert.ok(error.fields.text?.length > 0, JSON.stringify(error.fields));
    assert.equal(proxy.requests.filter((r) => r.startsWith('POST ')).length, 1, 'not retried');

    await assert.rejects(client(proxy.base, 8).sendText(thread, 'not my thread'), ForbiddenError);
    await assert.rejects(client(proxy.base).listMessages(999999), NotFoundError);
    const forged = new ChatClient({ baseUrl: proxy.base, token: 'not-a-token' });
    await assert.rejects(forged.inbox(), UnauthenticatedError);
    await client(proxy.base).closeThread(thread);
    await assert.rejects(client(proxy.base).sendText(thread, 'too late'), ThreadClosedError);
  } finally {
    await proxy.stop();
  }
});

test('rate_limited carries its Retry-After', async () => {
  const limited = await startServer({ CHAT_RATE_LIMIT_POSTS: '2' });
  try {
    const thread = await threadFor(limited.base, 1, 7);
    const c = client(limited.base);
    await c.sendText(thread, 'one');
    await c.sendText(thread, 'two');
    const error = await c.sendText(thread, 'three').catch((e) => e);
    assert.ok(error instanceof RateLimitedError, String(error));
    assert.ok(error.retryAfter >= 1 && error.retryAfter <= 60, String(error.retryAfter));
  } finally {
    await limited.stop();
  }
});

// The smallest PNG: one opaque pixel.
const PIXEL = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

test('an image goes up in one call and lists with its URLs', async () => {
  const thread = await threadFor(server.base, 5, 7);
  const c = client(server.base);
  const posted = await c.sendImage(thread, PIXEL, 'image/png');
  const [message] = (await c.listMessages(thread)).messages;
  assert.equal(message.id, posted.id);
  assert.equal(message.type, 'image');
  const image = await fetch(message.media_url);
  assert.equal(image.status, 200);
  assert.equal(image.headers.get('content-type'), 'image/png');
  assert.ok(message.thumb_url);
});

test('inbox, read markers, retraction and the thread calls answer their typed shapes', async () => {
  const thread = await threadFor(server.base, 6, 7, [11]);
  const patient = client(server.base);
  const nurse = client(server.base, 11, 'nurse');
  const { id } = await patient.sendText(thread, 'hello nurse');
  const inbox = await nurse.inbox();
  const row = inbox.threads.find((t) => t.threadId === thread);
  assert.equal(row.unread, 1);
  assert.deepEqual(await nurse.markRead(thread, id), { upTo: id });
  assert.equal((await nurse.inbox()).threads.find((t) => t.threadId === thread).unread, 0);
  assert.deepEqual(await patient.retractMessage(thread, id), { id, redacted: true });
  const [listed] = (await patient.listMessages(thread)).messages;
  assert.equal(listed.redacted, true);
  assert.equal(listed.text, null);
  const bundle = await nurse.exportThread(thread);
  assert.equal(bundle.resourceType, 'Bundle');
  assert.deepEqual(await patient.openThread(6), { status: 'open', threadId: thread });
});
