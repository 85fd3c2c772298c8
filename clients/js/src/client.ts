// `ChatClient`: every route of the API as a typed method, and the real-time
// subscription. One per signed-in user; the token may be a function, asked again for
// every request and every channel authorization, so a refreshed token is used at once.

import Echo from 'laravel-echo';
import { Transport, upload, type RetryOptions } from './http.js';
import { Subscription, type EchoLike, type SubscriptionHandlers } from './realtime.js';
import type {
  ChannelAuth, Closed, FhirBundle, HoldState, ImageType, InboxPage, InboxQuery, MessagePage,
  NewMessage, OpenedThread, Posted, ReadMarker, RecordQueued, RegisterRequestBody, Retracted,
  ServiceRequest, UploadTicket,
} from './types.js';

export interface ChatClientOptions {
  /** Where the service answers, e.g. `https://chat.example.com`. */
  baseUrl: string;
  /** The bearer token, or a function that gives the current one. */
  token: string | (() => string | Promise<string>);
  /** `CHAT_PUSHER_APP_KEY`. Default `chat-key`. */
  pusherKey?: string;
  /** The WebSocket's host and port when not those of `baseUrl` (`CHAT_WS_BIND`). */
  wsHost?: string;
  wsPort?: number;
  /** pusher-js's class. Default: `globalThis.Pusher` (a `<script>` tag), else `import('pusher-js')`. */
  Pusher?: unknown;
  /** Deadline of one request. Default 15000 ms (uploads: 4 times that). */
  timeoutMs?: number;
  retry?: RetryOptions;
  /** The `fetch` to use. Default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** The WebSocket's state on every change (`connecting`, `connected`, `unavailable`, ...), for a "reconnecting" notice. */
  onConnectionState?: (state: string) => void;
}

/**
 * A fresh `Idempotency-Key`: a random UUID. `randomUUID` needs a secure context and
 * React Native may have no `crypto` at all; a key needs to be unique, not secret, so
 * the fallbacks do.
 */
function newKey(): string {
  const crypto = globalThis.crypto;
  if (crypto?.randomUUID) return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  if (crypto?.getRandomValues) crypto.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export class ChatClient {
  private readonly transport: Transport;
  private readonly token: () => string | Promise<string>;
  private readonly fetcher: typeof fetch;
  private readonly timeoutMs: number;
  private echo: Promise<EchoLike> | null = null;

  constructor(private readonly options: ChatClientOptions) {
    const token = options.token;
    this.token = typeof token === 'function' ? token : () => token;
    this.fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.transport = new Transport({
      baseUrl: options.baseUrl,
      token: this.token,
      fetch: this.fetcher,
      timeoutMs: this.timeoutMs,
      retry: { attempts: 5, baseDelayMs: 250, maxDelayMs: 4000, ...options.retry },
    });
  }

  // --- Requests and threads --------------------------------------------------------

  /** `PUT /api/requests/{id}` (admins: the host registers a service request). */
  registerRequest(requestId: number, body: RegisterRequestBody): Promise<ServiceRequest> {
    return this.transport.json({ method: 'PUT', path: `/api/requests/${requestId}`, body });
  }

  /** `POST /api/requests/{id}/chat/open`: the request's thread, opened or as it is. */
  openThread(requestId: number): Promise<OpenedThread> {
    return this.transport.json({ method: 'POST', path: `/api/requests/${requestId}/chat/open` });
  }

  /** `PATCH .../close`. */
  closeThread(threadId: number): Promise<Closed> {
    return this.transport.json({ method: 'PATCH', path: `/api/chat/threads/${threadId}/close` });
  }

  /** `GET /api/chat/threads`: the caller's threads, newest activity first, with `unread`. */
  inbox(query: InboxQuery = {}): Promise<InboxPage> {
    return this.transport.json({ method: 'GET', path: '/api/chat/threads', query });
  }

  // --- Messages --------------------------------------------------------------------

  /** `GET .../messages`: the newest `limit` before `cursor`, oldest first. */
  listMessages(threadId: number, query: { limit?: number; cursor?: string | number } = {}): Promise<MessagePage> {
    return this.transport.json({ method: 'GET', path: `/api/chat/threads/${threadId}/messages`, query });
  }

  /**
   * `POST .../messages` with an `Idempotency-Key` (a fresh one unless given), retried
   * with the same key on `503`, a timeout or a lost connection: stored once.
   */
  postMessage(threadId: number, message: NewMessage, options: { idempotencyKey?: string; signal?: AbortSignal } = {}): Promise<Posted> {
    return this.transport.json({
      method: 'POST',
      path: `/api/chat/threads/${threadId}/messages`,
      body: message,
      headers: { 'Idempotency-Key': options.idempotencyKey ?? newKey() },
      signal: options.signal,
    });
  }

  sendText(threadId: number, text: string): Promise<Posted> {
    return this.postMessage(threadId, { type: 'text', text });
  }

  sendLocation(threadId: number, lat: number, lng: number): Promise<Posted> {
    return this.postMessage(threadId, { type: 'location', lat, lng });
  }

  /**
   * An image in one call: an upload URL, the bytes, the post. An upload cut off is
   * made again with a new upload URL (an upload URL writes once).
   */
  async sendImage(threadId: number, bytes: Blob | ArrayBuffer | Uint8Array, contentType: ImageType): Promise<Posted> {
    const attempts = 3;
    for (let attempt = 1; ; attempt++) {
      const ticket = await this.uploadUrl(threadId, contentType);
      try {
        await upload(this.fetcher, ticket, bytes, this.timeoutMs * 4);
      } catch (error) {
        const retry = (error as { status?: number }).status;
        if (attempt < attempts && (retry === 0 || retry === 503)) continue;
        throw error;
      }
      return this.postMessage(threadId, { type: 'image', mediaPath: ticket.mediaPath });
    }
  }

  /** `POST .../media`: where and how to upload an image. */
  uploadUrl(threadId: number, contentType: ImageType): Promise<UploadTicket> {
    return this.transport.json({ method: 'POST', path: `/api/chat/threads/${threadId}/media`, body: { contentType } });
  }

  /** `DELETE .../messages/{id}`: the sender's (or an admin's) retraction. */
  retractMessage(threadId: number, messageId: number): Promise<Retracted> {
    return this.transport.json({ method: 'DELETE', path: `/api/chat/threads/${threadId}/messages/${messageId}` });
  }

  /** `POST .../read`: the caller's read marker moves up to `upTo`. */
  markRead(threadId: number, upTo: number): Promise<ReadMarker> {
    return this.transport.json({ method: 'POST', path: `/api/chat/threads/${threadId}/read`, body: { upTo } });
  }

  // --- The clinical record (staff and admins) --------------------------------------

  /** `GET .../export`: the thread as a FHIR R4 Bundle. */
  exportThread(threadId: number): Promise<FhirBundle> {
    return this.transport.json({ method: 'GET', path: `/api/chat/threads/${threadId}/export` });
  }

  /** `PUT .../hold` (admins): `reason` places the hold, `null` lifts it. */
  setHold(threadId: number, reason: string | null): Promise<HoldState> {
    const body = reason === null ? { hold: false } : { hold: true, reason };
    return this.transport.json({ method: 'PUT', path: `/api/chat/threads/${threadId}/hold`, body });
  }

  /** `POST .../record` (admins): send a closed thread's transcript to the FHIR server again. */
  recordThread(threadId: number): Promise<RecordQueued> {
    return this.transport.json({ method: 'POST', path: `/api/chat/threads/${threadId}/record` });
  }

  // --- Real time -------------------------------------------------------------------

  /**
   * Subscribes to the thread's channels. Resolves once subscribed, after `message` got
   * the newest page; from then on each new message once, in id order, also across
   * reconnects and `4200` closes (the thread is listed again each time).
   */
  async subscribe(threadId: number, handlers: SubscriptionHandlers): Promise<Subscription> {
    const subscription = new Subscription(this, await this.realtime(), threadId, handlers);
    await subscription.start(this.timeoutMs);
    return subscription;
  }

  /** Closes the WebSocket. */
  async disconnect(): Promise<void> {
    if (!this.echo) return;
    const echo = (await this.echo) as EchoLike & { disconnect(): void };
    this.echo = null;
    echo.disconnect();
  }

  /** `POST /broadcasting/auth`, with the current token: what pusher-js asks before subscribing. */
  authorize(socketId: string, channelName: string): Promise<ChannelAuth> {
    return this.transport.json({
      method: 'POST',
      path: '/broadcasting/auth',
      body: { socket_id: socketId, channel_name: channelName },
    });
  }

  private realtime(): Promise<EchoLike> {
    this.echo ??= this.connect();
    return this.echo;
  }

  private async connect(): Promise<EchoLike> {
    const Pusher = this.options.Pusher ?? (globalThis as { Pusher?: unknown }).Pusher ?? (await import('pusher-js')).default;
    const base = new URL(this.options.baseUrl);
    const tls = base.protocol === 'https:';
    const port = this.options.wsPort ?? Number(base.port || (tls ? 443 : 80));
    const options = {
      broadcaster: 'pusher',
      Pusher,
      key: this.options.pusherKey ?? 'chat-key',
      cluster: 'mt1',
      wsHost: this.options.wsHost ?? base.hostname,
      wsPort: port,
      wssPort: port,
      forceTLS: tls,
      enabledTransports: ['ws', 'wss'],
      disableStats: true,
      channelAuthorization: {
        customHandler: (
          params: { socketId: string; channelName: string },
          callback: (error: Error | null, data: ChannelAuth | null) => void,
        ) => {
          this.authorize(params.socketId, params.channelName).then(
            (data) => callback(null, data),
            (error: Error) => callback(error, null),
          );
        },
      },
    };
    const echo = new Echo(options as never);
    const connection = (echo.connector as { pusher: { connection: { bind(e: string, f: (s: { current: string }) => void): void } } }).pusher.connection;
    connection.bind('state_change', (states) => this.options.onConnectionState?.(states.current));
    return echo as unknown as EchoLike;
  }
}
