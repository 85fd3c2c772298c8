//! The audit trail (HIPAA audit controls): every open, list, post, close, upload URL,
//! subscription and purge, with who, which thread, when and the outcome, appended to a
//! table that refuses changes, and never any content.

use crate::helpers::*;
use chat_testkit::{TestDatabase, TestPostgres};
use serde_json::json;
use std::time::{Duration, Instant};

fn rows(db: &TestDatabase<'_>, sql: &str) -> Vec<String> {
    let out = db.psql(sql).unwrap();
    out.lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn every_action_is_appended_with_its_outcome_and_no_content() {
    let db = database();
    let vars = postgres_vars(&db);
    let server = ServerProcess::start(&borrowed(&vars));
    let api = server.api();
    let client = token(7, "client");
    let stranger = token(8, "client");
    let canary = format!("AUDIT-CANARY-{}", now_secs());
    let started = chrono::Utc::now();

    let thread = open_thread_over_http(&api.client, &api.base, 5).await;
    let message = api.post_text(&client, thread, &canary).await;
    for (who, status) in [(&client, 200), (&stranger, 403)] {
        assert_eq!(api.list(who, thread, "").await.status(), status);
    }
    let upload = api.upload_url(&client, thread, "image/png").await;
    assert_eq!(upload.status(), 200);
    let channel = format!("private-chat.{thread}");
    for (who, status) in [(&client, 200), (&stranger, 403)] {
        let auth = api.authorize(who, "123.456", &channel).await;
        assert_eq!(auth.status(), status);
    }
    assert_eq!(api.close(&client, thread).await.status(), 200);
    let refused = api
        .post(&client, thread, json!({"type": "text", "text": "late"}))
        .await;
    assert_eq!(refused.status(), 403);

    // Events reach the table in the background; the purge comes from the job worker.
    let query = "SELECT action, outcome, coalesce(actor_id::text, '-'), coalesce(role, '-'), \
                 coalesce(thread_id::text, '-'), coalesce(request_id::text, '-'), \
                 coalesce(message_id::text, '-') FROM chat_audit_events ORDER BY id";
    let deadline = Instant::now() + Duration::from_secs(15);
    let trail = loop {
        let trail = rows(&db, query);
        if trail.iter().any(|r| r.starts_with("purge|")) {
            break trail;
        }
        assert!(Instant::now() < deadline, "no purge audited: {trail:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let t = thread.to_string();
    let m = message.to_string();
    let expected: Vec<String> = [
        ["register_request", "ok", "1", "admin", "-", "5", "-"],
        ["open", "ok", "7", "client", &t, "5", "-"],
        ["post", "ok", "7", "client", &t, "-", &m],
        ["list", "ok", "7", "client", &t, "-", "-"],
        ["list", "denied", "8", "client", &t, "-", "-"],
        ["upload_url", "ok", "7", "client", &t, "-", "-"],
        ["subscribe", "ok", "7", "client", &t, "-", "-"],
        ["subscribe", "denied", "8", "client", &t, "-", "-"],
        ["close", "ok", "7", "client", &t, "-", "-"],
        ["post", "closed", "7", "client", &t, "-", "-"],
        ["purge", "ok", "-", "-", &t, "-", "-"],
    ]
    .iter()
    .map(|r| r.join("|"))
    .collect();
    assert_eq!(trail, expected);
    let stamped = rows(
        &db,
        &format!(
            "SELECT count(*) FROM chat_audit_events WHERE at >= '{}'::timestamptz - interval '1 second' AND at <= now()",
            started.to_rfc3339()
        ),
    );
    assert_eq!(
        stamped,
        vec![expected.len().to_string()],
        "every event has its time"
    );

    // Append-only: no change nor removal, even by the service's own role.
    for change in [
        "UPDATE chat_audit_events SET outcome = 'ok' WHERE outcome = 'denied'",
        "DELETE FROM chat_audit_events",
        "TRUNCATE chat_audit_events",
    ] {
        let error = db.psql(change).unwrap_err().to_string();
        assert!(error.contains("append-only"), "{change}: {error}");
    }
    assert_eq!(
        rows(&db, "SELECT count(*) FROM chat_audit_events"),
        vec![expected.len().to_string()]
    );

    let dump = db.dump().unwrap();
    assert!(!contains(&dump, canary.as_bytes()));
    let log = server.stop();
    assert!(!log.contains(&canary));
}

#[tokio::test]
async fn events_recorded_while_the_database_is_down_are_written_when_it_is_back() {
    let pg = TestPostgres::start().unwrap();
    let db = pg.database().unwrap();
    let vars = postgres_vars(&db);
    let app = TestApp::spawn_with(&borrowed(&vars)).await;
    let thread = open_thread_over_http(&app.client, &app.base, 5).await;

    pg.stop().unwrap();
    let refused = app.list(&token(7, "client"), thread, "").await;
    assert_eq!(refused.status(), 503);
    pg.start_again().unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let trail = rows(
            &db,
            "SELECT action || ':' || outcome FROM chat_audit_events ORDER BY id",
        );
        if trail.last().is_some_and(|last| last == "list:failed") {
            assert_eq!(trail, ["register_request:ok", "open:ok", "list:failed"]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failed list never reached the table: {trail:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A batch whose insert committed after its deadline (the answer lost) is sent again
/// by the writer; each event is still stored once.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_sent_again_after_a_lost_answer_stores_each_event_once() {
    let db = database();
    let vars = postgres_vars(&db); // CHAT_STORE_TIMEOUT_MS=2000
    let app = TestApp::spawn_with(&borrowed(&vars)).await;
    let thread = app.thread_for(5, 7).await;
    // The next insert into the trail takes 3 s, past the writer's deadline, once: the
    // retry waits for it to commit and then finds its rows there.
    db.psql(
        "CREATE TABLE audit_stall (armed boolean); INSERT INTO audit_stall VALUES (true);
         CREATE FUNCTION audit_stall() RETURNS trigger LANGUAGE plpgsql AS $$
         DECLARE n integer;
         BEGIN
             UPDATE audit_stall SET armed = false WHERE armed;
             GET DIAGNOSTICS n = ROW_COUNT;
             IF n > 0 THEN PERFORM pg_sleep(3); END IF;
             RETURN NULL;
         END $$;
         CREATE TRIGGER audit_stall BEFORE INSERT ON chat_audit_events
             FOR EACH STATEMENT EXECUTE FUNCTION audit_stall();",
    )
    .unwrap();
    let client = token(7, "client");
    for i in 0..3 {
        app.post_text(&client, thread, &format!("m{i}")).await;
    }
    let posts = format!(
        "SELECT count(*) FROM chat_audit_events WHERE action = 'post' AND thread_id = {thread}"
    );
    let audited = || async { (rows(&db, &posts) == ["3"]).then_some(()) };
    eventually(Duration::from_secs(15), "the three posts audited", audited).await;
    assert_eq!(
        rows(&db, "SELECT armed FROM audit_stall"),
        ["f"],
        "the stall happened"
    );
    // Past the retry: still one row per event.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rows(&db, &posts), ["3"]);
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM chat_audit_events GROUP BY event_id HAVING count(*) > 1"
        ),
        Vec::<String>::new(),
        "no event stored twice"
    );
}
