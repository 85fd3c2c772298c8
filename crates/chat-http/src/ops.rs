//! The operator's routes: `/readyz` (every configured backend answers) and `/metrics`
//! (Prometheus text, rendered by whatever recorder the application installed), and the
//! names of the metrics this crate records through the [`metrics`] facade.

use crate::HttpState;
use actix_web::{web, HttpResponse};
use chat_core::ChatError;
use futures::future::{join_all, BoxFuture};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

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
    /// Counter `{job, outcome}`: background jobs and sweeps.
    pub const JOBS: &str = "chat_jobs_total";
    /// Counter: ciphertext or a wrapped key that failed to open.
    pub const CRYPTO_FAILURES: &str = "chat_crypto_failures_total";
    /// Counter `{kind}`: a store was unavailable or returned corrupt data.
    pub const STORE_ERRORS: &str = "chat_store_errors_total";
    /// Counter `{scope}`: requests refused with `429`.
    pub const RATE_LIMITED: &str = "chat_rate_limited_total";
}

/// Counts the failures operators alert on; the other errors are the clients' own.
pub fn count_error(error: &ChatError) {
    match error {
        ChatError::Crypto(_) => metrics::counter!(names::CRYPTO_FAILURES).increment(1),
        ChatError::Unavailable(cause) => {
            let kind = match cause {
                chat_core::StoreError::Unavailable(_) => "unavailable",
                chat_core::StoreError::Corrupt(_) => "corrupt",
            };
            metrics::counter!(names::STORE_ERRORS, "kind" => kind).increment(1);
        }
        _ => {}
    }
}

/// One backend `/readyz` asks: its name (`postgres`, `redis`, `media`) and a check.
#[derive(Clone)]
pub struct Probe {
    name: &'static str,
    check: Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>,
}

impl Probe {
    pub fn new<F>(name: &'static str, check: F) -> Self
    where
        F: Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static,
    {
        Self {
            name,
            check: Arc::new(check),
        }
    }
}

/// What `/readyz` and `/metrics` serve.
#[derive(Clone, Default)]
pub struct Operations {
    /// The backends to ask; none (the in-memory setup) is always ready.
    pub probes: Vec<Probe>,
    /// How long each backend has to answer.
    pub probe_timeout: Duration,
    /// Renders the Prometheus text; `None` answers `404`.
    pub metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
}

/// `200 {"status":"ready","checks":{…}}`, or `503` with `status: "unavailable"` and
/// the failing backends named in `checks` (the causes go to the log only: they may
/// name hosts).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Every configured backend answers", body = crate::openapi::Readiness),
        (status = 503, description = "The backends that do not answer are named", body = crate::openapi::Readiness,
            headers(("Retry-After" = u64))),
    ))]
pub(crate) async fn readyz(state: web::Data<HttpState>) -> HttpResponse {
    let ops = &state.operations;
    let timeout = ops.probe_timeout;
    let answers = join_all(ops.probes.iter().map(|probe| async move {
        let outcome = match tokio::time::timeout(timeout, (probe.check)()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(cause)) => Err(cause),
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        };
        (probe.name, outcome)
    }))
    .await;
    let mut checks = Map::new();
    let mut ready = true;
    for (name, outcome) in answers {
        let verdict = match outcome {
            Ok(()) => "ok",
            Err(cause) => {
                tracing::warn!(backend = name, %cause, "readiness check failed");
                ready = false;
                "unavailable"
            }
        };
        checks.insert(name.to_owned(), Value::from(verdict));
    }
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": checks,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(body)
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(state: web::Data<HttpState>) -> HttpResponse {
    match &state.operations.metrics {
        Some(render) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(render()),
        None => actix_web::ResponseError::error_response(&crate::error::ApiError::NotFound),
    }
}
