//! The OpenAPI 3.1 description of the HTTP API, generated from the handlers'
//! `#[utoipa::path]` annotations and the body types of [`crate::wire`], served at
//! `/api/openapi.json` and committed as `docs/openapi.json` (a test fails when they
//! differ). The WebSocket (`/app/{key}`) and the signed `/media/…` URLs are described in
//! docs/API.md instead: clients reach them through URLs the API hands out.

use crate::wire::ErrorBody;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chat-server",
        description = "Temporary, encrypted chat threads for service requests. See docs/API.md.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        crate::routes::register_request,
        crate::routes::open_thread,
        crate::routes::list_messages,
        crate::routes::post_message,
        crate::routes::close_thread,
        crate::routes::retract_message,
        crate::routes::export_thread,
        crate::inbox::set_hold,
        crate::routes::record_thread,
        crate::inbox::inbox,
        crate::inbox::mark_read,
        crate::media::upload_url,
        crate::pusher::auth::authorize,
        crate::routes::healthz,
        crate::ops::readyz,
        crate::ops::metrics,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "chat", description = "Threads and messages (bearer token)"),
        (name = "realtime", description = "Channel authorization for the Pusher-protocol WebSocket"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
struct ApiDoc;

/// The document, as `/api/openapi.json` serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty JSON with a final newline, as `docs/openapi.json` holds it.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

pub(crate) async fn serve() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}
