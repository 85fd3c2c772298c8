// Type tests (`npm run typecheck`): what a front end writes compiles, and the mistakes
// the generated types exist to catch do not.
import {
  ChatClient, ValidationError, RateLimitedError, type Message, type InboxThread, type Member,
} from '../dist/index.js';

const client = new ChatClient({ baseUrl: 'https://chat.example.com', token: async () => 'token' });

export async function walkThrough(thread: number): Promise<void> {
  const posted: { id: number } = await client.sendText(thread, 'hello');
  await client.postMessage(thread, { type: 'location', lat: 1, lng: 2 }, { idempotencyKey: 'k-1' });
  const page = await client.listMessages(thread, { limit: 20, cursor: page0() });
  const first: Message | undefined = page.messages[0];
  const kind: 'text' | 'image' | 'location' | undefined = first?.type;
  const inbox: InboxThread[] = (await client.inbox({ status: 'all' })).threads;
  const sub = await client.subscribe(thread, {
    message: (m) => m.id + posted.id,
    presence: (members: Member[]) => members.map((m) => m.info.role),
  });
  sub.typing();
  try {
    await client.markRead(thread, posted.id);
  } catch (e) {
    if (e instanceof ValidationError) e.fields['upTo']?.join();
    if (e instanceof RateLimitedError) e.retryAfter.toFixed();
  }
  void kind; void inbox;

  // @ts-expect-error: no such message type
  await client.postMessage(thread, { type: 'video', url: 'x' });
  // @ts-expect-error: a location needs both coordinates
  await client.postMessage(thread, { type: 'location', lat: 1 });
  // @ts-expect-error: only the accepted image types
  await client.uploadUrl(thread, 'application/pdf');
  // @ts-expect-error: a message id is a number
  await client.retractMessage(thread, 'abc');
}

function page0(): string | undefined {
  return undefined;
}
