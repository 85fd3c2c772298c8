//! The API on the PostgreSQL store (issue 3), against a real PostgreSQL per test.

use crate::helpers::*;
use chat_testkit::{TestDatabase, TestPostgres};
use serde_json::json;
use std::time::Duration;

async fn spawn(db: &TestDatabase<'_>, extra: &[(&str, &str)]) -> TestApp {
    let vars = postgres_vars(db);
    let mut all = borrowed(&vars);
    all.extend_from_slice(extra);
    TestApp::spawn_with(&all).await
}

fn count(db: &TestDatabase<'_>, sql: &str) -> i64 {
    db.psql(sql).unwrap().trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_opens_give_one_thread() {
    let db = database();
    let app = spawn(&db, &[]).await;
    json_of(
        app.register(&admin(), 77, json!({"client_id": 7})).await,
        200,
    )
    .await;
    let ids = app.concurrent_opens(77, 50).await;
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM chat_threads"), 1);
    assert_eq!(
        count(&db, "SELECT count(*) FROM chat_thread_keys"),
        1,
        "one key per thread"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM chat_threads WHERE admin_id = 1"),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cap_and_ttl_are_enforced_in_the_database() {
    let db = database();
    let app = spawn(&db, &[("CHAT_MESSAGE_TTL_SECS", "60")]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    let mut ids = Vec::new();
    for i in 0..150 {
        ids.push(app.post_text(&t, thread, &format!("m{i}")).await);
    }
    assert_eq!(
        count(&db, "SELECT count(*) FROM chat_messages"),
        100,
        "rows, not only the API's view"
    );
    assert_eq!(count(&db, "SELECT min(id) FROM chat_messages"), ids[50]);
    let listed = app.all_messages(&t, thread).await;
    assert_eq!(listed.len(), 100);
    assert_eq!(listed[0]["text"], "m50");
    // A minute later the old rows are gone with the next post.
    app.clock.advance(Duration::from_secs(61));
    assert!(
        app.all_messages(&t, thread).await.is_empty(),
        "expired rows are never returned"
    );
    app.post_text(&t, thread, "fresh").await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM chat_messages"),
        1,
        "expired rows deleted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pagination_over_1000_messages_matches_the_memory_store() {
    let db = database();
    let unlimited = [("CHAT_MAX_MESSAGES_PER_THREAD", "0")];
    let on_pg = spawn(&db, &unlimited).await;
    let in_memory = TestApp::spawn_with(&unlimited).await;
    let t = token(7, "client");
    let threads = [
        on_pg.thread_for(1, 7).await,
        in_memory.thread_for(1, 7).await,
    ];
    for i in 0..1000 {
        on_pg.post_text(&t, threads[0], &format!("m{i}")).await;
        in_memory.post_text(&t, threads[1], &format!("m{i}")).await;
    }
    // Walk both with awkward page sizes; the pages must hold the same texts and cursors
    // must appear at the same places.
    for limit in [1, 7, 50] {
        let mut cursors = [None::<String>, None];
        let mut pages = 0;
        loop {
            let mut walked = Vec::new();
            for (i, app) in [&on_pg, &in_memory].into_iter().enumerate() {
                let query = match &cursors[i] {
                    Some(c) => format!("?limit={limit}&cursor={c}"),
                    None => format!("?limit={limit}"),
                };
                let page = json_of(app.list(&t, threads[i], &query).await, 200).await;
                let texts: Vec<String> = page["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["text"].as_str().unwrap().to_owned())
                    .collect();
                cursors[i] = page["nextCursor"].as_str().map(str::to_owned);
                walked.push(texts);
            }
            assert_eq!(walked[0], walked[1], "limit {limit}, page {pages}");
            assert_eq!(cursors[0].is_some(), cursors[1].is_some());
            pages += 1;
            if cursors[0].is_none() {
                break;
            }
            if limit == 1 && pages >= 60 {
                break; // enough single-message pages
            }
        }
        if limit != 1 {
            assert_eq!(pages, 1000usize.div_ceil(limit), "limit {limit}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_is_nowhere_in_a_pg_dump() {
    let db = database();
    let app = spawn(&db, &[]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    let canary = app.post_canaries(&t, thread, "pg").await;
    let dump = db.dump().unwrap();
    let dump = String::from_utf8_lossy(&dump);
    assert!(
        dump.contains("INSERT INTO public.chat_messages"),
        "the dump holds the messages"
    );
    assert!(!dump.contains(&canary));
    assert!(!CANARY_COORDINATES.iter().any(|c| dump.contains(c)));
    // Not even hex-encoded (bytea) or base64.
    let hex: String = canary.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!dump.contains(&hex));
    assert_eq!(
        json_of(app.list(&t, thread, "").await, 200).await["messages"][0]["text"],
        canary.as_str()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_database_is_503_and_the_service_recovers() {
    let pg = TestPostgres::start().unwrap();
    let db = pg.database().unwrap();
    let app = spawn(&db, &[]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    app.post_text(&t, thread, "before").await;

    pg.stop().unwrap();
    let started = std::time::Instant::now();
    // Twenty posts to the thread at once: each is a 503, none waits for the others'.
    let during = (0..20).map(|_| app.post(&t, thread, json!({"type": "text", "text": "during"})));
    for r in futures::future::join_all(during).await {
        assert_error(r, 503, "unavailable").await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded, not hung"
    );
    assert_error(app.list(&t, thread, "").await, 503, "unavailable").await;
    assert_error(app.open(&admin(), 1).await, 503, "unavailable").await;

    pg.start_again().unwrap();
    assert!(
        app.recovers(&t, thread).await,
        "the service recovers without a restart"
    );
    app.post_text(&t, thread, "after").await;
    let texts = app.all_texts(&t, thread).await;
    assert_eq!(texts, ["before", "after"], "nothing half-written");
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_messages_survive_a_restart_of_chat_server() {
    let db = database();
    let vars = postgres_vars(&db);
    let server = ServerProcess::start(&borrowed(&vars));
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let put = client
        .put(format!("{base}/api/requests/3"))
        .bearer_auth(admin())
        .json(&json!({"client_id": 7}));
    assert_eq!(put.send().await.unwrap().status(), 200);
    let opened: serde_json::Value = client
        .post(format!("{base}/api/requests/3/chat/open"))
        .bearer_auth(token(7, "client"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let thread = opened["threadId"].as_i64().unwrap();
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let r = client
            .post(format!("{base}/api/chat/threads/{thread}/messages"))
            .bearer_auth(token(7, "client"))
            .json(&json!({"type": "text", "text": format!("kept {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        acknowledged.push(format!("kept {i}"));
    }
    server.stop();

    let again = ServerProcess::start(&borrowed(&vars));
    let listed: serde_json::Value = client
        .get(format!(
            "{}/api/chat/threads/{thread}/messages?limit=50",
            again.base
        ))
        .bearer_auth(token(7, "client"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let texts: Vec<&str> = listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, acknowledged, "every acknowledged message, decrypted");
    again.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn close_purges_through_the_durable_job_queue() {
    let db = database();
    let app = spawn(&db, &[]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    for i in 0..5 {
        app.post_text(&t, thread, &format!("secret {i}")).await;
    }
    assert_eq!(count(&db, "SELECT count(*) FROM chat_thread_keys"), 1);
    json_of(app.close(&t, thread).await, 200).await;
    // The worker polls once a second; wait for the job to leave the table, bounded.
    let mut left = -1;
    for _ in 0..50 {
        left = count(&db, "SELECT count(*) FROM chat_jobs");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(left, 0, "the purge job ran and completed");
    assert_eq!(
        count(&db, "SELECT count(*) FROM chat_thread_keys"),
        0,
        "key destroyed"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM chat_messages WHERE ciphertext IS NOT NULL OR nonce IS NOT NULL"
        ),
        0
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM chat_messages"),
        5,
        "metadata kept"
    );
    let page = json_of(app.list(&t, thread, "").await, 200).await;
    assert!(page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["redacted"] == true && m["text"].is_null()));
}

/// Two instances draw message ids from their own clocks, and the database keeps a
/// thread's ids in order. 200 concurrent posts to one thread, half through each: every
/// one is acknowledged and listed once, under its acknowledged id, in increasing order.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_posts_through_two_instances_are_listed_in_id_order() {
    let db = database();
    let vars = postgres_vars(&db);
    let mut all = borrowed(&vars);
    all.push(("CHAT_MAX_MESSAGES_PER_THREAD", "0"));
    let instances = [
        TestApp::spawn_with(&all).await,
        TestApp::spawn_with(&all).await,
    ];
    let thread = instances[0].thread_for(1, 7).await;
    let t = token(7, "client");
    let acknowledged = concurrent_posts(&instances, &t, thread, 200).await;
    let listed = instances[1].ids_and_texts(&t, thread).await;
    assert!(listed.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
    assert_eq!(listed, acknowledged);
}

/// A post whose append waits past the deadline on a table lock is answered 503 and
/// never commits later; its retry with the same key is stored once (SPEC §3.4).
#[tokio::test(flavor = "multi_thread")]
async fn a_post_past_the_deadline_never_commits_and_its_keyed_retry_is_stored_once() {
    let db = database();
    let app = spawn(&db, &[]).await; // CHAT_STORE_TIMEOUT_MS=2000
    let thread = app.thread_for(1, 7).await;
    let client = token(7, "client");
    let body = json!({"type": "text", "text": "the door code is 4711"});
    let locker = {
        let url = db.url();
        std::thread::spawn(move || {
            std::process::Command::new("psql")
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &url, "-c"])
                .arg("BEGIN; LOCK TABLE chat_messages IN EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;")
                .output()
                .unwrap()
        })
    };
    let held = "SELECT count(*) FROM pg_locks WHERE relation = 'chat_messages'::regclass \
                AND mode = 'ExclusiveLock' AND granted";
    let locked = || async { (count(&db, held) > 0).then_some(()) };
    eventually(Duration::from_secs(10), "the table lock held", locked).await;
    let started = std::time::Instant::now();
    let response = app
        .post_keyed(&client, thread, "retry-1", body.clone())
        .await;
    assert_error(response, 503, "unavailable").await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered at the deadline"
    );
    assert!(locker.join().unwrap().status.success());
    // The lock is gone: the statement that waited for it has run, and must have been
    // rolled back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&db, "SELECT count(*) FROM chat_messages"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM chat_post_keys"), 0);
    assert!(app.all_texts(&client, thread).await.is_empty());

    let stored = json_of(
        app.post_keyed(&client, thread, "retry-1", body.clone())
            .await,
        200,
    )
    .await;
    let again = json_of(app.post_keyed(&client, thread, "retry-1", body).await, 200).await;
    assert_eq!(stored["id"], again["id"]);
    assert_eq!(count(&db, "SELECT count(*) FROM chat_messages"), 1);
    assert_eq!(
        app.all_texts(&client, thread).await,
        ["the door code is 4711"]
    );
}
