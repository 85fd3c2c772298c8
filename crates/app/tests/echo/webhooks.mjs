// Validates recorded webhook deliveries with Pusher's own server library (npm
// `pusher`), as a host would. Run by crates/app/tests/api/host.rs with DELIVERIES, a
// JSON file of [{headers, body}], and prints each delivery's event names.
import Pusher from 'pusher';
import { readFileSync } from 'node:fs';

const { APP_ID, KEY, SECRET, DELIVERIES } = process.env;
const pusher = new Pusher({ appId: APP_ID, key: KEY, secret: SECRET });
const forger = new Pusher({ appId: APP_ID, key: KEY, secret: SECRET + 'x' });
for (const { headers, body } of JSON.parse(readFileSync(DELIVERIES, 'utf8'))) {
  const request = { headers, rawBody: body };
  const webhook = pusher.webhook(request);
  if (!webhook.isValid()) { console.error('FAILED: invalid webhook ' + body); process.exit(1); }
  if (forger.webhook(request).isValid()) { console.error('FAILED: a wrong secret validates'); process.exit(1); }
  console.log('valid: ' + webhook.getEvents().map((e) => e.name).join(','));
}
console.log('all checks passed');
