//! The OpenAPI 3.1 description of the HTTP API, generated from the handlers'
//! `#[utoipa::path]` annotations and the body types below, served at
//! `/api/openapi.json` and committed as `docs/openapi.json` (a test fails when they
//! differ). The WebSocket (`/app/{key}`) and the signed `/media/…` URLs are described in
//! docs/API.md instead: clients reach them through URLs the API hands out.

use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

/// Every error: `{"message", "code"}`, plus `errors` by field on `422`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub message: String,
    /// `unauthenticated`, `forbidden`, `thread_closed`, `not_found`,
    /// `payload_too_large`, `validation_failed`, `rate_limited`, `feature_disabled`,
    /// `unavailable`, `internal_error`.
    pub code: String,
    /// Field name → messages (`422` only).
    #[schema(required = false)]
    pub errors: BTreeMap<String, Vec<String>>,
}

/// The errors a chat route can answer, all as [`ErrorBody`].
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ChatErrors {
    /// No bearer token, or one that is expired, forged or for another issuer.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// Not the caller's thread or request (`forbidden`), or a post to a closed thread
    /// (`thread_closed`).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such thread or request.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The body is over `CHAT_MAX_BODY_BYTES`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// A route that takes a JSON body got one not sent as `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// Field errors in `errors`.
    #[response(status = 422)]
    Invalid(ErrorBody),
    /// Over the caller's per-minute limit.
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds until the limit resets")))]
    RateLimited(ErrorBody),
    /// `CHAT_ENABLED=false`.
    #[response(status = 501)]
    Disabled(ErrorBody),
    /// A backing store is down; nothing was changed.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(ErrorBody),
}

#[derive(Serialize, ToSchema)]
pub struct RegisterRequestBody {
    /// The client who owns the service request.
    #[schema(minimum = 1)]
    pub client_id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ServiceRequestBody {
    pub id: i64,
    pub client_id: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ThreadStatus {
    Open,
    Closed,
}

#[derive(Serialize, ToSchema)]
pub struct OpenedThread {
    #[serde(rename = "threadId")]
    pub thread_id: i64,
    pub status: ThreadStatus,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Text,
    Image,
    Location,
}

/// A message as listed (and as `MessageCreated` carries it, with `thread_id`). Content
/// fields are `null` when they do not apply or once the thread is redacted.
#[derive(Serialize, ToSchema)]
pub struct Message {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: MessageType,
    pub text: Option<String>,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    /// A signed, short-lived download URL (images).
    pub media_url: Option<String>,
    pub sender_id: i64,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub redacted: bool,
}

#[derive(Serialize, ToSchema)]
pub struct MessagePage {
    /// Oldest first.
    pub messages: Vec<Message>,
    /// Pass as `cursor` for the older page; `null` when there is none.
    #[serde(rename = "nextCursor")]
    pub next_cursor: Option<String>,
}

/// A text (1 to `CHAT_MAX_TEXT_CHARS` characters after trimming), an image uploaded
/// through an upload URL of the same thread, or a location.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum NewMessage {
    Text {
        /// Not only whitespace; at most `CHAT_MAX_TEXT_CHARS` (default 4000) characters.
        #[schema(min_length = 1, max_length = 4000, pattern = r"\S")]
        text: String,
    },
    Image {
        /// The `mediaPath` of an upload ticket of this thread, once uploaded.
        #[serde(rename = "mediaPath")]
        #[schema(pattern = r"^chats/[0-9]+/[0-9a-f]{32}\.(jpg|png|webp|gif)$")]
        media_path: String,
    },
    Location {
        #[schema(minimum = -90, maximum = 90)]
        lat: f64,
        #[schema(minimum = -180, maximum = 180)]
        lng: f64,
    },
}

#[derive(Serialize, ToSchema)]
pub struct Posted {
    pub id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Closed {
    pub status: ThreadStatus,
    #[schema(format = DateTime)]
    pub closed_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UploadRequest {
    /// One of `CHAT_ALLOWED_IMAGE_MIME` (by default these three).
    #[serde(rename = "contentType")]
    #[schema(examples("image/png"), pattern = r"^image/(jpeg|png|webp)$")]
    pub content_type: String,
}

/// Where and how to upload the image, then post it with `mediaPath`.
#[derive(Serialize, ToSchema)]
pub struct UploadTicket {
    #[serde(rename = "mediaPath")]
    pub media_path: String,
    #[serde(rename = "uploadUrl")]
    pub upload_url: String,
    pub method: String,
    /// Headers the upload must carry.
    pub headers: BTreeMap<String, String>,
    #[serde(rename = "expiresAt")]
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// What pusher-js sends (form-encoded; JSON is accepted too).
#[derive(Serialize, ToSchema)]
pub struct ChannelAuthRequest {
    /// From `pusher:connection_established`.
    #[schema(pattern = r"^[0-9]{1,20}\.[0-9]{1,20}$", examples("1234.5678"))]
    pub socket_id: String,
    /// `private-chat.{threadId}`.
    #[schema(pattern = r"^private-chat\.[0-9]+$", examples("private-chat.1"))]
    pub channel_name: String,
}

#[derive(Serialize, ToSchema)]
pub struct ChannelAuth {
    /// `{key}:{hex HMAC-SHA256 of "socket_id:channel_name"}`.
    pub auth: String,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: String,
    /// Backend (`postgres`, `redis`, `media`) → `ok` or `unavailable`.
    pub checks: BTreeMap<String, String>,
}

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
