//! Logs and metrics. Logs: tracing to stderr, as text or JSON (`CHAT_LOG_FORMAT`).
//! Metrics: the Prometheus recorder behind `/metrics`. A request is logged and counted by
//! its route pattern, never its full path or query, so nothing a client sent (and no
//! signed URL) reaches the log or a label.

use crate::config::LogFormat;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use chat_http::ops::names;
use chat_http::RoutePattern;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Instant;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Request latency buckets, seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's Prometheus recorder, installed on first use. `None` if another
/// recorder was installed first (an embedding program's own).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(names::HTTP_DURATION.into()), LATENCY_BUCKETS)
                .map_err(|e| tracing::warn!(%e, "metrics buckets refused"))
                .ok()?;
            builder
                .install_recorder()
                .map_err(
                    |e| tracing::warn!(%e, "no /metrics: a metrics recorder is already installed"),
                )
                .ok()
        })
        .clone()
}

pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let response = next.call(req).await;
    let (status, route) = match &response {
        Ok(r) => (
            r.status().as_u16(),
            r.request().app_data::<RoutePattern>().map(|p| p.0),
        ),
        Err(e) => (e.as_response_error().status_code().as_u16(), None),
    };
    let route = route.unwrap_or("<unmatched>");
    let elapsed = started.elapsed().as_secs_f64();
    tracing::info!(
        target: "chat_server::http",
        %method, route, status, latency_ms = elapsed * 1000.0,
        "request"
    );
    let method = method.as_str().to_owned();
    metrics::histogram!(names::HTTP_DURATION, "method" => method.clone(), "route" => route)
        .record(elapsed);
    metrics::counter!(names::HTTP_REQUESTS, "method" => method, "route" => route, "status" => status.to_string())
        .increment(1);
    response
}
