//! Mounting: every route of the adapter on an actix `App`, each resource carrying its
//! route pattern for the request log and the metrics.

use crate::error::ApiError;
use crate::ops::Operations;
use crate::pusher::Realtime;
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
                at("/api/chat/threads/{thread}/media")
                    .route(web::post().to(crate::media::upload_url)),
            )
            .service(at("/app/{key}").route(web::get().to(crate::pusher::socket::connect)))
            .service(at("/broadcasting/auth").route(web::post().to(crate::pusher::auth::authorize)))
            .default_service(web::to(routes::not_found));
    }
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
