//! A subscription lasts as long as the access that granted it (SPEC §6): removal from
//! the care team ends it on every instance, and so does the token's expiry.

use super::support::*;
use crate::helpers::*;
use crate::realtime::{signed, Socket};
use chat_testkit::TestRedis;
use serde_json::{json, Value};
use std::time::Duration;

async fn joined(base: &str, app: &Api, token: &str, thread: i64) -> Socket {
    subscribed(base, app, token, &channel(thread)).await.0
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_members_live_socket_stops_receiving_on_every_instance() {
    let db = database();
    let redis = TestRedis::start().unwrap();
    let mut vars = postgres_vars(&db);
    vars.push(("CHAT_REDIS_URL", redis.url()));
    let one = TestApp::spawn_with(&borrowed(&vars)).await;
    let two = TestApp::spawn_with(&borrowed(&vars)).await;
    let thread = team_thread(&one, 5, &[11, 12]).await;
    let (nurse, colleague, client) = (token(11, "nurse"), token(12, "nurse"), token(7, "client"));

    // Sockets on both instances, the removed nurse's on each.
    let mut nurse_on_one = joined(&one.base, &one, &nurse, thread).await;
    let mut nurse_on_two = joined(&two.base, &two, &nurse, thread).await;
    let mut colleague_on_two = joined(&two.base, &two, &colleague, thread).await;
    one.post_text(&client, thread, "before").await;
    for socket in [&mut nurse_on_one, &mut nurse_on_two, &mut colleague_on_two] {
        let event = next_within(socket, Duration::from_secs(5)).await.unwrap();
        assert_eq!(event["event"], "App\\Events\\MessageCreated");
    }

    // The host takes nurse 11 off the team, through instance one.
    let team = json!({"client_id": 7, "staff_ids": [12]});
    json_of(one.register(&admin(), 5, team).await, 200).await;
    for socket in [&mut nurse_on_one, &mut nurse_on_two] {
        let ended = next_within(socket, Duration::from_secs(1)).await.unwrap();
        assert_eq!(ended["event"], "pusher:subscription_error", "{ended}");
        assert_eq!(ended["channel"], channel(thread));
        assert_eq!(ended["data"]["status"], 403);
    }
    let secret = format!("after-{}", now_secs());
    two.post_text(&client, thread, &secret).await;
    let event = next_within(&mut colleague_on_two, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(event["data"]["text"], secret, "the team still gets it");
    for socket in [&mut nurse_on_one, &mut nurse_on_two] {
        assert_eq!(
            next_within(socket, Duration::from_millis(500)).await,
            None,
            "nothing more"
        );
    }
    // Nor may the socket whisper into the channel it left.
    nurse_on_two
        .send(json!({"event": "client-typing", "channel": channel(thread), "data": {}}))
        .await;
    let refused = next_within(&mut nurse_on_two, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(refused["event"], "pusher:error");
    assert_eq!(
        two.authorize(&nurse, "1.2", &channel(thread))
            .await
            .status(),
        403
    );
}

#[tokio::test]
async fn an_expired_tokens_subscription_ends() {
    let app = TestApp::spawn_with(&[("CHAT_JWT_LEEWAY_SECS", "0")]).await;
    let thread = team_thread(&app, 5, &[11]).await;
    let short = sign(
        &json!({"sub": "11", "role": "nurse", "exp": now_secs() + 2}),
        SECRET,
        jsonwebtoken::Algorithm::HS256,
    );
    let mut socket = joined(&app.base, &app, &short, thread).await;
    let mut control = joined(&app.base, &app, &token(7, "client"), thread).await;
    let ended = next_within(&mut socket, Duration::from_secs(6))
        .await
        .unwrap();
    assert_eq!(ended["event"], "pusher:subscription_error", "{ended}");
    assert_eq!(ended["data"]["status"], 401);
    app.post_text(&token(7, "client"), thread, "after the expiry")
        .await;
    let event = next_within(&mut control, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(event["event"], "App\\Events\\MessageCreated");
    assert_eq!(
        next_within(&mut socket, Duration::from_millis(500)).await,
        None
    );
    // The same grant cannot be used again on a new subscription.
    let (mut again, id) = Socket::established(&app.base).await;
    let fresh = sign(
        &json!({"sub": "11", "role": "nurse", "exp": now_secs() + 60}),
        SECRET,
        jsonwebtoken::Algorithm::HS256,
    );
    let grant = signed(&app, &fresh, &id, &channel(thread)).await;
    let mut stale = grant.clone();
    let data: Value = serde_json::from_str(grant["channel_data"].as_str().unwrap()).unwrap();
    assert_eq!(data["user_id"], "11");
    let mut expired = data.clone();
    expired["exp"] = json!(now_secs() - 10);
    stale["channel_data"] = json!(expired.to_string());
    let refused = again.subscribe(&channel(thread), &stale).await;
    assert_eq!(
        refused["data"]["status"], 401,
        "a changed grant breaks the signature"
    );
}
