//! Routes, the policy table and the error codes of SPEC §3.1–§3.5, §3.7.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn register_request_is_admin_only_and_upserts() {
    let app = TestApp::spawn().await;
    let body = json_of(
        app.register(&admin(), 5, json!({"client_id": 7})).await,
        200,
    )
    .await;
    assert_eq!(
        body,
        json!({"id": 5, "client_id": 7, "staff_ids": [], "record": false})
    );
    let body = json_of(
        app.register(&admin(), 5, json!({"client_id": 8})).await,
        200,
    )
    .await;
    assert_eq!(body["client_id"], 8);
    assert_error(
        app.register(&token(7, "client"), 6, json!({"client_id": 7}))
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_invalid(app.register(&admin(), 6, json!({})).await, "client_id").await;
    assert_invalid(
        app.register(&admin(), 6, json!({"client_id": "seven"}))
            .await,
        "client_id",
    )
    .await;
    assert_invalid(
        app.register(&admin(), 6, json!({"client_id": -3})).await,
        "client_id",
    )
    .await;
    assert_error(
        app.register(&admin(), 0, json!({"client_id": 7})).await,
        404,
        "not_found",
    )
    .await;
    let r = app
        .client
        .put(app.url("/api/requests/abc"))
        .bearer_auth(admin())
        .json(&json!({"client_id": 7}))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
}

#[tokio::test]
async fn open_is_for_admins_and_the_requests_client() {
    let app = TestApp::spawn().await;
    json_of(
        app.register(&admin(), 10, json!({"client_id": 7})).await,
        200,
    )
    .await;
    let by_client = json_of(app.open(&token(7, "client"), 10).await, 200).await;
    let thread = by_client["threadId"].as_i64().unwrap();
    assert_eq!(by_client["status"], "open");
    let by_admin = json_of(app.open(&admin(), 10).await, 200).await;
    assert_eq!(by_admin["threadId"], thread, "the same thread");
    let by_other_admin = json_of(app.open(&token(2, "admin"), 10).await, 200).await;
    assert_eq!(by_other_admin["threadId"], thread);
    assert_error(app.open(&token(8, "client"), 10).await, 403, "forbidden").await;
    assert_error(app.open(&admin(), 999).await, 404, "not_found").await;
    assert_error(app.open(&token(8, "client"), 999).await, 404, "not_found").await;
}

#[tokio::test]
async fn twenty_concurrent_opens_give_one_thread() {
    let app = TestApp::spawn().await;
    json_of(
        app.register(&admin(), 11, json!({"client_id": 7})).await,
        200,
    )
    .await;
    let ids = app.concurrent_opens(11, 20).await;
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
}

#[tokio::test]
async fn the_policy_table() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(20, 7).await; // admin 1 opened it
    let admin1 = admin();
    let admin2 = token(2, "admin");
    let client = token(7, "client");
    let other_client = token(8, "client");
    let staff = token(9, "nurse");

    for who in [&admin1, &admin2, &client] {
        app.post_text(who, thread, "hello").await;
        json_of(app.list(who, thread, "").await, 200).await;
    }
    for who in [&other_client, &staff] {
        assert_error(
            app.post(who, thread, json!({"type": "text", "text": "x"}))
                .await,
            403,
            "forbidden",
        )
        .await;
        assert_error(app.list(who, thread, "").await, 403, "forbidden").await;
        assert_error(app.close(who, thread).await, 403, "forbidden").await;
        // Validation never runs before authorization.
        assert_error(app.post(who, thread, json!({})).await, 403, "forbidden").await;
    }

    // The client may close; closing again returns the same closed_at.
    let closed = json_of(app.close(&client, thread).await, 200).await;
    assert_eq!(closed["status"], "closed");
    let closed_at = closed["closed_at"].as_str().unwrap().to_owned();
    assert!(chrono::DateTime::parse_from_rfc3339(&closed_at).is_ok());
    let again = json_of(app.close(&admin2, thread).await, 200).await;
    assert_eq!(again["closed_at"], closed_at.as_str());

    // Closed: posts refused to everyone, admins included; reading still allowed.
    for who in [&admin1, &admin2, &client] {
        assert_error(
            app.post(who, thread, json!({"type": "text", "text": "x"}))
                .await,
            403,
            "thread_closed",
        )
        .await;
        json_of(app.list(who, thread, "").await, 200).await;
    }
    assert_error(
        app.post(&other_client, thread, json!({"type": "text", "text": "x"}))
            .await,
        403,
        "forbidden",
    )
    .await;
    // Opening a closed thread's request returns it, still closed.
    let reopened = json_of(app.open(&client, 20).await, 200).await;
    assert_eq!(reopened["threadId"], thread);
    assert_eq!(reopened["status"], "closed");
}

#[tokio::test]
async fn unknown_threads_are_404_and_malformed_ids_too() {
    let app = TestApp::spawn().await;
    let t = admin();
    assert_error(app.list(&t, 4242, "").await, 404, "not_found").await;
    assert_error(
        app.post(&t, 4242, json!({"type": "text", "text": "x"}))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_error(app.close(&t, 4242).await, 404, "not_found").await;
    assert_error(app.post_raw(&t, "abc", "{}").await, 404, "not_found").await;
    assert_error(app.post_raw(&t, "-1", "{}").await, 404, "not_found").await;
    assert_error(
        app.post_raw(&t, "99999999999999999999999", "{}").await,
        404,
        "not_found",
    )
    .await;
    let r = app
        .client
        .get(app.url("/api/nothing/here"))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
}

#[tokio::test]
async fn disabled_chat_answers_501_everywhere_but_health() {
    let app = TestApp::spawn_with(&[("CHAT_ENABLED", "false")]).await;
    let t = admin();
    assert_error(
        app.register(&t, 1, json!({"client_id": 7})).await,
        501,
        "feature_disabled",
    )
    .await;
    assert_error(app.open(&t, 1).await, 501, "feature_disabled").await;
    assert_error(app.list(&t, 1, "").await, 501, "feature_disabled").await;
    assert_error(
        app.post(&t, 1, json!({"type": "text", "text": "x"})).await,
        501,
        "feature_disabled",
    )
    .await;
    assert_error(app.close(&t, 1).await, 501, "feature_disabled").await;
    let r = app
        .client
        .get(app.url("/api/chat/threads/1/messages"))
        .send()
        .await
        .unwrap();
    assert_error(r, 501, "feature_disabled").await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn message_shapes_carry_every_field() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(30, 7).await;
    let client = token(7, "client");
    let text_id = app.post_text(&client, thread, "  Hello there  ").await;
    let loc = json_of(
        app.post(
            &admin(),
            thread,
            json!({"type": "location", "lat": 40.7128, "lng": -74.006}),
        )
        .await,
        200,
    )
    .await;
    let page = json_of(app.list(&client, thread, "").await, 200).await;
    assert_eq!(page["nextCursor"], serde_json::Value::Null);
    let messages = page["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    let text = &messages[0];
    assert_eq!(text["id"], text_id);
    assert_eq!(text["type"], "text");
    assert_eq!(text["text"], "Hello there", "trimmed");
    assert_eq!(text["sender_id"], 7);
    for field in ["lat", "lng", "media_url"] {
        assert!(
            text.get(field).is_some_and(|v| v.is_null()),
            "{field} present and null"
        );
    }
    let created = text["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(created).is_ok());
    let location = &messages[1];
    assert_eq!(location["id"], loc["id"]);
    assert_eq!(location["type"], "location");
    assert_eq!(
        (location["lat"].as_f64(), location["lng"].as_f64()),
        (Some(40.7128), Some(-74.006))
    );
    assert!(location["text"].is_null() && location["media_url"].is_null());
    assert_eq!(location["sender_id"], 1);
}

#[tokio::test]
async fn close_purges_content_and_keeps_metadata() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(40, 7).await;
    let client = token(7, "client");
    let id = app.post_text(&client, thread, "to be shredded").await;
    json_of(app.close(&client, thread).await, 200).await;
    // The purge job runs in the background worker; wait for it, bounded.
    let mut redacted = serde_json::Value::Null;
    for _ in 0..50 {
        let page = json_of(app.list(&client, thread, "").await, 200).await;
        redacted = page["messages"][0].clone();
        if redacted["redacted"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(redacted["redacted"], true, "{redacted}");
    assert_eq!(redacted["id"], id);
    assert_eq!(redacted["type"], "text");
    assert_eq!(redacted["sender_id"], 7);
    assert!(redacted["text"].is_null());
    let thread_id = chat_core::ThreadId::new(thread).unwrap();
    assert_eq!(
        app.ports.keys.get(thread_id).await.unwrap(),
        None,
        "key destroyed"
    );
}

#[tokio::test]
async fn health_answers_without_a_token() {
    let app = TestApp::spawn().await;
    let body = json_of(
        app.client.get(app.url("/healthz")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(body["status"], "ok");
}
