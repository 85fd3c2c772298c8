use crate::auth::AuthUser;
use crate::body::path_id;
use crate::body::{
    json_object, optional_user_ids, read_json, required_number, required_str, required_user_id,
};
use crate::error::ApiError;
use crate::limits::Scope;
use crate::state::HttpState;
use crate::wire;
use actix_web::{web, HttpRequest, HttpResponse};
use chat_core::{
    Coordinates, IdempotencyKey, Invalid, InvalidIdempotencyKey, MediaPath, MessageContent,
    MessageId, MessageKind, PageRequest, RequestId, ServiceRequest, TextBody, ThreadId,
    ValidationErrors,
};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = crate::wire::Health)))]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(wire::Health {
        status: "ok".into(),
    })
}

pub(crate) async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// Registers (or updates) a service request and its client. Admins only: the host
/// system calls it.
#[utoipa::path(put, path = "/api/requests/{id}", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The service request", minimum = 1, example = 1)),
    request_body = crate::wire::RegisterRequestBody,
    responses((status = 200, description = "The request as stored", body = crate::wire::ServiceRequestBody), crate::wire::ChatErrors))]
#[tracing::instrument(skip_all, fields(request_id = %id, user_id = %user.id))]
pub(crate) async fn register_request(
    state: web::Data<HttpState>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id: RequestId = path_id(&id)?;
    let body = json_object(&read_json(&req, payload, state.max_body_bytes).await?)?;
    let mut errors = ValidationErrors::new();
    let client_id = required_user_id(&body, "client_id")
        .map_err(|msg| errors.add("client_id", msg))
        .ok();
    let staff_ids = optional_user_ids(&body, "staff_ids", ServiceRequest::MAX_STAFF)
        .map_err(|e| errors.merge(e))
        .ok();
    let record = match body.get("record") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(record)) => *record,
        Some(_) => {
            errors.add("record", "The record field must be true or false.");
            false
        }
    };
    errors.into_result()?;
    let (Some(client_id), Some(staff_ids)) = (client_id, staff_ids) else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };
    let request = state
        .service
        .register_request(&user, id, client_id, staff_ids, record)
        .await?;
    Ok(HttpResponse::Ok().json(wire::ServiceRequestBody {
        id: request.id.get(),
        client_id: request.client_id.get(),
        staff_ids: request.staff_ids.iter().map(|u| u.get()).collect(),
        record: request.record,
    }))
}

/// Opens the request's thread, or returns the existing one (idempotent). Its client or
/// an admin.
#[utoipa::path(post, path = "/api/requests/{id}/chat/open", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The service request", minimum = 1, example = 1)),
    responses((status = 200, description = "The thread", body = crate::wire::OpenedThread), crate::wire::ChatErrors))]
#[tracing::instrument(skip_all, fields(request_id = %id, user_id = %user.id))]
pub(crate) async fn open_thread(
    state: web::Data<HttpState>,
    AuthUser(user): AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: RequestId = path_id(&id)?;
    let thread = state.service.open_thread(&user, id).await?;
    tracing::info!(thread_id = %thread.id, "thread opened");
    Ok(HttpResponse::Ok().json(wire::OpenedThread {
        thread_id: thread.id.get(),
        status: thread.status.into(),
    }))
}

/// `limit` 1..=50 (default 20) and an integer `cursor`, else `422`.
fn page_request(query: &HashMap<String, String>) -> Result<PageRequest, ApiError> {
    let mut errors = ValidationErrors::new();
    let limit = match query.get("limit") {
        None => PageRequest::DEFAULT_LIMIT,
        // Digits only, as Laravel's `integer`: `5%20` (a trailing space) is refused.
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=PageRequest::MAX_LIMIT).contains(&n) => n,
            _ => {
                errors.add(
                    "limit",
                    "The limit field must be an integer between 1 and 50.",
                );
                0
            }
        },
    };
    let before = match query.get("cursor") {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            // Ids start at 1: a cursor at or below it has nothing older.
            Ok(n) => chat_core::MessageId::new(n.max(1)),
            Err(_) => {
                errors.add("cursor", "The cursor field must be an integer.");
                None
            }
        },
    };
    errors.into_result()?;
    Ok(PageRequest { before, limit })
}

/// One page of messages, oldest first: the newest `limit` before `cursor`.
#[utoipa::path(get, path = "/api/chat/threads/{thread}/messages", tag = "chat", security(("bearer" = [])),
    params(
        ("thread" = i64, Path, minimum = 1, example = 1),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 50, description = "Default 20"),
        ("cursor" = Option<i64>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses((status = 200, description = "A page of messages", body = crate::wire::MessagePage), crate::wire::ChatErrors))]
#[tracing::instrument(skip_all, fields(thread_id = %thread, user_id = %user.id))]
pub(crate) async fn list_messages(
    state: web::Data<HttpState>,
    AuthUser(user): AuthUser,
    thread: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let thread: ThreadId = path_id(&thread)?;
    let page_request = page_request(&query)?;
    let page = state
        .service
        .list_messages(&user, thread, page_request)
        .await?;
    let next_cursor = page
        .has_more
        .then(|| page.messages.first().map(|m| m.id.to_string()))
        .flatten();
    Ok(HttpResponse::Ok().json(wire::MessagePage {
        messages: page.messages.iter().map(wire::Message::from).collect(),
        next_cursor,
        reads: page
            .reads
            .iter()
            .map(|(user, up_to)| (user.to_string(), up_to.get()))
            .collect(),
    }))
}

/// The message a post body describes, or every field error found in it.
fn message_content(
    body: &Map<String, Value>,
    thread: ThreadId,
    max_text_chars: usize,
) -> Result<MessageContent, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let kind = match required_str(body, "type") {
        Ok(raw) => MessageKind::parse(raw).or_else(|| {
            errors.add("type", "The selected type is invalid.");
            None
        }),
        Err(msg) => {
            errors.add("type", msg);
            None
        }
    };
    let content = match kind {
        Some(MessageKind::Text) => required_str(body, "text")
            .map_err(Invalid::Said)
            .and_then(|raw| TextBody::parse(raw, max_text_chars).map_err(Invalid::from))
            .map(MessageContent::Text)
            .map_err(|why| errors.add("text", why))
            .ok(),
        Some(MessageKind::Image) => required_str(body, "mediaPath")
            .map_err(Invalid::Said)
            .and_then(|raw| MediaPath::parse_upload(raw, thread).map_err(Invalid::from))
            .map(MessageContent::Image)
            .map_err(|why| errors.add("mediaPath", why))
            .ok(),
        Some(MessageKind::Location) => {
            // Each field's errors, both at once: a range error on one is reported
            // beside a type error on the other.
            let lat = required_number(body, "lat").map_err(|msg| errors.add("lat", msg));
            let lng = required_number(body, "lng").map_err(|msg| errors.add("lng", msg));
            match Coordinates::new(lat.unwrap_or(0.0), lng.unwrap_or(0.0)) {
                Ok(at) if lat.is_ok() && lng.is_ok() => Some(MessageContent::Location(at)),
                Ok(_) => None,
                Err(out_of_range) => {
                    // Only a field that parsed can be out of range.
                    if out_of_range.lat && lat.is_ok() {
                        let (min, max) = Coordinates::LAT_RANGE;
                        errors.add("lat", Invalid::OutOfRange { min, max });
                    }
                    if out_of_range.lng && lng.is_ok() {
                        let (min, max) = Coordinates::LNG_RANGE;
                        errors.add("lng", Invalid::OutOfRange { min, max });
                    }
                    None
                }
            }
        }
        None => None,
    };
    match content {
        Some(content) if errors.is_empty() => Ok(content),
        _ => Err(errors),
    }
}

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// The post's `Idempotency-Key` header, if any (SPEC §3.4), or why it is refused.
fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, InvalidIdempotencyKey> {
    match req.headers().get(IDEMPOTENCY_KEY) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map_err(|_| InvalidIdempotencyKey)
            .and_then(IdempotencyKey::parse)
            .map(Some),
    }
}

/// Posts a text, image or location message; it is sealed before it is stored.
#[utoipa::path(post, path = "/api/chat/threads/{thread}/messages", tag = "chat", security(("bearer" = [])),
    params(
        ("thread" = i64, Path, minimum = 1, example = 1),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 64, pattern = "^[!-~]+$",
            description = "A repeat with the same key by the same user to the same thread within the message TTL returns the first post's id and stores nothing"),
    ),
    request_body = crate::wire::NewMessage,
    responses((status = 200, description = "Stored (sealed)", body = crate::wire::Posted), crate::wire::ChatErrors))]
#[tracing::instrument(skip_all, fields(thread_id = %thread, user_id = %user.id))]
pub(crate) async fn post_message(
    state: web::Data<HttpState>,
    AuthUser(user): AuthUser,
    thread: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state.limits.check(Scope::Posts, user.id).await?;
    let thread: ThreadId = path_id(&thread)?;
    let body = read_json(&req, payload, state.max_body_bytes).await?;
    let max_text_chars = state.service.settings().max_text_chars;
    let key = idempotency_key(&req);
    let mut kind = None;
    let id = state
        .service
        .post_message(&user, thread, key.clone().ok().flatten(), || {
            let content = message_content(&json_object(&body)?, thread, max_text_chars);
            // Every field error at once, the header's included.
            match (content, key) {
                (Ok(content), Ok(_)) => {
                    kind = Some(content.kind());
                    Ok(content)
                }
                (content, key) => {
                    let mut errors = content.err().unwrap_or_default();
                    if key.is_err() {
                        errors.add(IDEMPOTENCY_KEY, Invalid::IdempotencyKey);
                    }
                    Err(errors)
                }
            }
        })
        .await?;
    let kind = kind.map_or("", MessageKind::as_str);
    metrics::counter!(crate::metric_names::names::MESSAGES_POSTED, "type" => kind).increment(1);
    tracing::info!(message_id = %id, kind, "message posted");
    Ok(HttpResponse::Ok().json(wire::Posted { id: id.get() }))
}

/// Closes the thread (idempotent); its purge follows in the background.
#[utoipa::path(patch, path = "/api/chat/threads/{thread}/close", tag = "chat", security(("bearer" = [])),
    params(("thread" = i64, Path, minimum = 1, example = 1)),
    responses((status = 200, description = "Closed", body = crate::wire::Closed), crate::wire::ChatErrors))]
#[tracing::instrument(skip_all, fields(thread_id = %thread, user_id = %user.id))]
pub(crate) async fn close_thread(
    state: web::Data<HttpState>,
    AuthUser(user): AuthUser,
    thread: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let thread: ThreadId = path_id(&thread)?;
    let closed = state.service.close_thread(&user, thread).await?;
    tracing::info!("thread closed");
    Ok(HttpResponse::Ok().json(wire::Closed {
        status: closed.status.into(),
        closed_at: closed.closed_at.map(wire::rfc3339),
    }))
}

/// Retracts a message: its sender or an admin, while the thread is open. The content is
/// destroyed and the image deleted; the message lists as redacted. Again: the same.
#[utoipa::path(delete, path = "/api/chat/threads/{thread}/messages/{message}", tag = "chat", security(("bearer" = [])),
    params(("thread" = i64, Path, minimum = 1, example = 1), ("message" = i64, Path, minimum = 1, example = 1)),
    responses((status = 200, description = "Retracted", body = crate::wire::Retracted), crate::wire::ChatErrors))]
#[tracing::instrument(skip_all, fields(thread_id = %path.0, user_id = %user.id))]
pub(crate) async fn retract_message(
    state: web::Data<HttpState>,
    AuthUser(user): AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let thread: ThreadId = path_id(&path.0)?;
    let message: MessageId = path_id(&path.1)?;
    let id = state
        .service
        .retract_message(&user, thread, message)
        .await?;
    Ok(HttpResponse::Ok().json(wire::Retracted {
        id: id.get(),
        redacted: true,
    }))
}

/// The thread for the medical record (SPEC §10): an HL7 FHIR R4 `Bundle` of type
/// `collection`, one `Communication` per message still kept. Admins and the staff among
/// its participants; its client `403`. Audited as `export`.
#[utoipa::path(get, path = "/api/chat/threads/{thread}/export", tag = "chat", security(("bearer" = [])),
    params(("thread" = i64, Path, minimum = 1, example = 1)),
    responses((status = 200, description = "The thread as a FHIR R4 Bundle (collection)", content_type = "application/fhir+json", body = Object), crate::wire::ChatErrors))]
#[tracing::instrument(skip_all, fields(thread_id = %thread, user_id = %user.id))]
pub(crate) async fn export_thread(
    state: web::Data<HttpState>,
    AuthUser(user): AuthUser,
    thread: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let thread: ThreadId = path_id(&thread)?;
    let record = state.service.export_thread(&user, thread).await?;
    let bundle = chat_fhir::collection(&record, &state.fhir, chrono::Utc::now());
    tracing::info!(messages = record.messages.len(), "thread exported");
    Ok(HttpResponse::Ok()
        .content_type(chat_fhir::CONTENT_TYPE)
        .insert_header(("Cache-Control", "no-store"))
        .body(chat_fhir::to_json(&bundle)))
}

/// Sends a closed thread's transcript to the medical record again, at once (SPEC §10):
/// after every attempt failed, or to record a thread whose request did not ask. Admins
/// only; the export job is queued, due now (`202`).
#[utoipa::path(post, path = "/api/chat/threads/{thread}/record", tag = "chat", security(("bearer" = [])),
    params(("thread" = i64, Path, minimum = 1, example = 1)),
    responses((status = 202, description = "The export job is queued", body = crate::wire::RecordQueued), crate::wire::ChatErrors))]
#[tracing::instrument(skip_all, fields(thread_id = %thread, user_id = %user.id))]
pub(crate) async fn record_thread(
    state: web::Data<HttpState>,
    AuthUser(user): AuthUser,
    thread: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let thread: ThreadId = path_id(&thread)?;
    let queued = state.service.record_again(&user, thread).await?;
    Ok(HttpResponse::Accepted().json(wire::RecordQueued {
        thread_id: queued.id.get(),
        record: queued.record.as_str().to_owned(),
    }))
}
