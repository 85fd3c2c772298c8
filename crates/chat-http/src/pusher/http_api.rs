//! The Pusher HTTP API (SPEC §9.2), for the host's own server: its events on the
//! threads' private and presence channels (Laravel's `broadcast()`), and channel occupancy, counted across
//! every instance from the channel registry. Requests are signed as Pusher signs them,
//! so Pusher's own server libraries work unchanged: `auth_key`, `auth_timestamp` (at
//! most 600 s off), `auth_version=1.0`, `body_md5` of a body, and `auth_signature`,
//! the hex HMAC-SHA256 under the app secret of `METHOD\npath\nsorted query`.

use super::{channel::Channel, Realtime};
use crate::body::read_limited;
use crate::state::HttpState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chat_core::ChatError;
use md5::{Digest, Md5};
use ring::hmac;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Largest event data, as Pusher allows.
const MAX_DATA_BYTES: usize = 10 * 1024;
/// Channels one event may name, and events one batch may hold, as Pusher allows.
const MAX_CHANNELS: usize = 100;
const MAX_BATCH: usize = 10;
/// How far a request's `auth_timestamp` may be from this server's clock.
const MAX_SKEW_SECS: i64 = 600;

/// An answer in Pusher's shape: a status and a plain message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    status: StatusCode,
    message: String,
}

fn refused(status: StatusCode, message: impl Into<String>) -> Refused {
    Refused {
        status,
        message: message.into(),
    }
}

impl ResponseError for Refused {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({"error": self.message}))
    }
}

impl From<ChatError> for Refused {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::NotFound => refused(StatusCode::BAD_REQUEST, "Unknown channel"),
            ChatError::Disabled => refused(StatusCode::NOT_IMPLEMENTED, "Chat is disabled"),
            other => {
                tracing::warn!(error = %other, "Pusher HTTP API: the event bus failed");
                refused(StatusCode::SERVICE_UNAVAILABLE, "Try again")
            }
        }
    }
}

/// Checks the request's signature; the body is the raw one it was signed with.
fn authenticate(realtime: &Realtime, req: &HttpRequest, body: &[u8]) -> Result<(), Refused> {
    let unauthorized = |why: &str| refused(StatusCode::UNAUTHORIZED, why);
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|_| unauthorized("Malformed query"))?
        .into_inner();
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    let mut signature = None;
    for (key, value) in pairs {
        match key.to_ascii_lowercase().as_str() {
            "auth_signature" => signature = Some(value),
            lower => {
                params.insert(lower.to_owned(), value);
            }
        }
    }
    let settings = realtime.settings();
    if params.get("auth_key").map(String::as_str) != Some(settings.key.as_str()) {
        return Err(unauthorized("Unknown auth_key"));
    }
    if params.get("auth_version").map(String::as_str) != Some("1.0") {
        return Err(unauthorized("auth_version must be 1.0"));
    }
    let timestamp: i64 = params
        .get("auth_timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| unauthorized("auth_timestamp is required"))?;
    if (chrono::Utc::now().timestamp() - timestamp).abs() > MAX_SKEW_SECS {
        return Err(unauthorized(
            "Timestamp expired: more than 600 s from the server's",
        ));
    }
    if !body.is_empty() {
        let md5 = hex::encode(Md5::digest(body));
        if params.get("body_md5") != Some(&md5) {
            return Err(unauthorized("body_md5 does not match the body"));
        }
    }
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let signed = format!("{}\n{}\n{}", req.method(), req.path(), query.join("&"));
    let tag = signature
        .and_then(|s| hex::decode(s).ok())
        .ok_or_else(|| unauthorized("auth_signature is required"))?;
    hmac::verify(realtime.signing_key(), signed.as_bytes(), &tag)
        .map_err(|_| unauthorized("Invalid signature"))
}

/// A signed `GET` of this app: what the occupancy routes check first.
fn signed_get(realtime: &Realtime, req: &HttpRequest, app_id: &str) -> Result<(), Refused> {
    authenticate(realtime, req, &[])?;
    this_app(realtime, app_id)
}

/// The app a path names must be this one.
fn this_app(realtime: &Realtime, app_id: &str) -> Result<(), Refused> {
    if app_id == realtime.settings().app_id {
        Ok(())
    } else {
        Err(refused(StatusCode::NOT_FOUND, "Unknown app"))
    }
}

fn info_fields(query: &BTreeMap<String, String>) -> Vec<String> {
    query
        .get("info")
        .map(|info| info.split(',').map(|f| f.trim().to_owned()).collect())
        .unwrap_or_default()
}

fn query_map(req: &HttpRequest) -> BTreeMap<String, String> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner().into_iter().collect())
        .unwrap_or_default()
}

/// `GET /apps/{app_id}/channels`: the occupied channels (`filter_by_prefix`), with
/// `user_count` for presence channels when `info` asks for it.
pub async fn channels(
    realtime: web::Data<Realtime>,
    app_id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, Refused> {
    signed_get(&realtime, &req, &app_id)?;
    let query = query_map(&req);
    let prefix = query.get("filter_by_prefix").cloned().unwrap_or_default();
    let wants_users = info_fields(&query).iter().any(|f| f == "user_count");
    if wants_users && !prefix.starts_with("presence-") {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            "user_count may only be requested for presence channels (filter_by_prefix=presence-)",
        ));
    }
    let now = chrono::Utc::now();
    let occupied = realtime
        .registry()
        .occupied(&prefix, now)
        .await
        .map_err(ChatError::Unavailable)?;
    let mut channels = Map::new();
    for (name, _) in occupied {
        let mut info = Map::new();
        if wants_users {
            let users = distinct_users(&realtime, &name).await?;
            info.insert("user_count".into(), json!(users.len()));
        }
        channels.insert(name, Value::Object(info));
    }
    Ok(HttpResponse::Ok().json(json!({ "channels": channels })))
}

async fn distinct_users(realtime: &Realtime, channel: &str) -> Result<Vec<String>, Refused> {
    let members = realtime
        .registry()
        .members(channel, chrono::Utc::now())
        .await
        .map_err(ChatError::Unavailable)?;
    let mut users: Vec<String> = members
        .iter()
        .filter_map(|m| m.user.map(|u| u.to_string()))
        .collect();
    users.sort();
    users.dedup();
    Ok(users)
}

/// `GET /apps/{app_id}/channels/{channel}`: `occupied`, and `subscription_count`
/// (and `user_count` for a presence channel) when `info` asks for them.
pub async fn channel(
    realtime: web::Data<Realtime>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, Refused> {
    let (app_id, channel) = path.into_inner();
    signed_get(&realtime, &req, &app_id)?;
    let info = info_fields(&query_map(&req));
    if info.iter().any(|f| f == "user_count") && !channel.starts_with("presence-") {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            "user_count may only be requested for presence channels",
        ));
    }
    let members = realtime
        .registry()
        .members(&channel, chrono::Utc::now())
        .await
        .map_err(ChatError::Unavailable)?;
    let mut body = Map::new();
    body.insert("occupied".into(), json!(!members.is_empty()));
    if info.iter().any(|f| f == "subscription_count") {
        body.insert("subscription_count".into(), json!(members.len()));
    }
    if info.iter().any(|f| f == "user_count") {
        let users = distinct_users(&realtime, &channel).await?;
        body.insert("user_count".into(), json!(users.len()));
    }
    Ok(HttpResponse::Ok().json(Value::Object(body)))
}

/// `GET /apps/{app_id}/channels/{channel}/users`: a presence channel's users.
pub async fn users(
    realtime: web::Data<Realtime>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, Refused> {
    let (app_id, channel) = path.into_inner();
    signed_get(&realtime, &req, &app_id)?;
    if !channel.starts_with("presence-") {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            "Users may only be listed for presence channels",
        ));
    }
    let users = distinct_users(&realtime, &channel).await?;
    let users: Vec<Value> = users.into_iter().map(|id| json!({ "id": id })).collect();
    Ok(HttpResponse::Ok().json(json!({ "users": users })))
}

#[derive(Deserialize)]
struct Event {
    name: Option<String>,
    data: Option<Value>,
    channel: Option<String>,
    channels: Option<Vec<String>>,
    socket_id: Option<String>,
}

#[derive(Deserialize)]
struct Batch {
    batch: Vec<Event>,
}

/// An event the host may send: a name that is not the chat's own nor the protocol's
/// (so the host cannot forge a message), data of at most 10 KB, channels of threads
/// (private or presence, as Laravel's `PrivateChannel` and `PresenceChannel`).
struct Checked {
    name: String,
    data: String,
    channels: Vec<Channel>,
    except_socket: Option<String>,
}

fn check(realtime: &Realtime, event: Event) -> Result<Checked, Refused> {
    let bad = |why: &str| refused(StatusCode::BAD_REQUEST, why);
    let name = event
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("name is required"))?;
    if name.len() > 200 {
        return Err(bad("name is longer than 200 characters"));
    }
    let base = name
        .strip_prefix(realtime.settings().event_prefix.as_str())
        .unwrap_or(&name);
    let base = base.strip_prefix('.').unwrap_or(base);
    if chat_core::ChatEventName::is_reserved(base)
        || ["pusher:", "pusher_internal:", "client-"]
            .iter()
            .any(|p| name.starts_with(p))
    {
        return Err(bad(
            "This event name is the chat's own: the host may not send it",
        ));
    }
    // Pusher's libraries send data as a string (they encode objects themselves).
    let data = match event.data {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => return Err(bad("data is required")),
    };
    if data.len() > MAX_DATA_BYTES {
        return Err(refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "data is larger than 10 KB",
        ));
    }
    let names: Vec<String> = match (event.channels, event.channel) {
        (Some(channels), _) => channels,
        (None, Some(channel)) => vec![channel],
        (None, None) => return Err(bad("channels is required")),
    };
    if names.is_empty() || names.len() > MAX_CHANNELS {
        return Err(bad("between 1 and 100 channels"));
    }
    let channels = names
        .iter()
        .map(|c| {
            Channel::parse(c).ok_or_else(|| {
                bad("only private-chat.{threadId} and presence-chat.{threadId} channels")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Checked {
        name,
        data,
        channels,
        except_socket: event.socket_id.filter(|s| !s.is_empty()),
    })
}

/// Relays checked events once every channel they name is an existing thread's, so
/// that no channel gets an event of a request that is then refused.
async fn relay(state: &HttpState, events: Vec<Checked>) -> Result<(), Refused> {
    for channel in events.iter().flat_map(|e| &e.channels) {
        state.service.thread_exists(channel.thread).await?;
    }
    for event in events {
        for channel in &event.channels {
            state
                .service
                .relay_host_event(
                    *channel,
                    event.name.clone(),
                    event.data.clone(),
                    event.except_socket.clone(),
                )
                .await?;
        }
    }
    Ok(())
}

/// A `POST`'s body, read within the limit and signed for this app.
async fn signed_body(
    state: &HttpState,
    realtime: &Realtime,
    app_id: &str,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<actix_web::web::Bytes, Refused> {
    let body = read_limited(req, payload, state.max_body_bytes)
        .await
        .map_err(|_| refused(StatusCode::PAYLOAD_TOO_LARGE, "Body too large"))?;
    authenticate(realtime, req, &body)?;
    this_app(realtime, app_id)?;
    Ok(body)
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refused> {
    serde_json::from_slice(body)
        .map_err(|_| refused(StatusCode::BAD_REQUEST, "Malformed JSON body"))
}

/// `POST /apps/{app_id}/events`: one event on up to 100 threads' channels.
pub async fn events(
    state: web::Data<HttpState>,
    realtime: web::Data<Realtime>,
    app_id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Refused> {
    let body = signed_body(&state, &realtime, &app_id, &req, payload).await?;
    let checked = check(&realtime, parse(&body)?)?;
    relay(&state, vec![checked]).await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// `POST /apps/{app_id}/batch_events`: up to 10 events, each on one channel.
pub async fn batch_events(
    state: web::Data<HttpState>,
    realtime: web::Data<Realtime>,
    app_id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Refused> {
    let body = signed_body(&state, &realtime, &app_id, &req, payload).await?;
    let batch: Batch = parse(&body)?;
    if batch.batch.is_empty() || batch.batch.len() > MAX_BATCH {
        return Err(refused(StatusCode::BAD_REQUEST, "between 1 and 10 events"));
    }
    let checked = batch
        .batch
        .into_iter()
        .map(|event| check(&realtime, event))
        .collect::<Result<Vec<_>, _>>()?;
    relay(&state, checked).await?;
    Ok(HttpResponse::Ok().json(json!({ "batch": [] })))
}
