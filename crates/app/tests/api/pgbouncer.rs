//! The service behind PgBouncer in transaction mode (issue 20): migrations over the
//! direct URL, then the API through the pooler, from two instances, with fewer server
//! connections than clients, so consecutive transactions of one client land on
//! different server connections.

use crate::care::support::{inbox_ids, mark_read};
use crate::helpers::*;
use chat_testkit::{TestDatabase, TestPgBouncer, TestPostgres};
use serde_json::json;
use std::time::Duration;

fn count(db: &TestDatabase<'_>, sql: &str) -> i64 {
    db.psql(sql).unwrap().trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_works_behind_pgbouncer_in_transaction_mode() {
    let pg = TestPostgres::start().unwrap();
    let db = pg.database().unwrap();
    let direct = db.url();
    let bouncer = TestPgBouncer::start(&pg).unwrap();
    let pooled = bouncer.url(db.name());
    let vars = [
        ("CHAT_DATABASE_URL", pooled.as_str()),
        ("CHAT_DATABASE_POOLER", "transaction"),
        ("CHAT_DATABASE_MIGRATION_URL", direct.as_str()),
        ("CHAT_MASTER_KEY", MASTER_KEY),
        ("CHAT_STORE_TIMEOUT_MS", "2000"),
        ("CHAT_DATABASE_MAX_CONNECTIONS", "8"),
        ("CHAT_MAX_MESSAGES_PER_THREAD", "0"),
    ];
    let instances = [
        TestApp::spawn_with(&vars).await,
        TestApp::spawn_with(&vars).await,
    ];
    assert!(
        count(&db, "SELECT count(*) FROM __diesel_schema_migrations") > 0,
        "migrated over the direct URL"
    );

    // A care team, its inbox, and concurrent posts through both instances.
    let nurse = token(21, "staff");
    json_of(
        instances[0]
            .register(&admin(), 5, json!({"client_id": 7, "staff_ids": [21]}))
            .await,
        200,
    )
    .await;
    let opened = json_of(instances[1].open(&nurse, 5).await, 200).await;
    let thread = opened["threadId"].as_i64().unwrap();
    let t = token(7, "client");
    let acknowledged = concurrent_posts(&instances, &t, thread, 100).await;
    let listed = instances[0].ids_and_texts(&nurse, thread).await;
    assert_eq!(listed, acknowledged, "every post once, in id order");

    assert_eq!(inbox_ids(&instances[1], &nurse, "").await, [(thread, 100)]);
    let newest = acknowledged.last().unwrap().0;
    json_of(
        mark_read(&instances[0], &nurse, thread, json!({"upTo": newest})).await,
        200,
    )
    .await;
    assert_eq!(inbox_ids(&instances[0], &nurse, "").await, [(thread, 0)]);

    // Close: the purge is a durable job, claimed through the pooler too.
    json_of(instances[1].close(&admin(), thread).await, 200).await;
    let mut keys = -1;
    for _ in 0..50 {
        keys = count(&db, "SELECT count(*) FROM chat_thread_keys");
        if keys == 0 && count(&db, "SELECT count(*) FROM chat_jobs") == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(keys, 0, "the purge ran and destroyed the key");
}

#[test]
fn behind_a_transaction_pooler_migrating_at_start_needs_a_direct_url() {
    let config = chat_server::Config::from_vars([
        (
            "CHAT_DATABASE_URL".to_owned(),
            "postgres://bouncer/chat".to_owned(),
        ),
        ("CHAT_DATABASE_POOLER".to_owned(), "transaction".to_owned()),
        ("CHAT_MASTER_KEY".to_owned(), MASTER_KEY.to_owned()),
    ]);
    let refused = config.unwrap().check_can_serve().unwrap_err();
    assert_eq!(refused.variable, "CHAT_DATABASE_MIGRATION_URL");
}
