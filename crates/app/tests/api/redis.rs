//! The API on the Redis message store and event bus (issue 4), against a real
//! `redis-server` per test.

use crate::helpers::*;
use chat_testkit::TestRedis;
use serde_json::json;
use std::time::Duration;

async fn spawn(redis: &TestRedis, extra: &[(&str, &str)]) -> TestApp {
    let url = redis.url();
    let mut vars = vec![
        ("CHAT_REDIS_URL", url.as_str()),
        ("CHAT_MESSAGE_STORE", "redis"),
        ("CHAT_STORE_TIMEOUT_MS", "1000"),
    ];
    vars.extend_from_slice(extra);
    TestApp::spawn_with(&vars).await
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_round_trip_and_close_redacts_them_in_redis() {
    let redis = TestRedis::start().unwrap();
    let app = spawn(&redis, &[]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    app.post_text(&t, thread, "hello").await;
    json_of(
        app.post(
            &t,
            thread,
            json!({"type": "location", "lat": 1.5, "lng": 2.5}),
        )
        .await,
        200,
    )
    .await;
    let listed = app.all_messages(&t, thread).await;
    assert_eq!(listed[0]["text"], "hello");
    assert_eq!(listed[1]["lat"], 1.5);
    let zcard = redis
        .command(&["ZCARD", &format!("chat:{{{thread}}}:ids")])
        .unwrap();
    assert_eq!(zcard, ":2", "stored in Redis, not in memory");

    json_of(app.close(&admin(), thread).await, 200).await;
    let mut redacted = false;
    for _ in 0..50 {
        let listed = app.all_messages(&admin(), thread).await;
        if listed.len() == 2 && listed.iter().all(|m| m["redacted"] == true) {
            redacted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(redacted, "the purge job redacted both messages");
    // Only headers remain: id, sender, kind, time (26 bytes) and a cleared flag.
    let values = redis
        .cli(&["HVALS", &format!("chat:{{{thread}}}:msg")])
        .unwrap();
    assert!(values.len() <= 2 * 28, "{} bytes left", values.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn cap_and_ttl_are_enforced_in_redis() {
    let redis = TestRedis::start().unwrap();
    let app = spawn(&redis, &[("CHAT_MESSAGE_TTL_SECS", "60")]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    for i in 0..150 {
        app.post_text(&t, thread, &format!("m{i}")).await;
    }
    let ids_key = format!("chat:{{{thread}}}:ids");
    assert_eq!(redis.command(&["ZCARD", &ids_key]).unwrap(), ":100");
    let listed = app.all_messages(&t, thread).await;
    assert_eq!(listed.len(), 100);
    assert_eq!(listed[0]["text"], "m50");
    let ttl: i64 = redis.command(&["PTTL", &ids_key]).unwrap()[1..]
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "keys expire with the TTL: {ttl}");

    app.clock.advance(Duration::from_secs(61));
    assert!(
        app.all_messages(&t, thread).await.is_empty(),
        "never returned"
    );
    app.post_text(&t, thread, "fresh").await;
    assert_eq!(
        redis.command(&["ZCARD", &ids_key]).unwrap(),
        ":1",
        "expired messages deleted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_is_in_no_redis_value() {
    let redis = TestRedis::start().unwrap();
    let app = spawn(&redis, &[]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    let canary = app.post_canaries(&t, thread, "redis").await;
    let hex: String = canary.bytes().map(|b| format!("{b:02x}")).collect();
    let held = everything_in(&redis);
    assert!(held.len() > 100, "the scan read the stored messages");
    let [lat, lng] = CANARY_COORDINATES;
    for needle in [canary.as_str(), &hex, lat, lng] {
        assert!(
            !contains(&held, needle.as_bytes()),
            "{needle} found in Redis"
        );
    }
    // The scan would have seen it: a plaintext value put there by hand is found.
    redis.cli(&["HSET", "control", "v", &canary]).unwrap();
    assert!(contains(&everything_in(&redis), canary.as_bytes()));
    assert_eq!(
        json_of(app.list(&t, thread, "").await, 200).await["messages"][0]["text"],
        canary.as_str()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_redis_is_503_and_the_service_recovers() {
    let redis = TestRedis::start().unwrap();
    let app = spawn(&redis, &[]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    app.post_text(&t, thread, "before").await;

    redis.kill().unwrap();
    let started = std::time::Instant::now();
    let r = app
        .post(&t, thread, json!({"type": "text", "text": "during"}))
        .await;
    let body = assert_error(r, 503, "unavailable").await;
    assert!(!body.to_string().contains("redis"), "no internals: {body}");
    assert_error(app.list(&t, thread, "").await, 503, "unavailable").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded, not hung"
    );

    // Redis comes back empty (no persistence here): the ephemeral store starts over and
    // the service serves again without a restart.
    redis.start_again().unwrap();
    assert!(
        app.recovers(&t, thread).await,
        "the service recovers without a restart"
    );
    app.post_text(&t, thread, "after").await;
    assert_eq!(app.all_texts(&t, thread).await, ["after"]);
}
