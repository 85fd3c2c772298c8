//! The delivery promises (SPEC §3.4, §6): a retried post is stored once, and a stored
//! message reaches every subscriber, or the subscriber's socket is told to reconnect
//! and catch up (4200), never left with a silent gap.

use crate::helpers::*;
use crate::realtime::{signed, Socket};
use chat_testkit::TestRedis;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn the_same_idempotency_key_twice_stores_one_message_under_one_id() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    let (client, other) = (token(7, "client"), admin());
    let text = |t: &str| json!({"type": "text", "text": t});
    let first = json_of(
        app.post_keyed(&client, thread, "k-1", text("late")).await,
        200,
    )
    .await;
    let again = json_of(
        app.post_keyed(&client, thread, "k-1", text("late")).await,
        200,
    )
    .await;
    assert_eq!(first["id"], again["id"], "the repeat gets the first id");
    // Another key, or the same key from another sender, is a post of its own.
    let second = json_of(app.post_keyed(&client, thread, "k-2", text("b")).await, 200).await;
    let theirs = json_of(app.post_keyed(&other, thread, "k-1", text("c")).await, 200).await;
    assert_ne!(second["id"], first["id"]);
    assert_ne!(theirs["id"], first["id"]);
    assert_eq!(app.all_texts(&client, thread).await, ["late", "b", "c"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_idempotency_key_is_a_field_error_after_authorization() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    let body = json!({"type": "text", "text": "hello"});
    for bad in [
        "x".repeat(65),
        "with space".to_owned(),
        "tab\tkey".to_owned(),
    ] {
        let response = app
            .post_keyed(&token(7, "client"), thread, &bad, body.clone())
            .await;
        assert_invalid(response, "Idempotency-Key").await;
    }
    // Every field error at once, the header's beside the body's.
    let response = app
        .post_keyed(
            &token(7, "client"),
            thread,
            &"y".repeat(65),
            json!({"type": "text"}),
        )
        .await;
    let errors = json_of(response, 422).await["errors"].clone();
    assert!(
        errors["Idempotency-Key"].is_array() && errors["text"].is_array(),
        "{errors}"
    );
    // A stranger is refused before anything is validated.
    let response = app
        .post_keyed(&token(99, "client"), thread, &"x".repeat(65), body)
        .await;
    assert_error(response, 403, "forbidden").await;
    assert!(app.all_texts(&token(7, "client"), thread).await.is_empty());
}

/// A socket subscribed to `thread`, for `user`.
async fn subscribed(app: &Api, ws_base: &str, user: &str, thread: i64) -> Socket {
    let (mut socket, id) = Socket::established(ws_base).await;
    let channel = format!("private-chat.{thread}");
    let auth = signed(app, user, &id, &channel).await;
    let answer = socket.subscribe(&channel, &auth).await;
    assert_eq!(answer["event"], "pusher_internal:subscription_succeeded");
    socket
}

/// The ids of the `MessageCreated` events a socket reads until it has `want` of them,
/// or until the server closes it (its code then in `socket.closed`).
async fn read_messages(socket: &mut Socket, want: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    while ids.len() < want {
        match socket.next().await {
            Some(frame) if frame["event"] == "App\\Events\\MessageCreated" => {
                ids.push(frame["data"]["id"].as_i64().unwrap());
            }
            Some(_) => {}
            None => break,
        }
    }
    ids
}

/// A burst far larger than the bus buffer (`CHAT_EVENT_BUFFER=4`), on the PostgreSQL
/// store, from 32 posters at once: the subscriber gets every message in id order, or
/// its socket is closed with 4200, never a gap.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_larger_than_the_bus_buffer_arrives_whole_or_the_socket_resyncs() {
    let db = database();
    let vars = postgres_vars(&db);
    let mut all = borrowed(&vars);
    all.extend_from_slice(&[("CHAT_EVENT_BUFFER", "4"), ("CHAT_WS_BIND", "127.0.0.1:0")]);
    let app = TestApp::spawn_with(&all).await;
    let threads = [
        app.thread_for(1, 7).await,
        app.thread_for(2, 7).await,
        app.thread_for(3, 7).await,
    ];
    let ws = app.ws_base.clone().unwrap();
    let mut socket = subscribed(&app, &ws, &token(7, "client"), threads[0]).await;
    let per_poster = 15;
    let posters: Vec<_> = (0..32)
        .map(|i| {
            let api = Api::new(app.base.clone());
            let thread = threads[i % threads.len()];
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..per_poster {
                    let id = api
                        .post_text(&token(7, "client"), thread, &format!("{i}.{n}"))
                        .await;
                    ids.push((thread, id));
                }
                ids
            })
        })
        .collect();
    let mut posted = Vec::new();
    for poster in posters {
        posted.extend(poster.await.unwrap());
    }
    let expected: Vec<i64> = posted
        .iter()
        .filter(|(t, _)| *t == threads[0])
        .map(|(_, id)| *id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let got = read_messages(&mut socket, expected.len()).await;
    match socket.closed {
        Some(code) => assert_eq!(code, 4200, "a socket that missed events must resync"),
        None => assert_eq!(got, expected, "every message of the thread, in id order"),
    }
}

/// The Redis bus connection drops (as in a Redis failover): what was published
/// meanwhile never arrives, so every subscribed socket is told to reconnect (4200); a
/// socket with no subscription has nothing to catch up and stays.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_bus_connection_makes_subscribed_sockets_resync() {
    let redis = TestRedis::start().unwrap();
    let url = redis.url();
    let app =
        TestApp::spawn_with(&[("CHAT_REDIS_URL", &url), ("CHAT_WS_BIND", "127.0.0.1:0")]).await;
    let thread = app.thread_for(1, 7).await;
    let ws = app.ws_base.clone().unwrap();
    let client = token(7, "client");
    let mut socket = subscribed(&app, &ws, &client, thread).await;
    let (mut idle, _) = Socket::established(&ws).await;
    let id = app.post_text(&client, thread, "before").await;
    assert_eq!(read_messages(&mut socket, 1).await, [id]);

    let killed = redis
        .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .unwrap();
    assert_ne!(killed.trim(), ":0", "the bus had a subscribed connection");
    assert!(socket.next().await.is_none(), "closed");
    assert_eq!(socket.closed, Some(4200));

    // Reconnected clients get what follows.
    let mut again = subscribed(&app, &ws, &client, thread).await;
    let next = eventually_post(&app, &client, thread, &mut again).await;
    assert!(next > id);
    idle.send(json!({"event": "pusher:ping", "data": {}})).await;
    let pong: Value = idle.next().await.unwrap();
    assert_eq!(pong["event"], "pusher:pong", "the idle socket stays");
}

/// Posts until one reaches `socket` (the bus resubscribes in the background); its id.
async fn eventually_post(app: &Api, token: &str, thread: i64, socket: &mut Socket) -> i64 {
    for _ in 0..20 {
        let id = app.post_text(token, thread, "after").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(frame) = tokio::time::timeout(Duration::from_millis(500), socket.next()).await {
            let frame = frame.unwrap();
            if frame["data"]["id"] == id {
                return id;
            }
        }
    }
    panic!("no post reached the reconnected socket");
}

/// The keyed repeat of a post is announced again (at least once), so a subscriber
/// never misses a message whose first answer was lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_keyed_repeat_announces_the_stored_message_again() {
    let app = TestApp::spawn_with(&[("CHAT_WS_BIND", "127.0.0.1:0")]).await;
    let thread = app.thread_for(1, 7).await;
    let ws = app.ws_base.clone().unwrap();
    let client = token(7, "client");
    let mut socket = subscribed(&app, &ws, &client, thread).await;
    let body = json!({"type": "text", "text": "on my way"});
    let first = json_of(
        app.post_keyed(&client, thread, "k", body.clone()).await,
        200,
    )
    .await;
    let again = json_of(app.post_keyed(&client, thread, "k", body).await, 200).await;
    let id = first["id"].as_i64().unwrap();
    assert_eq!(again["id"], id);
    assert_eq!(read_messages(&mut socket, 2).await, [id, id]);
}
