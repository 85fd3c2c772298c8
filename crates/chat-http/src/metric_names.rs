//! The names of the metrics this crate records through the [`metrics`] facade, and
//! the counting of the failures operators alert on. A module of its own, so that the
//! error mapping and the operator routes both use it without using each other.

use chat_core::ChatError;

/// Metric names, in one place so that the docs and the dashboards can rely on them.
pub mod names {
    /// Counter `{method, route, status}`; `route` is the pattern, never the path.
    pub const HTTP_REQUESTS: &str = "chat_http_requests_total";
    /// Histogram `{method, route}`, seconds.
    pub const HTTP_DURATION: &str = "chat_http_request_duration_seconds";
    /// Counter `{type}`: messages accepted.
    pub const MESSAGES_POSTED: &str = "chat_messages_posted_total";
    /// Gauge: WebSocket connections open on this instance.
    pub const WS_CONNECTIONS: &str = "chat_websocket_connections";
    /// Counter: event frames written to subscribed sockets.
    pub const WS_EVENTS_DELIVERED: &str = "chat_websocket_events_delivered_total";
    /// Counter: sockets closed because they read their events too slowly.
    pub const WS_OVERFLOWS: &str = "chat_websocket_overflow_disconnects_total";
    /// Counter: events this instance's bus subscription missed (fell behind the bus
    /// buffer, or the bus connection dropped; 0 counted where the bus cannot tell).
    pub const EVENTS_MISSED: &str = "chat_events_missed_total";
    /// Counter: sockets closed with 4200 to reconnect and catch up after missed events.
    pub const WS_RESYNCS: &str = "chat_websocket_resync_disconnects_total";
    /// Gauge: jobs kept as failed for good, as the last sweep counted them.
    pub const JOBS_FAILED: &str = "chat_jobs_failed";
    /// Counter `{job, outcome}`: background jobs and sweeps.
    pub const JOBS: &str = "chat_jobs_total";
    /// Counter: `message_unread` webhooks queued (SPEC §10).
    pub const MESSAGES_UNREAD_ESCALATED: &str = "chat_messages_unread_escalated_total";
    /// Counter: ciphertext or a wrapped key that failed to open.
    pub const CRYPTO_FAILURES: &str = "chat_crypto_failures_total";
    /// Counter `{kind}`: a store was unavailable or returned corrupt data.
    pub const STORE_ERRORS: &str = "chat_store_errors_total";
    /// Counter: heartbeats or subscriptions of the Redis event link that failed or
    /// missed their deadline.
    pub const EVENT_LINK_CHECKS_FAILED: &str = "chat_event_link_checks_failed_total";
    /// Counter: Redis event links replaced after one was lost.
    pub const EVENT_LINK_REPLACED: &str = "chat_event_link_replaced_total";
    /// Gauge: seconds since the Redis event link was last known alive (a heartbeat
    /// answered, an event arrived); `+Inf` before it ever was.
    pub const EVENT_LINK_SILENT_SECONDS: &str = "chat_event_link_silent_seconds";
    /// Counter `{scope}`: requests refused with `429`.
    pub const RATE_LIMITED: &str = "chat_rate_limited_total";
    /// Counter: fetches of the identity provider's JWKS document (SPEC §2).
    pub const JWKS_FETCHES: &str = "chat_jwks_fetches_total";
    /// Counter: those fetches that failed (the cached keys kept verifying).
    pub const JWKS_FETCH_FAILURES: &str = "chat_jwks_fetch_failures_total";
}

/// Counts the failures operators alert on; the other errors are the clients' own.
pub fn count_error(error: &ChatError) {
    match error {
        ChatError::Crypto(_) => metrics::counter!(names::CRYPTO_FAILURES).increment(1),
        ChatError::Unavailable(cause) => {
            let kind = match cause {
                chat_core::StoreError::Unavailable(_) => "unavailable",
                chat_core::StoreError::Corrupt(_) => "corrupt",
                chat_core::StoreError::Contention(_) => "contention",
                chat_core::StoreError::Rejected(_) => "rejected",
            };
            metrics::counter!(names::STORE_ERRORS, "kind" => kind).increment(1);
        }
        _ => {}
    }
}
