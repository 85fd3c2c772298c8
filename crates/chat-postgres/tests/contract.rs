//! The Postgres adapters against the port contract suites, on a real PostgreSQL that
//! the test starts (chat-testkit).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on what it does not expect"
)]

use chat_contract as contract;
use chat_core::crypto::SealedContent;
use chat_core::ports::{Appended, MessageStore, RetentionCut};
use chat_core::{MessageId, MessageKind, StoredMessage, ThreadId, UserId};
use chat_postgres::{PgSettings, PgStore};
use chat_testkit::{TestDatabase, TestPgBouncer, TestPostgres};

/// Brings an empty database to the schema, with the adapter's own migrations; run
/// once per test process, on the template every test's database is cloned from.
fn migrate(url: &str) -> Result<(), String> {
    let url = url.to_owned();
    let migrated = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let store = PgStore::new(&url, PgSettings::default()).map_err(|e| e.to_string())?;
            store.migrate().await.map_err(|e| e.to_string())
        })
    });
    match migrated.join() {
        Ok(applied) => applied.map(drop),
        Err(_) => Err("the migration panicked".into()),
    }
}

/// A migrated database of its own on the shared server, and the store over it.
async fn store() -> (TestDatabase<'static>, PgStore) {
    let db = TestDatabase::migrated(migrate).expect("PostgreSQL starts");
    let store = PgStore::new(&db.url(), PgSettings::default()).unwrap();
    assert_eq!(
        store.migrate().await.unwrap(),
        0,
        "the template is migrated"
    );
    (db, store)
}

contract::suites! {
    with store() =>
        request_directory,
        thread_repository,
        care_team_and_inbox,
        thread_key_store,
        message_store,
        message_retraction_and_unread,
        job_queue,
        unread_checks,
        lease_lock,
}

/// Behind PgBouncer in transaction mode, with fewer server connections than the
/// store's pool, so that consecutive operations of one connection land on different
/// server connections: migrations over the direct URL, then every suite through it,
/// from many tasks at once.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_behind_pgbouncer_in_transaction_mode_passes_every_contract_suite() {
    let pg = TestPostgres::start().expect("PostgreSQL starts");
    let direct = pg.create_database("chat").unwrap();
    let bouncer = TestPgBouncer::start(&pg).unwrap();
    let settings = PgSettings {
        max_connections: 8,
        behind_transaction_pooler: true,
        ..PgSettings::default()
    };
    let pooled = PgStore::new(&bouncer.url("chat"), settings).unwrap();
    let refused = pooled.migrate().await.unwrap_err();
    assert!(
        refused.to_string().contains("direct connection"),
        "{refused}"
    );
    let migrated = PgStore::new(&direct, PgSettings::default()).unwrap();
    assert!(migrated.migrate().await.unwrap() >= 1);

    contract::request_directory(&pooled).await;
    contract::thread_repository(&pooled).await;
    contract::care_team_and_inbox(&pooled).await;
    contract::thread_key_store(&pooled).await;
    contract::message_store(&pooled).await;
    contract::message_retraction_and_unread(&pooled).await;
    contract::job_queue(&pooled).await;
    contract::unread_checks(&pooled).await;
    contract::lease_lock(&pooled).await;

    // Sixteen posters at once over three server connections: every statement is
    // prepared and run in the transaction PgBouncer gave it, whichever server that is.
    let posters = (0..16).map(|_| {
        let store = pooled.clone();
        tokio::spawn(async move {
            let thread = contract::fresh_id();
            let mut ids = Vec::new();
            for _ in 0..20 {
                let id = store.next_id(ThreadId::new(thread).unwrap()).await.unwrap();
                let stored = store
                    .append(message(thread, id.get()), None, KEEP_ALL)
                    .await;
                assert_eq!(stored.unwrap(), Appended::Stored);
                ids.push(id);
            }
            let page = store
                .page(ThreadId::new(thread).unwrap(), None, 50, None)
                .await
                .unwrap();
            let listed: Vec<MessageId> = page.messages.iter().map(|m| m.id).collect();
            assert_eq!(listed, ids);
        })
    });
    for poster in futures::future::join_all(posters).await {
        poster.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_starting_together_migrate_once() {
    let db = TestDatabase::empty().expect("PostgreSQL starts");
    let url = db.url();
    let stores: Vec<PgStore> = (0..4)
        .map(|_| PgStore::new(&url, PgSettings::default()).unwrap())
        .collect();
    let runs = futures::future::join_all(stores.iter().map(|s| s.migrate())).await;
    let applied: Vec<usize> = runs.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(
        applied.iter().filter(|n| **n > 0).count(),
        1,
        "one instance migrated: {applied:?}"
    );
    let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("up.sql").exists())
        .count();
    assert_eq!(
        applied.iter().sum::<usize>(),
        on_disk,
        "every migration, once"
    );
}

fn message(thread: i64, id: i64) -> StoredMessage {
    StoredMessage {
        id: MessageId::new(id).unwrap(),
        thread_id: ThreadId::new(thread).unwrap(),
        sender_id: UserId::new(7).unwrap(),
        kind: MessageKind::Text,
        content: Some(SealedContent::from_bytes(vec![1; 40])),
        created_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
    }
}

const KEEP_ALL: RetentionCut = RetentionCut::KEEP_ALL;

/// Two instances draw ids from their own clocks: one whose clock lags is refused once,
/// learns the newest id from the refusal, and is above it on the retry; the same id
/// drawn by both for two threads is refused for the second, which draws another.
#[tokio::test(flavor = "multi_thread")]
async fn instances_with_skewed_clocks_store_ids_in_order() {
    let (db, ahead) = store().await;
    let behind = PgStore::new(&db.url(), PgSettings::default()).unwrap();
    let thread = contract::fresh_id();

    let hour_ahead = behind
        .next_id(ThreadId::new(thread).unwrap())
        .await
        .unwrap()
        .get()
        + 3_600_000_000;
    let stored = ahead
        .append(message(thread, hour_ahead), None, KEEP_ALL)
        .await;
    assert_eq!(stored.unwrap(), Appended::Stored);
    let late = behind
        .next_id(ThreadId::new(thread).unwrap())
        .await
        .unwrap();
    let refused = behind
        .append(message(thread, late.get()), None, KEEP_ALL)
        .await;
    assert_eq!(refused.unwrap(), Appended::Behind);
    let retry = behind
        .next_id(ThreadId::new(thread).unwrap())
        .await
        .unwrap();
    assert!(retry.get() > hour_ahead, "the refusal taught the newest id");
    let stored = behind
        .append(message(thread, retry.get()), None, KEEP_ALL)
        .await;
    assert_eq!(stored.unwrap(), Appended::Stored);

    let other = contract::fresh_id();
    let taken = behind
        .append(message(other, retry.get()), None, KEEP_ALL)
        .await;
    assert_eq!(
        taken.unwrap(),
        Appended::Behind,
        "an id another thread holds"
    );
    let fresh = behind.next_id(ThreadId::new(other).unwrap()).await.unwrap();
    assert!(fresh > retry);
    let stored = behind
        .append(message(other, fresh.get()), None, KEEP_ALL)
        .await;
    assert_eq!(stored.unwrap(), Appended::Stored);

    let listed = behind
        .page(ThreadId::new(thread).unwrap(), None, 10, None)
        .await
        .unwrap();
    let ids: Vec<i64> = listed.messages.iter().map(|m| m.id.get()).collect();
    assert_eq!(ids, [hour_ahead, retry.get()]);
}
