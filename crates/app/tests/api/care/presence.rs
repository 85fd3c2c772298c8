//! Presence channels (SPEC §6): `presence-chat.{id}`, across instances, so that
//! `Echo.join('chat.' + id)` gives `here`, `joining` and `leaving`.

use super::support::*;
use crate::helpers::*;
use crate::realtime::{signed, Socket};
use chat_testkit::TestRedis;
use serde_json::{json, Value};
use std::time::Duration;

fn presence(thread: i64) -> String {
    format!("presence-chat.{thread}")
}

/// A socket on `base` joined to the thread's presence channel as `token`; returns it
/// and its `subscription_succeeded` data.
async fn joined(base: &str, app: &Api, token: &str, thread: i64) -> (Socket, Value) {
    let (socket, data) = subscribed(base, app, token, &presence(thread)).await;
    (socket, data["presence"].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn members_join_and_leave_across_instances() {
    let db = database();
    let redis = TestRedis::start().unwrap();
    let mut vars = postgres_vars(&db);
    vars.push(("CHAT_REDIS_URL", redis.url()));
    let one = TestApp::spawn_with(&borrowed(&vars)).await;
    let two = TestApp::spawn_with(&borrowed(&vars)).await;
    let thread = team_thread(&one, 5, &[11]).await;

    let (mut client, here) = joined(&one.base, &one, &token(7, "client"), thread).await;
    assert_eq!(here["ids"], json!(["7"]));
    assert_eq!(here["count"], 1);
    assert_eq!(here["hash"]["7"], json!({"role": "client"}));

    // The nurse joins on the other instance: both see each other.
    let (mut nurse, here) = joined(&two.base, &two, &token(11, "nurse"), thread).await;
    assert_eq!(here["ids"], json!(["11", "7"]));
    assert_eq!(here["hash"]["11"], json!({"role": "nurse"}));
    let added = next_within(&mut client, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(added["event"], "pusher_internal:member_added");
    assert_eq!(added["channel"], presence(thread));
    assert_eq!(
        added["data"],
        json!({"user_id": "11", "user_info": {"role": "nurse"}})
    );
    assert_eq!(
        next_within(&mut nurse, Duration::from_millis(300)).await,
        None,
        "not told of itself"
    );

    // A second socket of the same nurse is no new member; its leaving is no departure.
    let (mut second, _) = joined(&one.base, &one, &token(11, "nurse"), thread).await;
    assert_eq!(
        next_within(&mut client, Duration::from_millis(500)).await,
        None
    );
    second
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": presence(thread)}}))
        .await;
    assert_eq!(
        next_within(&mut client, Duration::from_millis(500)).await,
        None
    );

    // Whispers on the presence channel reach the other members.
    nurse
        .send(json!({"event": "client-typing", "channel": presence(thread), "data": {"typing": true}}))
        .await;
    let typing = next_within(&mut client, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(typing["event"], "client-typing");
    assert_eq!(typing["channel"], presence(thread));

    // The nurse's last socket leaves: the client sees them go.
    nurse
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": presence(thread)}}))
        .await;
    let removed = next_within(&mut client, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(removed["event"], "pusher_internal:member_removed");
    assert_eq!(removed["data"], json!({"user_id": "11"}));
}

#[tokio::test]
async fn presence_needs_a_grant_that_names_the_member() {
    let app = TestApp::spawn().await;
    let thread = team_thread(&app, 5, &[]).await;
    let (mut socket, id) = Socket::established(&app.base).await;
    let grant = signed(&app, &token(7, "client"), &id, &presence(thread)).await;
    // The same signature without its channel data does not verify.
    let bare = json!({"auth": grant["auth"]});
    let refused = socket.subscribe(&presence(thread), &bare).await;
    assert_eq!(refused["event"], "pusher:subscription_error");
    assert_eq!(refused["data"]["status"], 401);
    // A stranger gets no grant at all.
    assert_eq!(
        app.authorize(&token(8, "client"), &id, &presence(thread))
            .await
            .status(),
        403
    );
    // Events of the thread go to its private channel, not to the presence one.
    let joined = socket.subscribe(&presence(thread), &grant).await;
    assert_eq!(joined["event"], "pusher_internal:subscription_succeeded");
    app.post_text(&token(7, "client"), thread, "hello").await;
    assert_eq!(
        next_within(&mut socket, Duration::from_millis(500)).await,
        None
    );
}
