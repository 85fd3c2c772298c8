//! The inbox (SPEC §3.8) and read markers (§3.9).

use crate::auth::AuthUser;
use crate::body::{json_object, path_id, read_json};
use crate::error::ApiError;
use crate::state::HttpState;
use crate::wire;
use actix_web::{web, HttpRequest, HttpResponse};
use chat_core::{InboxCursor, InboxRequest, MessageId, ThreadId, ThreadStatus, ValidationErrors};
use serde_json::Value;
use std::collections::HashMap;

/// `status` (`open`, `closed`, `all`), `scope` (`all`), `limit` 1..=50 and an opaque
/// `cursor`, else `422`.
fn inbox_request(query: &HashMap<String, String>) -> Result<InboxRequest, ApiError> {
    let mut errors = ValidationErrors::new();
    let mut request = InboxRequest::default();
    match query.get("status").map(String::as_str) {
        None | Some("open") => {}
        Some("closed") => request.status = Some(ThreadStatus::Closed),
        Some("all") => request.status = None,
        Some(_) => errors.add("status", "The status field must be open, closed or all."),
    }
    match query.get("scope").map(String::as_str) {
        None | Some("mine") => {}
        Some("all") => request.everyone = true,
        Some(_) => errors.add("scope", "The scope field must be mine or all."),
    }
    if let Some(raw) = query.get("limit") {
        match raw.parse::<u32>() {
            Ok(n) if (1..=InboxRequest::MAX_LIMIT).contains(&n) => request.limit = n,
            _ => errors.add(
                "limit",
                "The limit field must be an integer between 1 and 50.",
            ),
        }
    }
    if let Some(raw) = query.get("cursor") {
        match InboxCursor::parse(raw) {
            Some(cursor) => request.after = Some(cursor),
            None => errors.add(
                "cursor",
                "The cursor field must be a nextCursor of this list.",
            ),
        }
    }
    errors.into_result()?;
    Ok(request)
}

/// The caller's threads, newest activity first, with their unread counts. An admin
/// lists every thread with `scope=all`.
#[utoipa::path(get, path = "/api/chat/threads", tag = "chat", security(("bearer" = [])),
    params(
        ("status" = Option<String>, Query, description = "`open` (default), `closed` or `all`"),
        ("scope" = Option<String>, Query, description = "`all`: every thread (admins only)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 50, description = "Default 20"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses((status = 200, description = "A page of the inbox", body = crate::wire::InboxPage), crate::wire::ChatErrors))]
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub(crate) async fn inbox(
    state: web::Data<HttpState>,
    AuthUser(user): AuthUser,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let request = inbox_request(&query)?;
    let page = state.service.inbox(&user, request).await?;
    let ids = |users: &[chat_core::UserId]| users.iter().map(|u| u.get()).collect();
    let threads = page
        .threads
        .iter()
        .map(|(entry, unread)| {
            let thread = &entry.thread;
            wire::InboxThread {
                thread_id: thread.id.get(),
                request_id: thread.request_id.get(),
                client_id: thread.client_id.get(),
                admin_id: thread.admin_id.map(|a| a.get()),
                staff_ids: ids(&thread.staff_ids),
                status: thread.status.into(),
                opened_at: wire::rfc3339(thread.opened_at),
                closed_at: thread.closed_at.map(wire::rfc3339),
                last_message_id: entry.last_message_id.map(MessageId::get),
                last_message_at: entry.last_message_at.map(wire::rfc3339),
                unread: *unread,
                hold: thread.hold,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(wire::InboxPage {
        threads,
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// Moves the caller's read marker up to `upTo` (never back) and announces it.
#[utoipa::path(post, path = "/api/chat/threads/{thread}/read", tag = "chat", security(("bearer" = [])),
    params(("thread" = i64, Path, minimum = 1, example = 1)),
    request_body = crate::wire::MarkRead,
    responses((status = 200, description = "The read marker now", body = crate::wire::ReadMarker), crate::wire::ChatErrors))]
#[tracing::instrument(skip_all, fields(thread_id = %thread, user_id = %user.id))]
pub(crate) async fn mark_read(
    state: web::Data<HttpState>,
    AuthUser(user): AuthUser,
    thread: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let thread: ThreadId = path_id(&thread)?;
    let body = json_object(&read_json(&req, payload, state.max_body_bytes).await?)?;
    let up_to = match body.get("upTo") {
        None | Some(Value::Null) => Err("The up to field is required."),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(MessageId::new)
            .ok_or("The up to field must be a positive integer."),
        Some(_) => Err("The up to field must be a positive integer."),
    }
    .map_err(|msg| ApiError::invalid("upTo", msg))?;
    let marker = state.service.mark_read(&user, thread, up_to).await?;
    Ok(HttpResponse::Ok().json(wire::ReadMarker {
        up_to: marker.map(MessageId::get),
    }))
}

/// Places or lifts a thread's legal hold (SPEC §10): admins only; `reason` required
/// to place it (1..=500 characters). While held nothing of the thread expires, is
/// capped, purged or retracted (`409 on_hold`); lifting it restores the rules at once.
#[utoipa::path(put, path = "/api/chat/threads/{thread}/hold", tag = "chat", security(("bearer" = [])),
    params(("thread" = i64, Path, minimum = 1, example = 1)),
    request_body = crate::wire::HoldRequest,
    responses((status = 200, description = "The hold now", body = crate::wire::HoldState), crate::wire::ChatErrors))]
#[tracing::instrument(skip_all, fields(thread_id = %thread, user_id = %user.id))]
pub(crate) async fn set_hold(
    state: web::Data<HttpState>,
    AuthUser(user): AuthUser,
    thread: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let thread: ThreadId = path_id(&thread)?;
    let body = json_object(&read_json(&req, payload, state.max_body_bytes).await?)?;
    let hold = match body.get("hold") {
        Some(Value::Bool(hold)) => *hold,
        None | Some(Value::Null) => {
            return Err(ApiError::invalid("hold", "The hold field is required."))
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "hold",
                "The hold field must be true or false.",
            ))
        }
    };
    let reason = body.get("reason").cloned();
    let reason = move || {
        let max = chat_core::service::HOLD_REASON_MAX_CHARS;
        match reason {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => {
                let text = text.trim();
                if text.is_empty() {
                    Err(ValidationErrors::single(
                        "reason",
                        "The reason field is required.",
                    ))
                } else if text.chars().count() > max {
                    Err(ValidationErrors::single(
                        "reason",
                        format!("The reason must not be greater than {max} characters."),
                    ))
                } else {
                    Ok(Some(text.to_owned()))
                }
            }
            Some(_) => Err(ValidationErrors::single(
                "reason",
                "The reason must be a string.",
            )),
        }
    };
    let updated = state.service.set_hold(&user, thread, hold, reason).await?;
    tracing::info!(hold = updated.hold, "legal hold changed");
    Ok(HttpResponse::Ok().json(wire::HoldState {
        thread_id: updated.id.get(),
        hold: updated.hold,
    }))
}
