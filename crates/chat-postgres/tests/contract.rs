//! The Postgres adapters against the port contract suites, on a real PostgreSQL that
//! the test starts (chat-testkit).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chat_memory::contract;
use chat_postgres::{PgSettings, PgStore};
use chat_testkit::TestPostgres;

async fn store() -> (TestPostgres, PgStore) {
    let pg = TestPostgres::start().expect("PostgreSQL starts");
    let url = pg.create_database("chat").unwrap();
    let store = PgStore::new(&url, PgSettings::default()).unwrap();
    assert!(store.migrate().await.unwrap() >= 1, "migrations ran");
    assert_eq!(store.migrate().await.unwrap(), 0, "and only once");
    (pg, store)
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_passes_every_contract_suite() {
    let (_pg, store) = store().await;
    contract::request_directory(&store).await;
    contract::thread_repository(&store).await;
    contract::thread_key_store(&store).await;
    contract::message_store(&store).await;
    contract::job_queue(&store).await;
    contract::lease_lock(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_starting_together_migrate_once() {
    let pg = TestPostgres::start().expect("PostgreSQL starts");
    let url = pg.create_database("chat").unwrap();
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
