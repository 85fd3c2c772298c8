//! The signed `/media/…` routes through which every image goes in and out (SPEC §3.6),
//! whatever the backend: `PUT` takes an upload's bytes (at most
//! `CHAT_MAX_UPLOAD_BYTES`, counted as they arrive) and hands them to the service,
//! which checks, cleans, thumbnails and seals them before anything is written; `GET`
//! has the service open an image or thumbnail and streams it with `no-store`. Keys and
//! signatures are never logged: the request log records only the route pattern, and
//! the query is parsed here rather than by actix's `Query` extractor, whose failure
//! log names the request path.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chat_http::{ApiError, HttpState, RoutePattern};
use chat_storage::signing::BadSignature;
use chat_storage::{Gateway, Refusal};
use futures::StreamExt;
use serde_json::json;
use std::sync::Arc;

const ROUTE: &str = "/media/{key:.*}";

/// Mounts `PUT` and `GET` of `/media/{key}` over `gateway`.
pub fn configure(gateway: Arc<Gateway>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::from(gateway)).service(
            web::resource(ROUTE)
                .app_data(RoutePattern(ROUTE))
                .route(web::put().to(put_object))
                .route(web::get().to(get_object)),
        );
    }
}

/// The signature of a `/media/…` URL.
struct Signed {
    expires: u64,
    sig: String,
}

fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Signature(BadSignature::Invalid | BadSignature::Expired) => ApiError::Forbidden,
        Refusal::TooLarge => ApiError::PayloadTooLarge,
        Refusal::Unavailable => ApiError::Unavailable("upload body".into()),
    }
}

/// A query without a well-formed `expires` and `sig` is a bad signature, not a 422:
/// these URLs are made by the service, never by hand. So is one that names a
/// parameter twice (`…&sig=<bad>&sig=<good>`): which copy counts would depend on the
/// reader, and a signed URL means exactly what was signed.
fn signed(req: &HttpRequest) -> Result<Signed, ApiError> {
    let mut expires = None;
    let mut sig = None;
    let mut seen = std::collections::HashSet::new();
    for pair in req.query_string().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !seen.insert(name) {
            return Err(ApiError::Forbidden);
        }
        match name {
            "expires" => expires = value.parse::<u64>().ok(),
            "sig" if !value.is_empty() => sig = Some(value.to_owned()),
            _ => {}
        }
    }
    match (expires, sig) {
        (Some(expires), Some(sig)) => Ok(Signed { expires, sig }),
        _ => Err(ApiError::Forbidden),
    }
}

async fn put_object(
    state: web::Data<HttpState>,
    gateway: web::Data<Gateway>,
    key: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let q = signed(&req)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (path, thread) = gateway
        .authorize("PUT", &key, q.expires, &q.sig, content_type)
        .map_err(refused)?;
    // Nothing is read for a thread that was closed since the URL was signed.
    state.service.accepts_upload(thread).await?;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > gateway.max_upload_bytes()) {
        return Err(ApiError::PayloadTooLarge);
    }
    let bytes = gateway
        .read_body(payload.map(|chunk| chunk.map_err(|_| ())))
        .await
        .map_err(refused)?;
    let size = state.service.store_upload(thread, &path, bytes).await?;
    tracing::info!(thread_id = %thread, bytes = size, "media uploaded");
    Ok(HttpResponse::Ok().json(json!({"size": size})))
}

async fn get_object(
    state: web::Data<HttpState>,
    gateway: web::Data<Gateway>,
    key: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = signed(&req)?;
    let (path, thread) = gateway
        .authorize("GET", &key, q.expires, &q.sig, "")
        .map_err(refused)?;
    let opened = state.service.open_media(thread, &path).await?;
    Ok(HttpResponse::Ok()
        .content_type(opened.mime)
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Cache-Control", "private, no-store"))
        .insert_header(("Content-Security-Policy", "default-src 'none'"))
        .body(opened.bytes))
}
