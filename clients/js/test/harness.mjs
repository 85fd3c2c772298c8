// What the client's tests run against: a real chat-server (the binary of
// CHAT_SERVER_BIN, else target/debug/chat-server: `cargo build -p chat-server`),
// Redis when a test needs the event bus (Debian's redis-server), and a TCP proxy
// that breaks the connection the ways a network does. Loopback only; everything a
// test starts is stopped when it ends.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.CHAT_SERVER_BIN ?? path.join(here, '../../../target/debug/chat-server');
export const SECRET = 'client-tests-secret-client-tests-secret-0001';

/** A free loopback port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Polls `check` every 50 ms until it returns a truthy value, for at most `ms`. */
export async function eventually(ms, what, check) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An HS256 token for `sub` with `role`, as the host would sign it. */
export function token(sub, role = 'client') {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: String(sub), role, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

/** chat-server on a free port with `env` on top of the defaults; `stop()` ends it. */
export async function startServer(env = {}) {
  if (!existsSync(BIN)) throw new Error(`no chat-server at ${BIN}: run cargo build -p chat-server, or set CHAT_SERVER_BIN`);
  const port = await freePort();
  const child = spawn(BIN, ['serve'], {
    env: {
      PATH: process.env.PATH,
      CHAT_BIND: `127.0.0.1:${port}`,
      CHAT_JWT_SECRET: SECRET,
      CHAT_OBJECT_STORE_URL: 'memory://',
      CHAT_RATE_LIMIT_POSTS: '0',
      CHAT_RATE_LIMIT_UPLOADS: '0',
      CHAT_RATE_LIMIT_AUTH: '0',
      RUST_LOG: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  const base = `http://127.0.0.1:${port}`;
  await eventually(15000, `chat-server answers on ${base}`, async () => {
    if (child.exitCode !== null) throw new Error(`chat-server exited: ${log}`);
    return fetch(`${base}/healthz`).then((r) => r.ok, () => false);
  });
  return {
    base,
    port,
    log: () => log,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', resolve);
      child.kill('SIGKILL');
    }),
  };
}

/** Registers `request` for `client` (and `staff`) and opens its thread as an admin; the thread id. */
export async function threadFor(base, request, client, staff = []) {
  const admin = { Authorization: `Bearer ${token(1, 'admin')}`, 'Content-Type': 'application/json' };
  const put = await fetch(`${base}/api/requests/${request}`, {
    method: 'PUT', headers: admin, body: JSON.stringify({ client_id: client, staff_ids: staff }),
  });
  if (!put.ok) throw new Error(`register: ${put.status}`);
  const open = await fetch(`${base}/api/requests/${request}/chat/open`, { method: 'POST', headers: admin });
  return (await open.json()).threadId;
}

/** Redis on a free port, without persistence; `command(...args)` sends one command. */
export async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const command = (...args) => new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    socket.on('error', reject);
    socket.on('data', (d) => { answer += d; if (answer.endsWith('\r\n')) { socket.end(); resolve(answer.trim()); } });
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
  await eventually(10000, 'redis-server answers', () => command('PING').then((a) => a === '+PONG', () => false));
  return {
    url: `redis://127.0.0.1:${port}`,
    command,
    stop: () => new Promise((resolve) => { child.once('exit', resolve); child.kill('SIGKILL'); }),
  };
}

/**
 * A TCP proxy to `port` that counts the requests it forwards and breaks the next
 * one on demand: `cutAfterRequest()` forwards it, then drops the answer and resets
 * the connection (the server did the work, the client never hears of it);
 * `answer503(n)` answers the next `n` requests `503` itself, without forwarding them.
 */
export async function startProxy(port) {
  let fault = null;
  let unavailable = 0;
  const requests = [];
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(client); sockets.add(upstream);
    let cutting = false;
    client.on('data', (chunk) => {
      const line = chunk.toString('latin1').split('\r\n')[0];
      if (/^[A-Z]+ \//.test(line)) {
        requests.push(line);
        if (unavailable > 0) {
          unavailable -= 1;
          const body = '{"message":"Service unavailable","code":"unavailable"}';
          client.end('HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n'
            + `Connection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
          upstream.destroy();
          return;
        }
        if (fault === 'cut') { fault = null; cutting = true; }
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (cutting) { client.resetAndDestroy(); upstream.destroy(); return; }
      client.write(chunk);
    });
    const end = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
    client.on('error', end); upstream.on('error', end);
    client.on('close', end); upstream.on('close', end);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    requests,
    cutAfterRequest: () => { fault = 'cut'; },
    answer503: (times = 1) => { unavailable = times; },
    stop: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(resolve); }),
  };
}
