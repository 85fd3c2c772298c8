//! What an operator relies on: `/readyz` names the backend that stops answering, and
//! `/metrics` counts what happened.

use crate::helpers::*;
use crate::realtime::Socket;
use chat_testkit::{TestPostgres, TestRedis, TestS3};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn readyz(api: &Api) -> (u16, Value) {
    let response = api.get("/readyz").await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls `/readyz` until it answers `status` (a backend's state takes a moment to show:
/// a killed Redis drops the pooled connections only on their next use).
async fn readyz_becomes(api: &Api, status: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (now, body) = readyz(api).await;
        if now == status {
            return body;
        }
        assert!(Instant::now() < deadline, "/readyz stayed {now}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn readyz_without_backends_is_ready() {
    let app = TestApp::spawn().await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "ready", "checks": {"media": "ok"}}));
}

#[tokio::test]
async fn readyz_names_each_backend_that_stops_answering() {
    let pg = TestPostgres::start().unwrap();
    let db = pg.database().unwrap();
    let redis = TestRedis::start().unwrap();
    let s3 = TestS3::start().unwrap();
    let mut vars = postgres_vars(&db);
    vars.push(("CHAT_REDIS_URL", redis.url()));
    vars.push(("CHAT_LINK_CHECK_SECS", "2".into()));
    vars.extend(s3.client_vars());
    vars.push(("CHAT_OBJECT_STORE_URL", s3.url()));
    let app = TestApp::spawn_with(&borrowed(&vars)).await;
    let all_ok = json!({"postgres": "ok", "redis": "ok", "event_link": "ok", "media": "ok"});

    let body = readyz_becomes(&app, 200).await;
    assert_eq!(body, json!({"status": "ready", "checks": all_ok}));

    redis.kill().unwrap();
    let body = readyz_becomes(&app, 503).await;
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["redis"], "unavailable", "{body}");
    assert_eq!(body["checks"]["postgres"], "ok", "{body}");
    assert_eq!(body["checks"]["media"], "ok", "{body}");
    // The subscribed connection is found gone within the link check too.
    eventually(Duration::from_secs(6), "the event link named", || async {
        let (_, body) = readyz(&app).await;
        (body["checks"]["event_link"] == "unavailable").then_some(())
    })
    .await;
    redis.start_again().unwrap();
    assert_eq!(readyz_becomes(&app, 200).await["checks"], all_ok);

    // A store that hangs rather than refuses: the probe's timeout answers for it.
    s3.pause().unwrap();
    let started = Instant::now();
    let body = readyz_becomes(&app, 503).await;
    assert_eq!(body["checks"]["media"], "unavailable", "{body}");
    assert_eq!(body["checks"]["postgres"], "ok", "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
    s3.resume().unwrap();
    assert_eq!(readyz_becomes(&app, 200).await["checks"], all_ok);

    pg.stop().unwrap();
    let body = readyz_becomes(&app, 503).await;
    assert_eq!(body["checks"]["postgres"], "unavailable", "{body}");
    assert_eq!(body["checks"]["redis"], "ok", "{body}");
    pg.start_again().unwrap();
    assert_eq!(readyz_becomes(&app, 200).await["checks"], all_ok);
}

/// The value of the sample of `name` whose labels include every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .reduce(|a, b| a + b)
}

async fn scrape(api: &Api) -> String {
    let response = api.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

/// Its own process, so that the counters hold only what this test did.
#[tokio::test]
async fn metrics_count_requests_messages_sockets_jobs_and_failures() {
    let pg = TestPostgres::start().unwrap();
    let db = pg.database().unwrap();
    let vars = postgres_vars(&db);
    let server = ServerProcess::start(&borrowed(&vars));
    let api = server.api();
    let client = token(7, "client");

    let thread = open_thread_over_http(&api.client, &api.base, 5).await;
    let (mut socket, socket_id) = Socket::established(&api.base).await;
    let channel = format!("private-chat.{thread}");
    let auth = api.authorize(&client, &socket_id, &channel).await;
    let auth = json_of(auth, 200).await;
    let subscribed = socket.subscribe(&channel, &auth).await;
    assert_eq!(
        subscribed["event"],
        "pusher_internal:subscription_succeeded"
    );

    for body in [
        json!({"type": "text", "text": "one"}),
        json!({"type": "text", "text": "two"}),
        json!({"type": "location", "lat": 1.5, "lng": 2.5}),
    ] {
        assert_eq!(api.post(&client, thread, body).await.status(), 200);
        assert_eq!(
            socket.next().await.unwrap()["event"],
            "App\\Events\\MessageCreated"
        );
    }
    // Refused: not counted as posted.
    let refused = api.post(&client, thread, json!({"type": "text"})).await;
    assert_eq!(refused.status(), 422);
    assert_eq!(api.list(&client, 999, "").await.status(), 404);

    // A stored ciphertext that no longer opens: the list fails, and it is counted.
    db.psql("UPDATE chat_messages SET ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 1) WHERE id = (SELECT min(id) FROM chat_messages)",
    )
    .unwrap();
    assert_eq!(api.list(&client, thread, "").await.status(), 500);

    let text = scrape(&api).await;
    let value = |name, labels: &[(&str, &str)]| sample(&text, name, labels);
    assert_eq!(
        value("chat_messages_posted_total", &[("type", "text")]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value("chat_messages_posted_total", &[("type", "location")]),
        Some(1.0)
    );
    assert_eq!(
        value("chat_messages_posted_total", &[("type", "image")]),
        None
    );
    let posts = [
        ("method", "POST"),
        ("route", "/api/chat/threads/{thread}/messages"),
    ];
    assert_eq!(
        value(
            "chat_http_requests_total",
            &[posts[0], posts[1], ("status", "200")]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            "chat_http_requests_total",
            &[posts[0], posts[1], ("status", "422")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "chat_http_requests_total",
            &[
                ("route", "/api/chat/threads/{thread}/messages"),
                ("status", "404")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        value("chat_http_request_duration_seconds_count", &posts),
        Some(4.0)
    );
    // No label carries a path, a thread id or a token.
    assert!(
        !text.contains("/threads/999") && !text.contains(&client),
        "{text}"
    );
    assert_eq!(value("chat_websocket_connections", &[]), Some(1.0));
    assert_eq!(
        value("chat_websocket_events_delivered_total", &[]),
        Some(3.0)
    );
    assert_eq!(value("chat_crypto_failures_total", &[]), Some(1.0));
    assert_eq!(value("chat_store_errors_total", &[]), None);

    // The close queues the purge job, which the worker runs within a few seconds.
    assert_eq!(api.close(&client, thread).await.status(), 200);
    drop(socket);
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = scrape(&api).await;
        let done = sample(
            &text,
            "chat_jobs_total",
            &[("job", "purge_thread"), ("outcome", "done")],
        );
        let gone = sample(&text, "chat_websocket_connections", &[]) == Some(0.0);
        if done == Some(1.0) && gone {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no purge or socket still counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // The database stops: the failed request is counted as a store error.
    pg.stop().unwrap();
    let refused = api
        .post(&client, thread, json!({"type": "text", "text": "three"}))
        .await;
    assert_eq!(refused.status(), 503);
    let after = scrape(&api).await;
    assert!(
        sample(
            &after,
            "chat_store_errors_total",
            &[("kind", "unavailable")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, "chat_messages_posted_total", &[("type", "text")]),
        Some(2.0)
    );
    assert!(sample(&text, "chat_jobs_total", &[("outcome", "failed")]).is_none());
    server.stop();
}

#[tokio::test]
async fn the_served_openapi_document_is_the_committed_one() {
    let app = TestApp::spawn().await;
    let served = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    let served: Value = served.json().await.unwrap();
    let committed: Value =
        serde_json::from_str(include_str!("../../../../docs/openapi.json")).unwrap();
    assert_eq!(served, committed);
    assert_eq!(served["openapi"], "3.1.0");
}
