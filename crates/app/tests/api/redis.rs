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
        .command(&["ZCARD", &format!("chat:{{{thread}}}:messages")])
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
        .cli(&["ZRANGE", &format!("chat:{{{thread}}}:messages"), "0", "-1"])
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
    let ids_key = format!("chat:{{{thread}}}:messages");
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

/// The memory-only mode (SPEC §4, issue 30): with messages in Redis, each thread's key
/// lives beside them in Redis (wrapped, expiring), never in PostgreSQL: a database dump
/// after posts to many threads holds no key and no content.
#[tokio::test(flavor = "multi_thread")]
async fn memory_only_a_database_dump_holds_no_key_and_no_content() {
    let db = database();
    let redis = TestRedis::start().unwrap();
    let mut vars = postgres_vars(&db);
    vars.push(("CHAT_REDIS_URL", redis.url()));
    vars.push(("CHAT_MESSAGE_STORE", "redis".into()));
    let server = ServerProcess::start(&borrowed(&vars));
    let api = server.api();
    let t = token(7, "client");
    let mut canaries = Vec::new();
    for request in 1..=5 {
        let thread = open_thread_over_http(&api.client, &api.base, request).await;
        canaries.push(
            api.post_canaries(&t, thread, &format!("memonly-{request}"))
                .await,
        );
    }
    let keys = db.psql("SELECT count(*) FROM chat_thread_keys").unwrap();
    assert_eq!(keys.trim(), "0", "no key in PostgreSQL");
    let dump = db.dump().unwrap();
    assert!(dump.len() > 1000, "the dump was taken");
    for canary in &canaries {
        assert!(!contains(&dump, canary.as_bytes()), "{canary} in the dump");
    }
    // The keys are in Redis, one per thread, each expiring.
    let names =
        String::from_utf8(redis.cli(&["--scan", "--pattern", "chat:*:dek"]).unwrap()).unwrap();
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(names.len(), 5, "{names:?}");
    for name in names {
        let ttl: i64 = redis.command(&["PTTL", name]).unwrap()[1..]
            .parse()
            .unwrap();
        assert!(ttl > 0, "{name} expires");
    }
    drop(server.stop());
}

/// In the memory-only mode a thread's key survives a restart of the service (it is in
/// Redis, not in the process), and the keys a previous release left in PostgreSQL are
/// still read, then moved to Redis: an upgrade loses nothing.
#[tokio::test(flavor = "multi_thread")]
async fn memory_only_keys_survive_a_restart_and_old_keys_move_from_postgres() {
    let db = database();
    let redis = TestRedis::start().unwrap();
    let mut vars = postgres_vars(&db);
    vars.push(("CHAT_REDIS_URL", redis.url()));
    vars.push(("CHAT_MESSAGE_STORE", "redis".into()));
    let t = token(7, "client");
    let server = ServerProcess::start(&borrowed(&vars));
    let api = server.api();
    let kept = open_thread_over_http(&api.client, &api.base, 1).await;
    let moved = open_thread_over_http(&api.client, &api.base, 2).await;
    api.post_text(&t, kept, "before the restart").await;
    api.post_text(&t, moved, "written when keys were in PostgreSQL")
        .await;
    drop(server.stop());

    // As the previous release left it: the second thread's key in PostgreSQL only.
    let name = format!("chat:{{{moved}}}:dek");
    let raw = redis.cli(&["--no-raw", "GET", &name]).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let wrapped = unescape_redis(raw.trim().trim_matches('"'));
    let at = wrapped.iter().position(|b| *b == 0).unwrap();
    let version = String::from_utf8(wrapped[..at].to_vec()).unwrap();
    let key_hex: String = wrapped[at + 1..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    db.psql(&format!(
        "INSERT INTO chat_thread_keys (thread_id, master_key_version, wrapped_key, created_at) \
             VALUES ({moved}, '{version}', '\\x{key_hex}', now())"
    ))
    .unwrap();
    redis.command(&["DEL", &name]).unwrap();

    let server = ServerProcess::start(&borrowed(&vars));
    let api = server.api();
    assert_eq!(api.all_texts(&t, kept).await, ["before the restart"]);
    assert_eq!(
        api.all_texts(&t, moved).await,
        ["written when keys were in PostgreSQL"]
    );
    let left = db.psql("SELECT count(*) FROM chat_thread_keys").unwrap();
    assert_eq!(left.trim(), "0", "moved out of PostgreSQL");
    assert_eq!(
        redis.command(&["EXISTS", &name]).unwrap(),
        ":1",
        "moved to Redis"
    );
    drop(server.stop());
}

/// `redis-cli --no-raw` quoting (`\xNN`, `\\`, `\"`, `\n`…) back to bytes.
fn unescape_redis(quoted: &str) -> Vec<u8> {
    let bytes = quoted.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'x' => {
                    let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 4;
                    continue;
                }
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'a' => out.push(7),
                b'b' => out.push(8),
                other => out.push(other),
            }
            i += 2;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// In the memory-only mode, a Redis that persists to disk is named at start, with the
/// setting; one that does not is not.
#[tokio::test(flavor = "multi_thread")]
async fn memory_only_warns_when_redis_persists() {
    for (options, warned) in [(vec!["--appendonly", "yes"], true), (vec![], false)] {
        let redis = TestRedis::start_with(&options).unwrap();
        let url = redis.url();
        let server =
            ServerProcess::start(&[("CHAT_REDIS_URL", &url), ("CHAT_MESSAGE_STORE", "redis")]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let log = server.stop();
        assert_eq!(
            log.contains("CHAT_MESSAGE_STORE=redis keeps messages and thread keys only in Redis"),
            warned,
            "{options:?}:\n{log}"
        );
        if warned {
            assert!(log.contains("appendonly yes"), "{log}");
        }
    }
}
