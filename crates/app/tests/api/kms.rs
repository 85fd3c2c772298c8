//! Thread keys held by a key service (SPEC §4, issue 22): chat-server with
//! `CHAT_KMS_KEY_ID` against a real KMS-compatible server (moto), over PostgreSQL.

use crate::helpers::*;
use crate::lifecycle::support::chat_server;
use chat_testkit::{TestDatabase, TestKms};
use serde_json::json;
use std::time::Duration;

fn sql(db: &TestDatabase<'_>, query: &str) -> String {
    db.psql(query).unwrap().trim().to_owned()
}

/// No master key in the environment: KMS makes every thread key. Neither the content
/// nor the plaintext data key is in the database or the log; rotation to a new KMS
/// key, while an instance serves, keeps every message readable.
#[tokio::test(flavor = "multi_thread")]
async fn kms_wraps_every_thread_key_and_rotation_moves_them_to_a_new_key() {
    let db = database();
    let database = db.url();
    let kms = TestKms::start().unwrap();
    let (first, second) = (kms.create_key().unwrap(), kms.create_key().unwrap());
    let vars = |key: &str| {
        let mut vars = kms.aws_vars();
        vars.push(("CHAT_DATABASE_URL", database.clone()));
        vars.push(("CHAT_KMS_KEY_ID", key.to_owned()));
        vars
    };
    let server = ServerProcess::start(&borrowed(&vars(&first)));
    let api = server.api();
    let ready = json_of(api.get("/readyz").await, 200).await;
    assert_eq!(ready["checks"]["kms"], "ok", "{ready}");
    let client = token(7, "client");
    let thread = open_thread_over_http(&api.client, &api.base, 1).await;
    let canary = api.post_canaries(&client, thread, "kms").await;
    assert_eq!(
        sql(&db, "SELECT master_key_version FROM chat_thread_keys"),
        format!("kms:{first}")
    );
    let wrapped = sql(
        &db,
        "SELECT encode(wrapped_key, 'hex') FROM chat_thread_keys",
    );
    let data_key = kms.decrypt_thread_key(&wrapped, thread).unwrap();
    assert_eq!(data_key.len(), 64, "a 256-bit data key");
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&data_key[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let dump = db.dump().unwrap();
    let log = server.log();
    for (place, haystack) in [("pg_dump", dump.as_slice()), ("the log", log.as_bytes())] {
        assert!(
            !contains(haystack, canary.as_bytes()),
            "the canary in {place}"
        );
        assert!(
            !contains(haystack, data_key.as_bytes()),
            "the data key (hex) in {place}"
        );
        assert!(!contains(haystack, &bytes), "the data key in {place}");
    }

    // Rotation to the second key while the instance (configured with the first)
    // serves: it reads before, during and after.
    let (ok, out, err) = chat_server(&["rotate-master-key"], &borrowed(&vars(&second)));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("1 thread key(s) rewrapped"), "{out}");
    assert_eq!(
        sql(&db, "SELECT master_key_version FROM chat_thread_keys"),
        format!("kms:{second}")
    );
    let during = json_of(api.list(&client, thread, "").await, 200).await;
    assert_eq!(during["messages"][0]["text"], canary.as_str());
    server.stop();

    let after = ServerProcess::start(&borrowed(&vars(&second)));
    let listed = json_of(after.api().list(&client, thread, "").await, 200).await;
    assert_eq!(listed["messages"][0]["text"], canary.as_str());
    assert_eq!(listed["messages"][1]["lat"], 12.3456789);
    after.stop();
}

/// KMS stops answering: what needs a key not in memory is `503`, `/readyz` names
/// KMS, a post to a thread whose key is in memory does not wait for KMS; and once
/// KMS is back, everything works again without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_kms_is_503_for_new_keys_and_the_service_recovers() {
    let db = database();
    let database = db.url();
    let kms = TestKms::start().unwrap();
    let key = kms.create_key().unwrap();
    let mut owned = kms.aws_vars();
    owned.push(("CHAT_DATABASE_URL", database));
    owned.push(("CHAT_KMS_KEY_ID", key));
    owned.push(("CHAT_STORE_TIMEOUT_MS", "1000".into()));
    let app = TestApp::spawn_with(&borrowed(&owned)).await;
    let client = token(7, "client");
    let warm = app.thread_for(1, 7).await;
    app.post_text(&client, warm, "before").await;

    kms.pause().unwrap();
    let started = std::time::Instant::now();
    json_of(
        app.register(&admin(), 2, json!({"client_id": 7})).await,
        200,
    )
    .await;
    let body = assert_error(app.open(&client, 2).await, 503, "unavailable").await;
    assert!(!body.to_string().contains("KMS"), "no internals: {body}");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded");
    let not_ready = json_of(app.get("/readyz").await, 503).await;
    assert_ne!(not_ready["checks"]["kms"], "ok", "{not_ready}");
    // The warm thread's key is in memory: its posts go on.
    app.post_text(&client, warm, "during").await;

    kms.resume().unwrap();
    let opened = json_of(app.open(&client, 2).await, 200).await;
    let fresh = opened["threadId"].as_i64().unwrap();
    app.post_text(&client, fresh, "after").await;
    assert_eq!(
        json_of(app.get("/readyz").await, 200).await["checks"]["kms"],
        "ok"
    );
    assert_eq!(app.all_texts(&client, warm).await, ["before", "during"]);
}

#[test]
fn a_master_key_and_kms_together_are_refused() {
    let config = chat_server::Config::from_vars([
        ("CHAT_KMS_KEY_ID".to_owned(), "alias/chat".to_owned()),
        ("CHAT_MASTER_KEY".to_owned(), MASTER_KEY.to_owned()),
    ]);
    let refused = config.unwrap().check_can_serve().unwrap_err();
    assert_eq!(refused.variable, "CHAT_KMS_KEY_ID");
}

/// `CHAT_KMS_CACHE_SECS` bounds how long any copy of an unwrapped key stays in the
/// instance's memory, the service's own cache included: past it, KMS is needed again.
#[tokio::test(flavor = "multi_thread")]
async fn no_unwrapped_key_outlives_the_kms_cache_time() {
    let db = database();
    let database = db.url();
    let kms = TestKms::start().unwrap();
    let mut owned = kms.aws_vars();
    owned.push(("CHAT_DATABASE_URL", database));
    owned.push(("CHAT_KMS_KEY_ID", kms.create_key().unwrap()));
    owned.push(("CHAT_KMS_CACHE_SECS", "1".into()));
    owned.push(("CHAT_STORE_TIMEOUT_MS", "1000".into()));
    let app = TestApp::spawn_with(&borrowed(&owned)).await;
    let client = token(7, "client");
    let thread = app.thread_for(1, 7).await;
    app.post_text(&client, thread, "warm").await;

    kms.pause().unwrap();
    // The KMS ring's cache runs on the real clock; the service's on the test's.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    app.clock.advance(Duration::from_secs(2));
    let post = app
        .post(&client, thread, json!({"type": "text", "text": "cold"}))
        .await;
    assert_error(post, 503, "unavailable").await;
    kms.resume().unwrap();
    app.post_text(&client, thread, "again").await;
    assert_eq!(app.all_texts(&client, thread).await, ["warm", "again"]);
}
