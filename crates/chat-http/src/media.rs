//! `POST /api/chat/threads/{thread}/media` (SPEC §3.6), and the signed `/media/…`
//! routes through which the service itself serves the local backends (`file://`,
//! `memory://`). Keys and signatures are never logged: the request log records only
//! the route pattern.

use crate::auth::AuthUser;
use crate::body::{json_object, read_json, required_str};
use crate::error::ApiError;
use crate::routes::{path_id, rfc3339};
use crate::HttpState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chat_core::{ThreadId, ValidationErrors};
use chat_storage::signing::BadSignature;
use chat_storage::Refusal;
use futures::StreamExt;
use serde::Deserialize;
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

#[derive(Deserialize)]
pub struct Signed {
    expires: u64,
    sig: String,
}

fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Signature(BadSignature::Invalid | BadSignature::Expired) => ApiError::Forbidden,
        Refusal::NotFound => ApiError::NotFound,
        Refusal::TooLarge => ApiError::PayloadTooLarge,
        // The URL no longer grants a write.
        Refusal::AlreadyWritten => ApiError::Forbidden,
        Refusal::Unavailable => ApiError::Unavailable("media store".into()),
    }
}

/// A query without a well-formed `expires` and `sig` is a bad signature, not a 422:
/// these URLs are made by the service, never by hand. Parsed here rather than by
/// actix's `Query` extractor, whose failure log names the request path, and so the
/// object key.
fn signed(req: &HttpRequest) -> Result<Signed, ApiError> {
    web::Query::<Signed>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| ApiError::Forbidden)
}

pub async fn put_object(
    state: web::Data<HttpState>,
    key: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let gateway = state.media.as_ref().ok_or(ApiError::NotFound)?;
    let q = signed(&req)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (path, thread) = gateway
        .authorize("PUT", &key, q.expires, &q.sig, content_type)
        .map_err(refused)?;
    // Nothing is written to a thread that was closed since the URL was signed.
    state.service.accepts_upload(thread).await?;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > gateway.max_upload_bytes()) {
        return Err(ApiError::PayloadTooLarge);
    }
    let size = gateway
        .put(path, payload.map(|chunk| chunk.map_err(|_| ())))
        .await
        .map_err(refused)?;
    tracing::info!(bytes = size, "media uploaded");
    Ok(HttpResponse::Ok().json(json!({"size": size})))
}

pub async fn get_object(
    state: web::Data<HttpState>,
    key: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let gateway = state.media.as_ref().ok_or(ApiError::NotFound)?;
    let q = signed(&req)?;
    let (path, _) = gateway
        .authorize("GET", &key, q.expires, &q.sig, "")
        .map_err(refused)?;
    let (bytes, mime) = gateway.get(&path).await.map_err(refused)?;
    // Served as what the bytes are, never as what someone declared; anything that is
    // not a known image is an opaque download.
    Ok(HttpResponse::Ok()
        .content_type(mime.unwrap_or("application/octet-stream"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Cache-Control", "private, no-store"))
        .insert_header(("Content-Security-Policy", "default-src 'none'"))
        .body(bytes))
}
