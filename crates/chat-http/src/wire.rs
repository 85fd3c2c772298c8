//! The wire: every JSON body of the HTTP API, declared once. Handlers answer with these
//! types and the OpenAPI document (`openapi.rs`) describes them, so the two cannot
//! drift. Request bodies are read field by field (Laravel-shaped 422s, every field's
//! error at once: `routes.rs`, `media.rs`); their types here give their schema. Also
//! the conversions every answer shares: timestamps, messages.

use chat_core::{MessageContent, MessageKind, MessageView, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::{IntoResponses, ToSchema};

/// RFC 3339 in UTC, to the second: how every time is written.
pub(crate) fn rfc3339(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

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
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, Vec<String>>,
}

/// The errors a chat route can answer, all as [`ErrorBody`].
#[derive(IntoResponses)]
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
    /// The care team: staff users who may open and follow the thread. Replaces the
    /// previous team; default `[]`.
    #[schema(max_items = 50, inline, value_type = Option<Vec<UserIdValue>>)]
    pub staff_ids: Option<Vec<i64>>,
    /// Send the thread's transcript to the medical record at close (SPEC §10); default
    /// `false`.
    pub record: Option<bool>,
}

/// A user id: a positive integer.
#[derive(Serialize, ToSchema)]
#[schema(value_type = i64, minimum = 1)]
pub struct UserIdValue(pub i64);

#[derive(Serialize, ToSchema)]
pub struct ServiceRequestBody {
    pub id: i64,
    pub client_id: i64,
    /// Distinct, ascending.
    pub staff_ids: Vec<i64>,
    /// The thread's transcript goes to the medical record at close.
    pub record: bool,
}

/// A thread's transcript on its way to the medical record again (`POST …/record`).
#[derive(Serialize, ToSchema)]
pub struct RecordQueued {
    #[serde(rename = "threadId")]
    pub thread_id: i64,
    /// `pending`: the export job is queued, due now.
    pub record: String,
}

/// A thread as the inbox lists it: metadata only, never content.
#[derive(Serialize, ToSchema)]
pub struct InboxThread {
    #[serde(rename = "threadId")]
    pub thread_id: i64,
    pub request_id: i64,
    pub client_id: i64,
    pub admin_id: Option<i64>,
    pub staff_ids: Vec<i64>,
    pub status: ThreadStatus,
    #[schema(format = DateTime)]
    pub opened_at: String,
    #[schema(format = DateTime)]
    pub closed_at: Option<String>,
    pub last_message_id: Option<i64>,
    #[schema(format = DateTime)]
    pub last_message_at: Option<String>,
    /// Messages still kept above the caller's read marker, not sent by the caller.
    pub unread: u64,
    /// Under legal hold (SPEC §10): nothing of it expires, is capped, purged or
    /// retracted.
    pub hold: bool,
}

#[derive(Serialize, ToSchema)]
pub struct InboxPage {
    /// Newest activity first.
    pub threads: Vec<InboxThread>,
    /// Pass as `cursor` for the next page; `null` on the last one. Opaque.
    #[serde(rename = "nextCursor")]
    pub next_cursor: Option<String>,
}

/// What `PUT …/hold` takes (SPEC §10).
#[derive(Serialize, ToSchema)]
pub struct HoldRequest {
    /// `true` places the hold, `false` lifts it.
    pub hold: bool,
    /// Why (required to place a hold): 1..=500 characters, audited.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: Option<String>,
}

/// A thread's legal hold now.
#[derive(Serialize, ToSchema)]
pub struct HoldState {
    #[serde(rename = "threadId")]
    pub thread_id: i64,
    pub hold: bool,
}

/// What `POST …/read` takes.
#[derive(Serialize, ToSchema)]
pub struct MarkRead {
    /// The highest message id the caller has read.
    #[serde(rename = "upTo")]
    #[schema(minimum = 1)]
    pub up_to: i64,
}

/// The caller's read marker now (never lower than before; `null` while the thread
/// has no message at or below the one given).
#[derive(Serialize, ToSchema)]
pub struct ReadMarker {
    #[serde(rename = "upTo")]
    pub up_to: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Retracted {
    pub id: i64,
    pub redacted: bool,
}

/// What `MessagesRead` carries.
#[derive(Serialize)]
pub struct MessagesRead {
    pub thread_id: i64,
    pub user_id: i64,
    pub up_to: i64,
}

/// What `MessageRetracted` carries.
#[derive(Serialize)]
pub struct MessageRetracted {
    pub thread_id: i64,
    pub id: i64,
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

impl From<MessageKind> for MessageType {
    fn from(kind: MessageKind) -> Self {
        match kind {
            MessageKind::Text => Self::Text,
            MessageKind::Image => Self::Image,
            MessageKind::Location => Self::Location,
        }
    }
}

impl From<chat_core::ThreadStatus> for ThreadStatus {
    fn from(status: chat_core::ThreadStatus) -> Self {
        match status {
            chat_core::ThreadStatus::Open => Self::Open,
            chat_core::ThreadStatus::Closed => Self::Closed,
        }
    }
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
    /// A signed, short-lived download URL of the image (images), served by the
    /// service, which opens it.
    pub media_url: Option<String>,
    /// A signed, short-lived download URL of the image's thumbnail, at most
    /// `CHAT_THUMB_MAX_PX` on its longer side (images).
    pub thumb_url: Option<String>,
    pub sender_id: i64,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub redacted: bool,
}

impl From<&MessageView> for Message {
    fn from(m: &MessageView) -> Self {
        let (text, lat, lng) = match &m.content {
            Some(MessageContent::Text(t)) => (Some(t.as_str().to_owned()), None, None),
            Some(MessageContent::Location(c)) => (None, Some(c.lat()), Some(c.lng())),
            _ => (None, None, None),
        };
        Self {
            id: m.id.get(),
            kind: m.kind.into(),
            text,
            lat,
            lng,
            media_url: m.media_url.clone(),
            thumb_url: m.thumb_url.clone(),
            sender_id: m.sender_id.get(),
            created_at: rfc3339(m.created_at),
            redacted: m.redacted(),
        }
    }
}

/// What `MessageCreated` carries: the listed message and its thread.
#[derive(Serialize)]
pub struct MessageCreated {
    #[serde(flatten)]
    pub message: Message,
    pub thread_id: i64,
}

/// What `ThreadClosed` carries.
#[derive(Serialize)]
pub struct ThreadClosed {
    pub thread_id: i64,
    pub status: ThreadStatus,
    pub closed_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct MessagePage {
    /// Oldest first.
    pub messages: Vec<Message>,
    /// Pass as `cursor` for the older page; `null` when there is none.
    #[serde(rename = "nextCursor")]
    pub next_cursor: Option<String>,
    /// Each participant who marked messages read (user id as a string) and their
    /// read marker.
    pub reads: BTreeMap<String, i64>,
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
    /// `private-chat.{threadId}` or `presence-chat.{threadId}`.
    #[schema(
        pattern = r"^(private|presence)-chat\.[0-9]+$",
        examples("private-chat.1")
    )]
    pub channel_name: String,
}

#[derive(Serialize, ToSchema)]
pub struct ChannelAuth {
    /// `{key}:{hex HMAC-SHA256 of "socket_id:channel_name:channel_data"}`.
    pub auth: String,
    /// The grant, as a JSON string: `{"user_id": "7", "user_info": {"role": "…"},
    /// "exp": …}`. pusher-js sends it back on subscribe, unchanged.
    pub channel_data: String,
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
