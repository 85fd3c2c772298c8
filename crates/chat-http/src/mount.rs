//! Mounting: every route of the adapter on an actix `App`, each resource carrying its
//! route pattern for the request log and the metrics.

use crate::error::ApiError;
use crate::ops::Operations;
use crate::pusher::{http_api, Realtime};
use crate::routes;
use crate::state::HttpState;
use actix_web::web;
use std::sync::Arc;

/// Mounts every route of SPEC §3, the Pusher WebSocket and its authorizer (§6), and the
/// operator routes on an `App`, each with the part of the state it reads.
pub fn configure(
    state: HttpState,
    realtime: Arc<Realtime>,
    operations: Operations,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .app_data(web::Data::from(realtime))
            .app_data(web::Data::new(operations))
            .app_data(web::QueryConfig::default().error_handler(|_, _| {
                ApiError::invalid("query", "The query string is malformed.").into()
            }))
            .service(at("/healthz").route(web::get().to(routes::healthz)))
            .service(at("/api/openapi.json").route(web::get().to(crate::openapi::serve)))
            .service(at("/readyz").route(web::get().to(crate::ops::readyz)))
            .service(at("/metrics").route(web::get().to(crate::ops::metrics)))
            .service(at("/api/requests/{id}").route(web::put().to(routes::register_request)))
            .service(at("/api/requests/{id}/chat/open").route(web::post().to(routes::open_thread)))
            .service(
                at("/api/chat/threads/{thread}/messages")
                    .route(web::get().to(routes::list_messages))
                    .route(web::post().to(routes::post_message)),
            )
            .service(at("/api/chat/threads").route(web::get().to(crate::inbox::inbox)))
            .service(
                at("/api/chat/threads/{thread}/messages/{message}")
                    .route(web::delete().to(routes::retract_message)),
            )
            .service(
                at("/api/chat/threads/{thread}/read")
                    .route(web::post().to(crate::inbox::mark_read)),
            )
            .service(
                at("/api/chat/threads/{thread}/close").route(web::patch().to(routes::close_thread)),
            )
            .service(
                at("/api/chat/threads/{thread}/export").route(web::get().to(routes::export_thread)),
            )
            .service(
                at("/api/chat/threads/{thread}/hold").route(web::put().to(crate::inbox::set_hold)),
            )
            .service(
                at("/api/chat/threads/{thread}/record")
                    .route(web::post().to(routes::record_thread)),
            )
            .service(
                at("/api/chat/threads/{thread}/media")
                    .route(web::post().to(crate::media::upload_url)),
            )
            .service(at("/app/{key}").route(web::get().to(crate::pusher::socket::connect)))
            .service(at("/broadcasting/auth").route(web::post().to(crate::pusher::auth::authorize)))
            .service(at("/apps/{app_id}/events").route(web::post().to(http_api::events)))
            .service(
                at("/apps/{app_id}/batch_events").route(web::post().to(http_api::batch_events)),
            )
            .service(at("/apps/{app_id}/channels").route(web::get().to(http_api::channels)))
            .service(
                at("/apps/{app_id}/channels/{channel}").route(web::get().to(http_api::channel)),
            )
            .service(
                at("/apps/{app_id}/channels/{channel}/users").route(web::get().to(http_api::users)),
            )
            .default_service(web::to(routes::not_found));
    }
}

/// CORS (SPEC §3.11) from the one `CHAT_ALLOWED_ORIGINS` list: a preflight from a
/// listed origin is answered `204` with the methods, headers and max age; every answer
/// to a listed origin names it (with `Vary: Origin`); an unlisted origin gets no CORS
/// headers (its request is served as any other, and the browser keeps the answer from
/// the page). Bearer tokens, not cookies: no credentials. `None`: no CORS at all. Wrap
/// the `App` in it last, so that it sees preflights before routing does.
pub fn cors(
    allowed_origins: Option<&[String]>,
) -> actix_web::middleware::Condition<actix_cors::Cors> {
    let origins = allowed_origins.unwrap_or_default();
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
        ])
        .allowed_header("idempotency-key")
        .expose_headers(["retry-after"])
        .max_age(3600)
        .block_on_origin_mismatch(false);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    actix_web::middleware::Condition::new(allowed_origins.is_some(), cors)
}

/// What [`cors`] leaves to finish (SPEC §3.11): a preflight it allowed answers `204 No
/// Content` (actix-cors answers `200` with the same empty body), and an answer to an
/// origin it did not allow carries no CORS header at all (actix-cors still adds
/// `Access-Control-Expose-Headers` to those). Wrap it outside `cors`.
pub async fn cors_finish(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let preflight = req.method() == actix_web::http::Method::OPTIONS
        && req
            .headers()
            .contains_key(actix_web::http::header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = next.call(req).await?;
    let allowed = response
        .headers()
        .contains_key(actix_web::http::header::ACCESS_CONTROL_ALLOW_ORIGIN);
    if !allowed {
        let headers = response.headers_mut();
        let cors_headers: Vec<_> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in cors_headers {
            headers.remove(name);
        }
    }
    if preflight && allowed && response.status() == actix_web::http::StatusCode::OK {
        *response.response_mut().status_mut() = actix_web::http::StatusCode::NO_CONTENT;
    }
    Ok(response)
}

/// `Cache-Control: no-store` on every response that does not set its own (SPEC §3.7):
/// message content, signed media URLs and thread metadata must not be kept by a
/// browser or a proxy cache. Wrap the `App` in it.
pub fn no_store() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add((actix_web::http::header::CACHE_CONTROL, "no-store"))
}

/// The pattern of the route a request matched (`/api/chat/threads/{thread}/messages`),
/// for logs and metric labels, which never hold the path itself. Each resource carries
/// its own, so reading it back costs nothing; `HttpRequest::match_pattern` routes the
/// path a second time through every pattern's regex (7% of a post's CPU, measured).
#[derive(Debug, Clone, Copy)]
pub struct RoutePattern(pub &'static str);

fn at(pattern: &'static str) -> actix_web::Resource {
    web::resource(pattern).app_data(RoutePattern(pattern))
}
