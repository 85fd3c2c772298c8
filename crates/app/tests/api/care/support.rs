//! What the care tests share: the new routes, and a thread with a care team.

use crate::helpers::*;
use reqwest::Response;
use serde_json::{json, Value};

/// The socket's next frame, unless none comes within `wait`.
pub(super) async fn next_within(
    socket: &mut crate::realtime::Socket,
    wait: std::time::Duration,
) -> Option<Value> {
    tokio::time::timeout(wait, socket.next())
        .await
        .ok()
        .flatten()
}

/// A socket on `base` subscribed to `channel` as `token`, as pusher-js subscribes;
/// returns it and the data of its `subscription_succeeded`.
pub(super) async fn subscribed(
    base: &str,
    app: &Api,
    token: &str,
    channel: &str,
) -> (crate::realtime::Socket, Value) {
    let (mut socket, id) = crate::realtime::Socket::established(base).await;
    let grant = crate::realtime::signed(app, token, &id, channel).await;
    let answer = socket.subscribe(channel, &grant).await;
    assert_eq!(
        answer["event"], "pusher_internal:subscription_succeeded",
        "{answer}"
    );
    (socket, answer["data"].clone())
}

pub(super) fn channel(thread: i64) -> String {
    format!("private-chat.{thread}")
}

/// Registers `request` for client 7 with `staff` and opens its thread as the client
/// (so it has no admin).
pub(super) async fn team_thread(app: &Api, request: i64, staff: &[i64]) -> i64 {
    let registered = app
        .register(
            &admin(),
            request,
            json!({"client_id": 7, "staff_ids": staff}),
        )
        .await;
    json_of(registered, 200).await;
    let opened = json_of(app.open(&token(7, "client"), request).await, 200).await;
    opened["threadId"].as_i64().unwrap()
}

pub(crate) async fn inbox(app: &Api, token: &str, query: &str) -> Response {
    app.client
        .get(app.url(&format!("/api/chat/threads{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The inbox's threads as `(threadId, unread)`.
pub(crate) async fn inbox_ids(app: &Api, token: &str, query: &str) -> Vec<(i64, u64)> {
    let page = json_of(inbox(app, token, query).await, 200).await;
    page["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["threadId"].as_i64().unwrap(),
                t["unread"].as_u64().unwrap(),
            )
        })
        .collect()
}

pub(crate) async fn mark_read(app: &Api, token: &str, thread: i64, body: Value) -> Response {
    app.client
        .post(app.url(&format!("/api/chat/threads/{thread}/read")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub(super) async fn retract(app: &Api, token: &str, thread: i64, message: &str) -> Response {
    app.client
        .delete(app.url(&format!("/api/chat/threads/{thread}/messages/{message}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}
