//! The thread lifecycle (issue 7): purge jobs and their retries, a restart in the middle
//! of one, the sweep, crypto-shredding and master key rotation, against the real
//! PostgreSQL, Redis and S3-compatible servers of the harness.

pub(crate) mod support;

use crate::helpers::*;
use chat_core::ports::Clock;
use chat_core::{JobOutcome, ThreadId};
use chat_server::{build_service, Config, Overrides};
use chat_testkit::{TestRedis, TestS3};
use serde_json::json;
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_purge_retries_on_schedule_and_succeeds_on_the_fourth_attempt() {
    let db = database();
    let media = tempfile::tempdir().unwrap();
    let (service, ports, clock) = service_over(&db, media.path(), 3).await;
    let thread = closed_thread_with_media(&service, media.path()).await;

    // Attempts 1, 2 and 3 fail; each retry is due exactly its delay later, not before.
    for (attempt, delay) in [(1, 5), (2, 30), (3, 60)] {
        let Some(JobOutcome::Retrying { attempt: a, at, .. }) =
            service.run_next_job().await.unwrap()
        else {
            panic!("attempt {attempt} should fail and be retried");
        };
        assert_eq!(a, attempt);
        assert_eq!(at, clock.now() + chrono::Duration::seconds(delay));
        clock.advance(Duration::from_secs(delay as u64) - Duration::from_millis(1));
        assert_eq!(service.run_next_job().await.unwrap(), None, "not yet due");
        clock.advance(Duration::from_millis(1));
    }
    assert_eq!(objects_of(media.path(), thread), 1, "still there");

    let Some(JobOutcome::Done {
        attempt, report, ..
    }) = service.run_next_job().await.unwrap()
    else {
        panic!("the fourth attempt succeeds");
    };
    assert_eq!(attempt, 4);
    assert_eq!(report.media_deleted, 1);
    assert!(report.key_destroyed);
    assert_eq!(objects_of(media.path(), thread), 0, "purged");
    assert_eq!(sql(&db, "SELECT count(*) FROM chat_jobs"), "0");
    assert_eq!(ports.jobs.failed_count().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn five_failures_keep_the_job_as_failed_and_the_sweep_purges_later() {
    let db = database();
    let media = tempfile::tempdir().unwrap();
    let (service, ports, clock) = service_over(&db, media.path(), 5).await;
    let thread = closed_thread_with_media(&service, media.path()).await;

    for (attempt, delay) in [(1, 5), (2, 30), (3, 60), (4, 120)] {
        match service.run_next_job().await.unwrap() {
            Some(JobOutcome::Retrying { attempt: a, .. }) => assert_eq!(a, attempt),
            other => panic!("attempt {attempt}: {other:?}"),
        }
        clock.advance(Duration::from_secs(delay));
    }
    match service.run_next_job().await.unwrap() {
        Some(JobOutcome::Failed { attempt, error, .. }) => {
            assert_eq!(attempt, 5);
            assert!(error.contains("test outage"), "{error}");
        }
        other => panic!("the fifth failure is final: {other:?}"),
    }
    // Kept, visible with its last error, counted, and never run again.
    assert_eq!(ports.jobs.failed_count().await.unwrap(), 1);
    let kept = sql(
        &db,
        "SELECT attempts, failed_at IS NOT NULL, last_error FROM chat_jobs",
    );
    assert!(
        kept.starts_with("5|t|") && kept.contains("test outage"),
        "{kept}"
    );
    clock.advance(Duration::from_secs(3600));
    assert_eq!(service.run_next_job().await.unwrap(), None);
    assert_eq!(objects_of(media.path(), thread), 1, "left behind");

    // The sweep (the store works again) picks the media up.
    let report = service.sweep().await.unwrap();
    assert_eq!(report.closed_threads, 1);
    assert_eq!(report.media_deleted, 1);
    assert!(report.keys_destroyed == 1 && report.messages_redacted == 1);
    assert_eq!(objects_of(media.path(), thread), 0);
    let again = service.sweep().await.unwrap();
    assert_eq!(
        (again.media_deleted, again.keys_destroyed),
        (0, 0),
        "converged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_runs_the_sweep_once_and_says_what_it_removed() {
    let db = database();
    let media = tempfile::tempdir().unwrap();
    let (service, ports, clock) = service_over(&db, media.path(), 100).await;
    let thread = closed_thread_with_media(&service, media.path()).await;
    for delay in [5, 30, 60, 120, 0] {
        service.run_next_job().await.unwrap();
        clock.advance(Duration::from_secs(delay));
    }
    assert_eq!(ports.jobs.failed_count().await.unwrap(), 1);
    service.flush_audit().await;
    let purges =
        "SELECT string_agg(outcome, ',' ORDER BY id) FROM chat_audit_events WHERE action = 'purge'";
    assert_eq!(sql(&db, purges), "failed,failed,failed,failed,failed");

    let vars = [
        ("CHAT_DATABASE_URL", db.url()),
        ("CHAT_MASTER_KEY", MASTER_KEY.to_owned()),
        (
            "CHAT_OBJECT_STORE_URL",
            format!("file://{}", media.path().display()),
        ),
    ];
    let (ok, out, err) = chat_server(&["cleanup"], &borrowed(&vars));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("closed threads checked:      1"), "{out}");
    assert!(out.contains("media objects deleted:     1"), "{out}");
    assert!(out.contains("thread keys destroyed:     1"), "{out}");
    assert_eq!(objects_of(media.path(), thread), 0);
    // The purge is in the audit table before the command exits.
    assert_eq!(sql(&db, purges), "failed,failed,failed,failed,failed,ok");
    let (ok, out, _) = chat_server(&["cleanup"], &borrowed(&vars));
    assert!(ok && out.contains("media objects deleted:     0"), "{out}");
    // A purge that removed nothing (the thread was purged already) is not an event.
    assert_eq!(sql(&db, purges), "failed,failed,failed,failed,failed,ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purge_interrupted_by_a_restart_resumes_and_completes() {
    let db = database();
    let s3 = TestS3::start().unwrap();
    let mut vars = postgres_vars(&db);
    vars.extend(s3.client_vars());
    vars.push(("CHAT_OBJECT_STORE_URL", s3.url()));
    vars.push(("CHAT_JOB_LEASE_SECS", "3".into()));
    let server = ServerProcess::start(&borrowed(&vars));
    let api = server.api();
    let thread = open_thread_over_http(&api.client, &api.base, 4).await;
    let (path, _) = upload_png(&api.client, &api.base, thread, b"").await;
    let prefix = s3.bucket_dir().join(format!("chats/{thread}"));
    // The upload, and checked/ with the copy its message serves.
    assert_eq!(std::fs::read_dir(&prefix).unwrap().count(), 2);
    assert!(!path.is_empty());

    // The object store hangs: the purge job is claimed and stuck in its first attempt
    // when the server dies.
    s3.pause().unwrap();
    assert_eq!(api.close(&admin(), thread).await.status(), 200);
    let mut claimed = String::new();
    for _ in 0..100 {
        claimed = sql(
            &db,
            "SELECT attempts, leased_until IS NOT NULL FROM chat_jobs WHERE run_at <= now()",
        );
        if claimed == "1|t" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(claimed, "1|t", "the job was running");
    server.stop();
    s3.resume().unwrap();

    // Another run of the server takes the job over once its lease is out.
    let server = ServerProcess::start(&borrowed(&vars));
    let mut left = String::new();
    for _ in 0..150 {
        left = sql(&db, "SELECT count(*) FROM chat_jobs WHERE run_at <= now()");
        if left == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = server.stop();
    assert_eq!(left, "0", "the job completed:\n{log}");
    assert!(log.contains("job finished"), "{log}");
    assert!(log.contains("attempt=2"), "resumed as attempt 2:\n{log}");
    assert_eq!(files_in(&prefix), 0, "purged");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_close_and_purge_a_canary_is_nowhere_and_its_ciphertext_is_dead() {
    let db = database();
    let redis = TestRedis::start().unwrap();
    let s3 = TestS3::start().unwrap();
    let mut vars = postgres_vars(&db);
    vars.extend(s3.client_vars());
    vars.extend([
        ("CHAT_OBJECT_STORE_URL", s3.url()),
        ("CHAT_REDIS_URL", redis.url()),
        ("CHAT_MESSAGE_STORE", "redis".into()),
        ("RUST_LOG", "debug".into()),
    ]);
    let server = ServerProcess::start(&borrowed(&vars));
    let api = server.api();
    let client = token(7, "client");
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let canary = format!("CANARY-TEXT-{nanos}");
    let canary_image = format!("CANARY-IMAGE-{nanos}");

    let thread = open_thread_over_http(&api.client, &api.base, 1).await;
    let other = open_thread_over_http(&api.client, &api.base, 2).await;
    for (t, text) in [(thread, canary.as_str()), (other, "another thread")] {
        api.post_text(&client, t, text).await;
    }
    let location = json!({"type": "location", "lat": 12.3456789, "lng": 98.7654321});
    json_of(api.post(&client, thread, location).await, 200).await;
    upload_png(&api.client, &api.base, thread, canary_image.as_bytes()).await;
    // Sealed at rest from the start: the bucket holds the image and its thumbnail, and
    // no byte of what was uploaded in the clear.
    let bucket = s3.all_bytes().unwrap();
    assert!(bucket.len() > 100, "the image is stored");
    assert!(!contains(&bucket, canary_image.as_bytes()));

    // The same stores, seen from here: the thread's ciphertext as a backup would hold it.
    let mut inspect = vars.clone();
    inspect.push(("CHAT_JWT_SECRET", SECRET.into()));
    let config = Config::from_vars(inspect.into_iter().map(|(k, v)| (k.to_owned(), v))).unwrap();
    let media = chat_server::open_media(&config, config.bind).unwrap();
    let ports = build_service(&config, Overrides::default(), Some(media.store))
        .await
        .unwrap()
        .ports;
    let id = ThreadId::new(thread).unwrap();
    let captured = ports
        .messages
        .page(id, None, 100, None)
        .await
        .unwrap()
        .messages;
    assert_eq!(captured.len(), 3);
    let aad = |m: &chat_core::StoredMessage, thread: ThreadId| chat_core::crypto::MessageAad {
        thread,
        message: m.id,
        kind: m.kind,
    };
    let opens = |key: &dyn chat_core::crypto::ThreadKey, m: &chat_core::StoredMessage| {
        let sealed = m.content.as_ref().unwrap();
        key.open(&aad(m, m.thread_id), sealed).is_ok()
    };
    // The control: before the close, the service holds a key that opens it.
    let held = keys_the_service_holds(&ports).await;
    assert!(held
        .iter()
        .any(|(t, key)| *t == id && captured.iter().all(|m| opens(key.as_ref(), m))));

    assert_eq!(api.close(&admin(), thread).await.status(), 200);
    let mut left = String::new();
    for _ in 0..100 {
        left = sql(&db, "SELECT count(*) FROM chat_jobs WHERE run_at <= now()");
        if left == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, "0", "the purge ran");
    tokio::time::sleep(Duration::from_millis(300)).await; // its log line
    let log = server.stop();

    let needles: Vec<&[u8]> = vec![
        canary.as_bytes(),
        canary_image.as_bytes(),
        CANARY_COORDINATES[0].as_bytes(),
        CANARY_COORDINATES[1].as_bytes(),
    ];
    let places = [
        ("pg_dump", db.dump().unwrap()),
        ("Redis", everything_in(&redis)),
        ("the object store", s3.all_bytes().unwrap()),
        ("the log", log.into_bytes()),
    ];
    for (place, bytes) in &places {
        assert!(!bytes.is_empty(), "{place} was read");
        for needle in &needles {
            assert!(
                !contains(bytes, needle),
                "{} found in {place}",
                String::from_utf8_lossy(needle)
            );
        }
    }
    assert_eq!(
        files_in(&s3.bucket_dir().join(format!("chats/{thread}"))),
        0,
        "nothing under the thread's prefix"
    );

    // Crypto-shredding: the thread's key is gone, and no key the service still holds
    // opens the ciphertext captured before the close, under either thread's binding.
    assert_eq!(ports.keys.get(id).await.unwrap(), None);
    let held = keys_the_service_holds(&ports).await;
    assert!(!held.is_empty(), "the other thread's key is still held");
    for (owner, key) in &held {
        for m in &captured {
            let sealed = m.content.as_ref().unwrap();
            assert!(key.open(&aad(m, id), sealed).is_err());
            assert!(key.open(&aad(m, *owner), sealed).is_err());
        }
    }
    let stored = ports
        .messages
        .page(id, None, 100, None)
        .await
        .unwrap()
        .messages;
    assert_eq!(stored.len(), 3, "metadata kept");
    assert!(
        stored.iter().all(|m| m.content.is_none()),
        "ciphertext gone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_sweep_once_per_interval_between_them() {
    let db = database();
    let redis = TestRedis::start().unwrap();
    let on_postgres = postgres_vars(&db);
    let mut on_redis = postgres_vars(&db);
    on_redis.push(("CHAT_REDIS_URL", redis.url()));
    for (lock, mut vars) in [("PostgreSQL", on_postgres), ("Redis", on_redis)] {
        vars.push(("CHAT_SWEEP_INTERVAL_SECS", "2".into()));
        let a = ServerProcess::start(&borrowed(&vars));
        let b = ServerProcess::start(&borrowed(&vars));
        // 7 s with a 2 s interval: at most 4 sweeps (at 0, 2, 4, 6 s) between the two,
        // where each on its own would sweep 4 times.
        tokio::time::sleep(Duration::from_secs(7)).await;
        let (a, b) = (a.stop(), b.stop());
        let (ran_a, ran_b) = (sweeps_in(&a), sweeps_in(&b));
        assert!(
            (3..=5).contains(&(ran_a + ran_b)),
            "locks in {lock}: {ran_a} + {ran_b} sweeps\n{a}\n{b}"
        );
        assert!(
            a.contains("another instance has run it")
                || b.contains("another instance has run it")
                || ran_a.min(ran_b) == 0,
            "one instance deferred to the other ({lock})"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn after_rotation_messages_read_back_with_only_the_new_key() {
    const OLD: &str = "v1:q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng=";
    const NEW: &str = "v2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let db = database();
    let database = db.url();
    let with_ring = |ring: &str| {
        vec![
            ("CHAT_DATABASE_URL", database.clone()),
            ("CHAT_MASTER_KEYS", ring.to_owned()),
        ]
    };
    let server = ServerProcess::start(&borrowed(&with_ring(OLD)));
    let api = server.api();
    let client = token(7, "client");
    let mut threads = Vec::new();
    for request in 1..=3 {
        let thread = open_thread_over_http(&api.client, &api.base, request).await;
        let text = format!("before rotation {request}");
        api.post_text(&client, thread, &text).await;
        threads.push(thread);
    }
    server.stop();

    // The control: with only the new key and no rotation, nothing reads.
    let server = ServerProcess::start(&borrowed(&with_ring(NEW)));
    let listed = server.api().list(&client, threads[0], "").await;
    assert_ne!(listed.status(), 200);
    server.stop();

    let ring = format!("{NEW},{OLD}");
    let (ok, out, err) = chat_server(&["rotate-master-key"], &borrowed(&with_ring(&ring)));
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("3 thread key(s) rewrapped under master key v2"),
        "{out}"
    );
    assert_eq!(
        sql(
            &db,
            "SELECT DISTINCT master_key_version FROM chat_thread_keys"
        ),
        "v2"
    );
    let (ok, out, _) = chat_server(&["rotate-master-key"], &borrowed(&with_ring(&ring)));
    assert!(
        ok && out.contains("0 thread key(s) rewrapped"),
        "again: {out}"
    );

    let server = ServerProcess::start(&borrowed(&with_ring(NEW)));
    for (i, thread) in threads.iter().enumerate() {
        let page = json_of(server.api().list(&client, *thread, "").await, 200).await;
        assert_eq!(
            page["messages"][0]["text"],
            format!("before rotation {}", i + 1)
        );
    }
    server.stop();
}
