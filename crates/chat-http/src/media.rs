//! `POST /api/chat/threads/{thread}/media` (SPEC §3.6). The signed `/media/…` routes
//! of the local backends are mounted by the application beside the storage adapter
//! that serves them (chat-server's `media_gateway`).

use crate::auth::AuthUser;
use crate::body::path_id;
use crate::body::{json_object, read_json, required_str};
use crate::error::ApiError;
use crate::state::HttpState;
use crate::wire::{self, rfc3339};
use actix_web::{web, HttpRequest, HttpResponse};
use chat_core::{ThreadId, ValidationErrors};

#[tracing::instrument(skip_all, fields(thread_id = %thread, user_id = %user.id))]
/// Signs an upload of an image to a new key of the thread; post it with `mediaPath`.
#[utoipa::path(post, path = "/api/chat/threads/{thread}/media", tag = "chat", security(("bearer" = [])),
    params(("thread" = i64, Path, minimum = 1, example = 1)),
    request_body = crate::wire::UploadRequest,
    responses((status = 200, description = "The upload ticket", body = crate::wire::UploadTicket), crate::wire::ChatErrors))]
pub async fn upload_url(
    state: web::Data<HttpState>,
    AuthUser(user): AuthUser,
    thread: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state
        .limits
        .check(crate::limits::Scope::Uploads, user.id)
        .await?;
    let thread: ThreadId = path_id(&thread)?;
    let body = read_json(&req, payload, state.max_body_bytes).await?;
    let (upload, expires_at) = state
        .service
        .upload_url(&user, thread, || {
            let obj = json_object(&body)?;
            required_str(&obj, "contentType")
                .map(str::to_owned)
                .map_err(|m| ValidationErrors::single("contentType", m))
        })
        .await?;
    tracing::info!("upload URL issued");
    Ok(HttpResponse::Ok().json(wire::UploadTicket {
        media_path: upload.path.as_str().to_owned(),
        upload_url: upload.url,
        method: upload.method,
        headers: upload.headers.into_iter().collect(),
        expires_at: rfc3339(expires_at),
    }))
}
