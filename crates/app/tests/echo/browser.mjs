// examples/web in a real browser: Debian's chromium driven by playwright-core, the
// page on its own origin (allowed by CHAT_ALLOWED_ORIGINS) talking to chat-server.
// Run by crates/app/tests/api/browser.rs.
import { chromium } from 'playwright-core';
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

const { API, WEB_DIR, WEB_PORT, OTHER_PORT, CLIENT_TOKEN, NURSE_TOKEN, REQUEST, CHROMIUM } = process.env;
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

// The page, as any static server would serve it, on two origins.
function serve(port) {
  const server = http.createServer(async (req, res) => {
    const file = path.join(WEB_DIR, decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (!file.startsWith(WEB_DIR)) { res.writeHead(403).end(); return; }
    try {
      const body = await readFile(file.endsWith('/') ? path.join(file, 'index.html') : file);
      res.writeHead(200, { 'Content-Type': types[path.extname(file) || '.html'] || 'application/octet-stream' }).end(body);
    } catch { res.writeHead(404).end(); }
  });
  return new Promise((ok) => server.listen(Number(port), '127.0.0.1', () => ok(server)));
}

const check = (ok, what) => { if (!ok) { console.error('FAILED: ' + what); process.exit(1); } console.log('ok: ' + what); };
const servers = [await serve(WEB_PORT), await serve(OTHER_PORT)];
// Chromium's own background traffic (updates, sync, lookups of Google's hosts) is off:
// the machines this runs on have no network beyond loopback.
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const url = (port, token) => `http://127.0.0.1:${port}/?api=${encodeURIComponent(API)}&token=${token}&request=${REQUEST}&open=1`;
try {
  const client = await browser.newPage();
  const nurse = await browser.newPage();
  const errors = [];
  const logs = [];
  for (const [who, page] of [['client', client], ['nurse', nurse]]) {
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => logs.push(`${who}: ${m.text()}`));
    page.on('requestfailed', (r) => logs.push(`${who}: failed ${r.url()}`));
    page.on('response', (r) => { if (r.status() >= 400) logs.push(`${who}: ${r.status()} ${r.url()}`); });
  }
  process.on('exit', (code) => { if (code) console.error(logs.concat(errors).join('\n')); });

  await client.goto(url(WEB_PORT, CLIENT_TOKEN));
  await client.waitForFunction(() => document.getElementById('thread').textContent !== '–');
  await nurse.goto(url(WEB_PORT, NURSE_TOKEN));
  await nurse.waitForFunction(() => document.getElementById('thread').textContent !== '–');
  check(true, 'both open the thread from another origin');

  // Presence: each sees the other.
  await client.waitForFunction(() => document.getElementById('online').textContent.includes('11 (nurse)'), null, { timeout: 10000 });
  await nurse.waitForFunction(() => document.getElementById('online').textContent.includes('7 (client)'), null, { timeout: 10000 });
  check(true, 'each sees the other online');

  // A text, live over Echo.
  await client.fill('#text', 'hello from the browser');
  await client.click('#send');
  await nurse.waitForFunction(() => [...document.querySelectorAll('#messages li')].some((li) => li.textContent.includes('hello from the browser')), null, { timeout: 10000 });
  check(true, 'a text arrives live');

  // Typing, as a whisper on the presence channel.
  await nurse.type('#text', 'x');
  await client.waitForFunction(() => document.getElementById('typing').textContent.includes('typing'), null, { timeout: 5000 });
  check(true, 'typing is shown');

  // A photo: upload URL, PUT from the page, post, shown to the other.
  const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC', 'base64');
  await client.setInputFiles('#photo', { name: 'photo.png', mimeType: 'image/png', buffer: png });
  await nurse.waitForFunction(() => {
    const img = document.querySelector('#messages img');
    return img && img.complete && img.naturalWidth === 1;
  }, null, { timeout: 10000 });
  check(true, 'a photo uploaded from the page is shown to the other');

  // A location.
  await client.click('#locate');
  await nurse.waitForFunction(() => document.getElementById('messages').textContent.includes('location 40.7128, -74.006'), null, { timeout: 10000 });
  check(true, 'a location arrives');

  // The nurse leaves: the client sees it.
  await nurse.close();
  await client.waitForFunction(() => !document.getElementById('online').textContent.includes('11'), null, { timeout: 10000 });
  check(true, 'leaving is seen');

  // From an origin the service does not list, the browser refuses the answers.
  const stranger = await browser.newPage();
  await stranger.goto(url(OTHER_PORT, CLIENT_TOKEN));
  await stranger.waitForFunction(() => document.getElementById('status').textContent.includes('refused'), null, { timeout: 10000 });
  check(true, 'another origin is refused by the browser');
  check(errors.length === 0, 'no script errors: ' + errors.join('; '));
  console.log('all checks passed');
} catch (e) {
  for (const page of browser.contexts().flatMap((c) => c.pages())) {
    const seen = await page.evaluate(() => ['status', 'thread', 'online', 'typing', 'messages'].map((id) => id + '=' + (document.getElementById(id)?.textContent || ''))).catch(() => []);
    console.error(page.url().slice(0, 40), seen.join(' | '));
  }
  throw e;
} finally {
  await browser.close();
  servers.forEach((s) => s.close());
}
