//! `POST /api/chat/threads/{thread}/media` (SPEC §3.6). The signed `/media/…` routes
//! of the local backends are mounted by the application beside the storage adapter
//! that serves them (chat-server's `media_gateway`).

use crate::auth::AuthUser;
use crate::body::{json_object, read_json, required_str};
use crate::error::ApiError;
use crate::routes::{path_id, rfc3339};
use crate::HttpState;
use actix_web::{web, HttpRequest, HttpResponse};
use chat_core::{ThreadId, ValidationErrors};
use serde_json::{json, Map, Value};

#[tracing::instrument(skip_all, fields(thread_id = %thread, user_id = %user.id))]
/// Signs an upload of an image to a new key of the thread; post it with `mediaPath`.
#[utoipa::path(post, path = "/api/chat/threads/{thread}/media", tag = "chat", security(("bearer" = [])),
    params(("thread" = i64, Path, minimum = 1, example = 1)),
    request_body = crate::openapi::UploadRequest,
    responses((status = 200, description = "The upload ticket", body = crate::openapi::UploadTicket), crate::openapi::ChatErrors))]
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
    let headers: Map<String, Value> = upload
        .headers
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "mediaPath": upload.path.as_str(),
        "uploadUrl": upload.url,
        "method": upload.method,
        "headers": headers,
        "expiresAt": rfc3339(expires_at),
    })))
}
