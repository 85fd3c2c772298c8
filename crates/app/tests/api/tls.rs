//! PostgreSQL and Redis over TLS: the service connects encrypted and verifies the
//! server's certificate (against `SSL_CERT_FILE` here, the system's roots otherwise);
//! a certificate it cannot verify means no connection, never a plaintext fallback.

use crate::helpers::*;
use chat_testkit::{TestCertificates, TestPostgres, TestRedis};
use std::time::Duration;

#[tokio::test]
async fn backends_over_tls_with_verified_certificates() {
    let certs = TestCertificates::generate().unwrap();
    let pg = TestPostgres::start().unwrap();
    let db = pg.database().unwrap();
    pg.enable_tls(&certs).unwrap();
    let redis = TestRedis::start_tls(&certs).unwrap();
    let database = format!("{}?sslmode=require", db.url());
    let ca = certs.ca().to_string_lossy().into_owned();
    let redis_url = redis.tls_url().unwrap();
    let vars = [
        ("CHAT_DATABASE_URL", database.as_str()),
        ("CHAT_MASTER_KEY", MASTER_KEY),
        ("CHAT_REDIS_URL", redis_url.as_str()),
        ("CHAT_MESSAGE_STORE", "redis"),
        ("CHAT_STORE_TIMEOUT_MS", "2000"),
    ];

    let mut trusting = vars.to_vec();
    trusting.push(("SSL_CERT_FILE", &ca));
    let server = ServerProcess::start(&trusting);
    let api = server.api();
    // Ready once the event link is subscribed too, a moment after the start.
    eventually(Duration::from_secs(10), "/readyz 200", || async {
        (api.get("/readyz").await.status() == 200).then_some(())
    })
    .await;
    let thread = open_thread_over_http(&api.client, &api.base, 5).await;
    api.post_text(&token(7, "client"), thread, "over TLS").await;
    // The message went to Redis over its TLS port (the only one the URL names), and
    // PostgreSQL reports the service's sessions as encrypted.
    assert!(
        !redis.cli(&["--scan"]).unwrap().is_empty(),
        "keys were written"
    );
    let sessions = db
        .psql(&format!(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.datname = '{}'",
            db.name()
        ))
        .unwrap();
    let (encrypted, all) = sessions.trim().split_once('|').unwrap();
    assert!(all.parse::<u32>().unwrap() > 0, "{sessions}");
    assert_eq!(encrypted, all, "every session of the service is TLS");
    server.stop();

    // Not trusting the CA: neither backend is reachable, and /readyz says so.
    let mut untrusting = vars.to_vec();
    untrusting.push(("CHAT_AUTO_MIGRATE", "false"));
    let server = ServerProcess::start(&untrusting);
    let refused = server.api().get("/readyz").await;
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"], "unavailable", "{body}");
    assert_eq!(body["checks"]["redis"], "unavailable", "{body}");
    let log = server.stop();
    assert!(!log.contains("over TLS"));
}
