// @chat-server/client: the JavaScript/TypeScript client of chat-server (SPEC §11).

export { ChatClient, type ChatClientOptions } from './client.js';
export { Subscription, type SubscriptionHandlers, type Member } from './realtime.js';
export type { RetryOptions } from './http.js';
export {
  ChatError, ValidationError, ThreadClosedError, RateLimitedError, UnavailableError,
  UnauthenticatedError, ForbiddenError, NotFoundError, OnHoldError, NetworkError,
} from './errors.js';
export type * from './types.js';
export type { paths, components, operations } from './openapi.js';
