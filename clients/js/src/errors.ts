// The errors a call can end with: one class per answer a front end handles
// differently, all `ChatError`s. The server's `message` is kept; its `code` decides
// the class (docs/API.md, "Errors").

import type { components } from './openapi.js';

type ErrorBody = components['schemas']['ErrorBody'];

/** Any error of a call: an answer that is not 2xx, or no answer at all. */
export class ChatError extends Error {
  /** The HTTP status, or 0 when no answer came. */
  readonly status: number;
  /** The server's `code` (`validation_failed`, `thread_closed`, ...), or `network_error`/`timeout`. */
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.status = status;
    this.code = code;
  }
}

/** `422 validation_failed`: the request's fields, each with its messages. */
export class ValidationError extends ChatError {
  readonly fields: Record<string, string[]>;
  constructor(message: string, fields: Record<string, string[]>) {
    super(422, 'validation_failed', message);
    this.fields = fields;
  }
}

/** `403 thread_closed`: the thread no longer takes posts or uploads. */
export class ThreadClosedError extends ChatError {}

/** `429 rate_limited`: try again after `retryAfter` seconds. */
export class RateLimitedError extends ChatError {
  readonly retryAfter: number;
  constructor(message: string, retryAfter: number) {
    super(429, 'rate_limited', message);
    this.retryAfter = retryAfter;
  }
}

/**
 * `503 unavailable`, still so after the retries: a store is down. Nothing was
 * changed, or (a post) it is stored once the same call is repeated.
 */
export class UnavailableError extends ChatError {
  readonly retryAfter: number;
  constructor(message: string, retryAfter: number) {
    super(503, 'unavailable', message);
    this.retryAfter = retryAfter;
  }
}

/** `401 unauthenticated`: no valid token; get a fresh one. */
export class UnauthenticatedError extends ChatError {}

/** `403 forbidden`: not the caller's request or thread. */
export class ForbiddenError extends ChatError {}

/** `404 not_found`: no such request, thread or message. */
export class NotFoundError extends ChatError {}

/** `409 on_hold`: the thread is under legal hold. */
export class OnHoldError extends ChatError {}

/** No answer: the connection failed or was cut (`code` `network_error`), or none came in time (`timeout`). */
export class NetworkError extends ChatError {
  constructor(code: 'network_error' | 'timeout', message: string) {
    super(0, code, message);
  }
}

/** The error an answer stands for. */
export function errorOf(status: number, body: Partial<ErrorBody> | null, retryAfter: number): ChatError {
  const code = body?.code ?? `http_${status}`;
  const message = body?.message ?? `the server answered ${status}`;
  switch (code) {
    case 'validation_failed':
      return new ValidationError(message, (body?.errors as Record<string, string[]> | undefined) ?? {});
    case 'thread_closed':
      return new ThreadClosedError(status, code, message);
    case 'rate_limited':
      return new RateLimitedError(message, retryAfter);
    case 'unavailable':
      return new UnavailableError(message, retryAfter);
    case 'unauthenticated':
      return new UnauthenticatedError(status, code, message);
    case 'forbidden':
      return new ForbiddenError(status, code, message);
    case 'not_found':
      return new NotFoundError(status, code, message);
    case 'on_hold':
      return new OnHoldError(status, code, message);
    default:
      return status === 503 ? new UnavailableError(message, retryAfter) : new ChatError(status, code, message);
  }
}
