// The real-time side: Laravel Echo over pusher-js, and the promise the service makes
// only with the client's help (docs/API.md, "Real time"): a socket the server closed
// (`4200`, `4100`) or that dropped reconnects and subscribes again, and whatever was
// posted meanwhile is listed, not replayed. A subscription lists the thread after
// every (re)subscription, holds live messages while it does, and hands the front end
// each message once, in id order, whether it came live or by the listing.

import type { Message, MessagePage } from './types.js';

/** A member of the thread's presence channel: the user id, and the role from their token. */
export interface Member {
  id: string;
  info: { role?: string } & Record<string, unknown>;
}

export interface SubscriptionHandlers {
  /** Each message once, oldest first: the newest page at the start, then every new one. */
  message?: (message: Message) => void;
  /** A message already handed over was retracted or redacted: show it so. */
  retracted?: (id: number) => void;
  /** A participant's read marker moved. */
  read?: (event: { user_id: number; up_to: number | null }) => void;
  /** The thread was closed. */
  closed?: (event: { status: string; closed_at: string }) => void;
  /** Someone is typing (a whisper, never stored). */
  typing?: (data: unknown) => void;
  /** Who is online now, on every change. */
  presence?: (members: Member[]) => void;
  /** A listing that failed, or a subscription the server refused (its status). */
  error?: (error: unknown) => void;
}

/** What a subscription needs of the client: the listing, and Echo. */
export interface Lister {
  listMessages(threadId: number, query: { limit?: number; cursor?: string | number }): Promise<MessagePage>;
}

/** The part of Laravel Echo a subscription uses (typed loosely: Echo's own types vary by broadcaster). */
export interface EchoLike {
  private(channel: string): any;
  join(channel: string): any;
  leave(channel: string): void;
}

/** How many pages a catch-up lists at most (the service keeps 100 messages per thread by default). */
const MAX_PAGES = 20;
const PAGE = 50;

export class Subscription {
  /** Every message handed over, and whether it is redacted. */
  private readonly delivered = new Map<number, boolean>();
  private newest = 0;
  /** Live messages that arrived while a listing runs, handed over with it. */
  private held: Message[] | null = null;
  private listing: Promise<void> | null = null;
  private listAgain = false;
  private privateChannel: any;
  private presenceChannel: any;
  private left = false;

  constructor(
    private readonly lister: Lister,
    private readonly echo: EchoLike,
    readonly threadId: number,
    private readonly handlers: SubscriptionHandlers,
  ) {}

  /** Subscribes; resolves once subscribed and the newest page handed over. */
  async start(timeoutMs: number): Promise<void> {
    const name = `chat.${this.threadId}`;
    const first = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not subscribed to ${name} within ${timeoutMs} ms`)), timeoutMs);
      this.privateChannel = this.echo
        .private(name)
        .listen('MessageCreated', (m: Message) => this.live(m))
        .listen('MessageRetracted', (e: { id: number }) => this.retract(e.id))
        .listen('MessagesRead', (e: { user_id: number; up_to: number | null }) => this.handlers.read?.(e))
        .listen('ThreadClosed', (e: { status: string; closed_at: string }) => this.handlers.closed?.(e))
        .error((e: unknown) => {
          clearTimeout(timer);
          this.handlers.error?.(e);
          reject(new Error(`the server refused the subscription to ${name}`));
        });
      // On every (re)subscription, list what may have been missed: subscribed first,
      // then listed, so that nothing posted in between is lost.
      this.privateChannel.subscribed(() => {
        clearTimeout(timer);
        this.catchUp().then(resolve, resolve);
      });
    });
    this.presenceChannel = this.echo.join(name);
    const members = () => this.handlers.presence?.(this.members());
    this.presenceChannel
      .here(members)
      .joining(members)
      .leaving(members)
      .listenForWhisper('typing', (data: unknown) => this.handlers.typing?.(data));
    await first;
  }

  /** Tells the others this user is typing. */
  typing(data: unknown = { typing: true }): void {
    this.presenceChannel?.whisper('typing', data);
  }

  /** Who is online now. */
  members(): Member[] {
    const list: Member[] = [];
    this.presenceChannel?.subscription?.members?.each((m: Member) => list.push({ id: String(m.id), info: m.info }));
    return list;
  }

  /** Ends both channels' subscriptions. */
  leave(): void {
    this.left = true;
    this.echo.leave(`chat.${this.threadId}`);
  }

  /** The ids handed over so far, oldest first. */
  ids(): number[] {
    return [...this.delivered.keys()].sort((a, b) => a - b);
  }

  private live(message: Message): void {
    if (this.held) this.held.push(message);
    else this.hand([message]);
  }

  private retract(id: number): void {
    if (this.delivered.get(id) === false) {
      this.delivered.set(id, true);
      this.handlers.retracted?.(id);
    }
  }

  /** Lists the thread (again, if asked while listing) and hands over what is new. */
  private catchUp(): Promise<void> {
    if (this.listing) {
      this.listAgain = true;
      return this.listing;
    }
    this.held = [];
    this.listing = (async () => {
      do {
        this.listAgain = false;
        try {
          this.hand(await this.listSince(this.newest));
        } catch (error) {
          this.handlers.error?.(error);
        }
      } while (this.listAgain && !this.left);
      const held = this.held ?? [];
      this.held = null;
      this.listing = null;
      this.hand(held);
    })();
    return this.listing;
  }

  /** The newest page, then older pages while all of it is newer than `newest` (none at the start). */
  private async listSince(newest: number): Promise<Message[]> {
    const all: Message[] = [];
    let cursor: string | number | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const answer = await this.lister.listMessages(this.threadId, { limit: PAGE, cursor });
      all.push(...answer.messages);
      const oldest = answer.messages[0]?.id ?? 0;
      if (answer.nextCursor == null || newest === 0 || oldest <= newest) break;
      cursor = answer.nextCursor;
    }
    return all;
  }

  /** Hands over, in id order, the messages not handed over yet; notes retractions. */
  private hand(messages: Message[]): void {
    const sorted = [...messages].sort((a, b) => a.id - b.id);
    for (const message of sorted) {
      const redacted = this.delivered.get(message.id);
      if (redacted === undefined) {
        this.delivered.set(message.id, message.redacted);
        this.newest = Math.max(this.newest, message.id);
        this.handlers.message?.(message);
      } else if (message.redacted && !redacted) {
        this.retract(message.id);
      }
    }
  }
}
