//! The inbox (SPEC §3.8) and read markers (§3.9), on the in-memory store and on
//! PostgreSQL.

use super::support::*;
use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn the_inbox_in_memory() {
    inbox_rules(&TestApp::spawn().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inbox_on_postgres() {
    let db = database();
    let vars = postgres_vars(&db);
    inbox_rules(&TestApp::spawn_with(&borrowed(&vars)).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inbox_with_messages_in_redis() {
    let db = database();
    let redis = chat_testkit::TestRedis::start().unwrap();
    let mut vars = postgres_vars(&db);
    vars.push(("CHAT_REDIS_URL", redis.url()));
    vars.push(("CHAT_MESSAGE_STORE", "redis".into()));
    inbox_rules(&TestApp::spawn_with(&borrowed(&vars)).await).await;
}

async fn inbox_rules(app: &TestApp) {
    let second = Duration::from_secs(1);
    let (client, nurse) = (token(7, "client"), token(11, "nurse"));
    let a = team_thread(app, 1, &[11]).await;
    app.clock.advance(second);
    let b = team_thread(app, 2, &[11, 12]).await;
    app.clock.advance(second);
    let c = team_thread(app, 3, &[]).await;
    app.clock.advance(second);

    // Newest activity first: the openings, until messages arrive.
    assert_eq!(
        inbox_ids(app, &client, "").await,
        vec![(c, 0), (b, 0), (a, 0)]
    );
    assert_eq!(inbox_ids(app, &nurse, "").await, vec![(b, 0), (a, 0)]);
    let stranger = json_of(inbox(app, &token(99, "nurse"), "").await, 200).await;
    assert_eq!(stranger, json!({"threads": [], "nextCursor": null}));

    // The client writes in a: it moves up, unread for the nurse, not for the client.
    let canary = format!("inbox-canary-{}", now_secs());
    let first = app.post_text(&client, a, &canary).await;
    app.clock.advance(second);
    let second_id = app.post_text(&client, a, "the door code is 4321").await;
    app.clock.advance(second);
    assert_eq!(inbox_ids(app, &nurse, "").await, vec![(a, 2), (b, 0)]);
    assert_eq!(
        inbox_ids(app, &client, "").await,
        vec![(a, 0), (c, 0), (b, 0)]
    );
    let page = inbox(app, &nurse, "").await;
    assert_eq!(page.headers()["cache-control"], "no-store");
    let page = json_of(page, 200).await;
    let entry = &page["threads"][0];
    assert_eq!(entry["last_message_id"], second_id);
    assert_eq!(entry["staff_ids"], json!([11]));
    assert_eq!(
        (entry["client_id"].as_i64(), entry["request_id"].as_i64()),
        (Some(7), Some(1))
    );
    assert_eq!(entry["status"], "open");
    assert!(!page.to_string().contains(&canary), "never content");

    // Read markers: up to the first message, then never back.
    let marked = json_of(mark_read(app, &nurse, a, json!({"upTo": first})).await, 200).await;
    assert_eq!(marked, json!({"upTo": first}));
    assert_eq!(inbox_ids(app, &nurse, "").await[0], (a, 1));
    let back = json_of(mark_read(app, &nurse, a, json!({"upTo": 1})).await, 200).await;
    assert_eq!(back, json!({"upTo": first}), "a marker never moves back");
    // Past the newest message it stops at the newest.
    let far = json_of(
        mark_read(app, &nurse, a, json!({"upTo": second_id + 1_000_000})).await,
        200,
    )
    .await;
    assert_eq!(far, json!({"upTo": second_id}));
    assert_eq!(inbox_ids(app, &nurse, "").await[0], (a, 0));
    let listed = json_of(app.list(&client, a, "").await, 200).await;
    assert_eq!(listed["reads"], json!({"11": second_id}));

    // Pages by cursor, each thread once.
    let mut walked = Vec::new();
    let mut query = "?limit=1".to_owned();
    loop {
        let page = json_of(inbox(app, &client, &query).await, 200).await;
        let threads = page["threads"].as_array().unwrap();
        assert!(threads.len() <= 1);
        walked.extend(threads.iter().map(|t| t["threadId"].as_i64().unwrap()));
        match page["nextCursor"].as_str() {
            Some(cursor) => query = format!("?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked, vec![a, c, b]);

    // Status, and an admin's scope=all.
    json_of(app.close(&client, c).await, 200).await;
    assert_eq!(
        inbox_ids(app, &client, "").await,
        vec![(a, 0), (b, 0)],
        "open by default"
    );
    assert_eq!(
        inbox_ids(app, &client, "?status=closed").await,
        vec![(c, 0)]
    );
    assert_eq!(inbox_ids(app, &client, "?status=all").await.len(), 3);
    assert!(
        inbox_ids(app, &admin(), "").await.is_empty(),
        "the admin is on none"
    );
    let everyone = inbox_ids(app, &admin(), "?scope=all&status=all").await;
    assert_eq!(everyone.len(), 3);
    assert_eq!(everyone[0], (a, 2), "the admin has read nothing");
    assert_error(inbox(app, &nurse, "?scope=all").await, 403, "forbidden").await;

    // Bad values name their field.
    for (query, field) in [
        ("?status=pending", "status"),
        ("?limit=0", "limit"),
        ("?limit=51", "limit"),
        ("?limit=ten", "limit"),
        ("?cursor=abc", "cursor"),
        ("?cursor=12.", "cursor"),
        ("?scope=everything", "scope"),
    ] {
        assert_invalid(inbox(app, &client, query).await, field).await;
    }
    assert_eq!(inbox(app, "forged", "").await.status(), 401);
}

#[tokio::test]
async fn read_markers_are_announced_and_bad_values_refused() {
    let app = TestApp::spawn().await;
    let nurse = token(11, "nurse");
    let thread = team_thread(&app, 1, &[11]).await;
    let id = app.post_text(&token(7, "client"), thread, "hello").await;

    let (mut socket, socket_id) = crate::realtime::Socket::established(&app.base).await;
    let grant =
        crate::realtime::signed(&app, &token(7, "client"), &socket_id, &channel(thread)).await;
    let joined = socket.subscribe(&channel(thread), &grant).await;
    assert_eq!(joined["event"], "pusher_internal:subscription_succeeded");
    json_of(
        mark_read(&app, &nurse, thread, json!({"upTo": id})).await,
        200,
    )
    .await;
    let event = socket.next().await.unwrap();
    assert_eq!(event["event"], "App\\Events\\MessagesRead");
    assert_eq!(
        event["data"],
        json!({"thread_id": thread, "user_id": 11, "up_to": id})
    );

    for body in [
        json!({}),
        json!({"upTo": "x"}),
        json!({"upTo": 0}),
        json!({"upTo": -5}),
        json!({"upTo": 1.5}),
    ] {
        assert_invalid(mark_read(&app, &nurse, thread, body).await, "upTo").await;
    }
    let stranger = mark_read(&app, &token(8, "client"), thread, json!({"upTo": id})).await;
    assert_error(stranger, 403, "forbidden").await;
    let unknown = mark_read(&app, &nurse, 999_999, json!({"upTo": id})).await;
    assert_error(unknown, 404, "not_found").await;
    // Closed threads still take read markers.
    json_of(app.close(&token(7, "client"), thread).await, 200).await;
    let closed = json_of(
        mark_read(&app, &token(7, "client"), thread, json!({"upTo": id})).await,
        200,
    )
    .await;
    assert_eq!(closed, json!({"upTo": id}));
}
