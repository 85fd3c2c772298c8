//! Per-user rate limits (SPEC §3.7): `429 rate_limited` with `Retry-After`, nothing
//! stored for a refused post, other users unaffected, and one count across instances
//! that share Redis.

use crate::helpers::*;
use chat_testkit::TestRedis;
use reqwest::Response;
use serde_json::json;

async fn assert_limited(response: Response) {
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_error(response, 429, "rate_limited").await;
}

#[tokio::test]
async fn posts_uploads_and_channel_auth_are_limited_per_user() {
    let app = TestApp::spawn_with(&[
        ("CHAT_RATE_LIMIT_POSTS", "3"),
        ("CHAT_RATE_LIMIT_UPLOADS", "2"),
        ("CHAT_RATE_LIMIT_AUTH", "2"),
    ])
    .await;
    let client = token(7, "client");
    let thread = app.thread_for(5, 7).await;

    for n in 0..3 {
        app.post_text(&client, thread, &format!("m{n}")).await;
    }
    let refused = app
        .post(
            &client,
            thread,
            json!({"type": "text", "text": "one too many"}),
        )
        .await;
    assert_limited(refused).await;
    // Not stored; and the limit is this user's only.
    let admin = admin();
    assert_eq!(app.all_texts(&admin, thread).await, vec!["m0", "m1", "m2"]);
    app.post_text(&admin, thread, "staff").await;
    // Reading is not limited.
    assert_eq!(app.list(&client, thread, "").await.status(), 200);

    let upload = || app.upload_url(&client, thread, "image/png");
    assert_eq!(upload().await.status(), 200);
    assert_eq!(upload().await.status(), 200);
    assert_limited(upload().await).await;

    let channel = format!("private-chat.{thread}");
    let auth = || app.authorize(&client, "1.2", &channel);
    assert_eq!(auth().await.status(), 200);
    assert_eq!(auth().await.status(), 200);
    assert_limited(auth().await).await;
}

#[tokio::test]
async fn instances_sharing_redis_share_the_count() {
    let db = database();
    let redis = TestRedis::start().unwrap();
    let mut vars = postgres_vars(&db);
    vars.push(("CHAT_REDIS_URL", redis.url()));
    vars.push(("CHAT_RATE_LIMIT_POSTS", "4".into()));
    let one = TestApp::spawn_with(&borrowed(&vars)).await;
    let two = TestApp::spawn_with(&borrowed(&vars)).await;
    let client = token(7, "client");
    let thread = one.thread_for(5, 7).await;

    for (n, app) in [&one, &two, &one, &two].into_iter().enumerate() {
        app.post_text(&client, thread, &format!("m{n}")).await;
    }
    for app in [&one, &two] {
        let refused = app
            .post(&client, thread, json!({"type": "text", "text": "over"}))
            .await;
        assert_limited(refused).await;
    }
    assert_eq!(one.all_texts(&client, thread).await.len(), 4);

    // The count lives in Redis; with Redis gone the limit lets posts through rather
    // than refuse them (the message store here is PostgreSQL, which still answers).
    redis.kill().unwrap();
    two.post_text(&client, thread, "redis down").await;
}
