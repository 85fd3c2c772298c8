//! `POST /broadcasting/auth`: the channel authorizer pusher-js calls before it
//! subscribes (form-encoded, as pusher-js sends it, or JSON).

use super::grant::ChannelData;
use super::Realtime;
use crate::auth::AuthGrant;
use crate::body::read_limited;
use crate::error::ApiError;
use crate::state::HttpState;
use actix_web::{web, HttpRequest, HttpResponse};
use chat_core::{ChatError, ValidationErrors};
use serde::Deserialize;

#[derive(Deserialize)]
struct AuthRequest {
    socket_id: Option<String>,
    channel_name: Option<String>,
}

/// Signs a `private-chat.{threadId}` subscription for a user who may list the thread,
/// with the grant it lasts for (`channel_data`: the user and the token's `exp`).
#[utoipa::path(post, path = "/broadcasting/auth", tag = "realtime", security(("bearer" = [])),
    request_body(content(
        (crate::wire::ChannelAuthRequest = "application/x-www-form-urlencoded"),
        (crate::wire::ChannelAuthRequest = "application/json"),
    )),
    responses((status = 200, description = "The subscription signature", body = crate::wire::ChannelAuth), crate::wire::ChatErrors))]
pub async fn authorize(
    state: web::Data<HttpState>,
    realtime: web::Data<Realtime>,
    AuthGrant(grant): AuthGrant,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let user = &grant.user;
    state
        .limits
        .check(crate::limits::Scope::Auth, user.id)
        .await?;
    let body = read_limited(&req, payload, state.max_body_bytes).await?;
    let is_json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let parsed = if is_json {
        serde_json::from_slice::<AuthRequest>(&body).ok()
    } else {
        std::str::from_utf8(&body)
            .ok()
            .and_then(|form| web::Query::<AuthRequest>::from_query(form).ok())
            .map(web::Query::into_inner)
    };
    let request = parsed.unwrap_or(AuthRequest {
        socket_id: None,
        channel_name: None,
    });
    let mut errors = ValidationErrors::default();
    let socket_id = request.socket_id.unwrap_or_default();
    let well_formed = socket_id.split_once('.').is_some_and(|(a, b)| {
        [a, b]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 20 && p.bytes().all(|c| c.is_ascii_digit()))
    });
    if !well_formed {
        errors.add("socket_id", "The socket id must look like 1234.5678.");
    }
    let channel = request.channel_name.unwrap_or_default();
    if channel.is_empty() {
        errors.add("channel_name", "The channel name field is required.");
    }
    errors.into_result()?;
    // Only a thread the user may list is signed; anything else is 403, so a stranger
    // learns nothing about which threads exist.
    let thread = super::channel::Channel::parse(&channel)
        .map(|c| c.thread)
        .ok_or(ApiError::Forbidden)?;
    match state.service.authorize_subscription(user, thread).await {
        Ok(_) => {}
        Err(ChatError::NotFound | ChatError::Forbidden) => return Err(ApiError::Forbidden),
        Err(other) => return Err(other.into()),
    }
    tracing::info!(thread_id = %thread, user_id = %user.id, "channel subscription authorized");
    // The grant goes with the signature: the socket's instance ends the subscription
    // when the token expires or the user leaves the care team (SPEC §6).
    let channel_data = ChannelData::new(user, grant.expires_at).encode();
    Ok(HttpResponse::Ok().json(crate::wire::ChannelAuth {
        auth: realtime.sign(&socket_id, &channel, Some(&channel_data)),
        channel_data,
    }))
}
