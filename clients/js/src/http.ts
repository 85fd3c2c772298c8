// The transport: one `fetch` per attempt under a deadline, and bounded retries with
// backoff on what a retry can fix (`503`, a timeout, a lost connection), never on
// another `4xx`. Every route of the API is safe to repeat; a post is made so by its
// `Idempotency-Key`, which every attempt of it carries unchanged.

import { ChatError, NetworkError, errorOf } from './errors.js';

export interface RetryOptions {
  /** Attempts in all, the first included. Default 5. */
  attempts?: number;
  /** The first wait, doubled after each attempt (with jitter). Default 250 ms. */
  baseDelayMs?: number;
  /** The longest wait. Default 4000 ms. */
  maxDelayMs?: number;
}

export interface TransportOptions {
  baseUrl: string;
  token: () => string | Promise<string>;
  fetch: typeof fetch;
  timeoutMs: number;
  retry: Required<RetryOptions>;
}

export interface Call {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  /** The caller's signal: aborts every attempt and the waits between them. */
  signal?: AbortSignal;
}

/** Whether another attempt may succeed where this one failed. */
function retryable(error: ChatError): boolean {
  return error.status === 503 || error instanceof NetworkError;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });
}

export class Transport {
  constructor(private readonly options: TransportOptions) {}

  url(path: string, query?: Call['query']): string {
    const url = new URL(this.options.baseUrl.replace(/\/$/, '') + path);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    return url.toString();
  }

  /** The call's JSON answer, after as many attempts as it takes and is allowed. */
  async json<T>(call: Call): Promise<T> {
    const answer = await this.send(call);
    return (await answer.json()) as T;
  }

  /** The call's answer (2xx), after as many attempts as it takes and is allowed. */
  async send(call: Call): Promise<Response> {
    const { attempts, baseDelayMs, maxDelayMs } = this.options.retry;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(call);
      } catch (error) {
        if (!(error instanceof ChatError) || !retryable(error) || attempt >= attempts) throw error;
        const backoff = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
        const told = 'retryAfter' in error ? Number(error.retryAfter) * 1000 : 0;
        await sleep(Math.max(told, backoff / 2 + Math.random() * (backoff / 2)), call.signal);
      }
    }
  }

  private async once(call: Call): Promise<Response> {
    const headers: Record<string, string> = {
      Accept: 'application/json',
      Authorization: `Bearer ${await this.options.token()}`,
      ...call.headers,
    };
    if (call.body !== undefined) headers['Content-Type'] = 'application/json';
    const deadline = AbortSignal.timeout(this.options.timeoutMs);
    const signal = call.signal ? AbortSignal.any([call.signal, deadline]) : deadline;
    let answer: Response;
    try {
      answer = await this.options.fetch(this.url(call.path, call.query), {
        method: call.method,
        headers,
        body: call.body === undefined ? undefined : JSON.stringify(call.body),
        signal,
      });
    } catch (error) {
      if (call.signal?.aborted) throw call.signal.reason;
      if (deadline.aborted) throw new NetworkError('timeout', `no answer within ${this.options.timeoutMs} ms`);
      throw new NetworkError('network_error', `the request failed: ${(error as Error).message}`);
    }
    if (answer.ok) return answer;
    const body = await answer.json().catch(() => null);
    const retryAfter = Number(answer.headers.get('Retry-After') ?? 1) || 1;
    throw errorOf(answer.status, body, retryAfter);
  }
}

/** Uploads `bytes` where an upload ticket says, once. */
export async function upload(
  fetcher: typeof fetch,
  ticket: { uploadUrl: string; method: string; headers: Record<string, string> },
  bytes: Blob | ArrayBuffer | Uint8Array,
  timeoutMs: number,
): Promise<void> {
  let answer: Response;
  try {
    answer = await fetcher(ticket.uploadUrl, {
      method: ticket.method,
      headers: ticket.headers,
      body: bytes as BodyInit,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    throw new NetworkError('network_error', `the upload failed: ${(error as Error).message}`);
  }
  if (!answer.ok) {
    const body = await answer.json().catch(() => null);
    throw errorOf(answer.status, body, Number(answer.headers.get('Retry-After') ?? 1) || 1);
  }
}
