//! The operator's routes: `/readyz` (every configured backend answers) and `/metrics`
//! (Prometheus text, rendered by whatever recorder the application installed), and the
//! names of the metrics this crate records through the [`metrics`] facade.

use actix_web::{web, HttpResponse};
use futures::future::{join_all, BoxFuture};
use std::sync::Arc;
use std::time::Duration;

pub use crate::metric_names::{count_error, names};

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
    /// Set once the instance drains (SPEC §8): `/readyz` then answers `503` at once,
    /// so that the load balancer stops sending it requests.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

/// `200 {"status":"ready","checks":{…}}`, or `503` with `status: "unavailable"` and
/// the failing backends named in `checks` (the causes go to the log only: they may
/// name hosts).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Every configured backend answers", body = crate::wire::Readiness),
        (status = 503, description = "The backends that do not answer are named", body = crate::wire::Readiness,
            headers(("Retry-After" = u64))),
    ))]
pub(crate) async fn readyz(ops: web::Data<Operations>) -> HttpResponse {
    if ops.draining.load(std::sync::atomic::Ordering::SeqCst) {
        let body = crate::wire::Readiness {
            status: "unavailable".to_owned(),
            checks: [("instance".to_owned(), "draining".to_owned())].into(),
        };
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(body);
    }
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
    let mut checks = std::collections::BTreeMap::new();
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
        checks.insert(name.to_owned(), verdict.to_owned());
    }
    let body = crate::wire::Readiness {
        status: if ready { "ready" } else { "unavailable" }.to_owned(),
        checks,
    };
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
pub(crate) async fn metrics(ops: web::Data<Operations>) -> HttpResponse {
    match &ops.metrics {
        Some(render) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(render()),
        None => actix_web::ResponseError::error_response(&crate::error::ApiError::NotFound),
    }
}
