//! Every validation rule of each message type (SPEC §3.4): Laravel-shaped 422s.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn type_rules() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    assert_invalid(app.post(&t, thread, json!({"text": "hi"})).await, "type").await;
    assert_invalid(
        app.post(&t, thread, json!({"type": null, "text": "hi"}))
            .await,
        "type",
    )
    .await;
    assert_invalid(
        app.post(&t, thread, json!({"type": 1, "text": "hi"})).await,
        "type",
    )
    .await;
    assert_invalid(
        app.post(&t, thread, json!({"type": "video", "text": "hi"}))
            .await,
        "type",
    )
    .await;
    assert_invalid(
        app.post(&t, thread, json!({"type": "TEXT", "text": "hi"}))
            .await,
        "type",
    )
    .await;
}

#[tokio::test]
async fn text_rules() {
    let app = TestApp::spawn_with(&[("CHAT_MAX_TEXT_CHARS", "10")]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    for bad in [
        json!({"type": "text"}),
        json!({"type": "text", "text": null}),
        json!({"type": "text", "text": 42}),
        json!({"type": "text", "text": ["a"]}),
        json!({"type": "text", "text": ""}),
        json!({"type": "text", "text": " \n\t "}),
        json!({"type": "text", "text": "elevenchars"}),
    ] {
        assert_invalid(app.post(&t, thread, bad.clone()).await, "text").await;
    }
    // Ten characters, multi-byte, padded: accepted, stored trimmed.
    app.post_text(&t, thread, "  héllo wör  ").await;
    app.post_text(&t, thread, "日本語のテキストです").await;
    let all = app.all_messages(&t, thread).await;
    assert_eq!(all.len(), 2, "nothing invalid was stored");
    assert_eq!(all[0]["text"], "héllo wör");
}

#[tokio::test]
async fn location_rules() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    let cases = [
        (json!({"type": "location", "lng": 1.0}), "lat"),
        (json!({"type": "location", "lat": 1.0}), "lng"),
        (
            json!({"type": "location", "lat": "north", "lng": 1.0}),
            "lat",
        ),
        (json!({"type": "location", "lat": true, "lng": 1.0}), "lat"),
        (
            json!({"type": "location", "lat": 1.0, "lng": {"x": 1}}),
            "lng",
        ),
        (
            json!({"type": "location", "lat": 90.0001, "lng": 1.0}),
            "lat",
        ),
        (json!({"type": "location", "lat": -91, "lng": 1.0}), "lat"),
        (json!({"type": "location", "lat": 1.0, "lng": 180.5}), "lng"),
        (json!({"type": "location", "lat": 1.0, "lng": -181}), "lng"),
    ];
    for (body, field) in cases {
        assert_invalid(app.post(&t, thread, body).await, field).await;
    }
    // Both wrong: both reported.
    let body = assert_error(
        app.post(&t, thread, json!({"type": "location"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(body["errors"]["lat"].is_array() && body["errors"]["lng"].is_array());
    // The edges are valid, and a numeric string is a number (Laravel's `numeric`).
    for (lat, lng) in [
        (json!(90), json!(180)),
        (json!(-90), json!(-180)),
        (json!("12.5"), json!("-3")),
    ] {
        json_of(
            app.post(
                &t,
                thread,
                json!({"type": "location", "lat": lat, "lng": lng}),
            )
            .await,
            200,
        )
        .await;
    }
    assert_eq!(app.all_messages(&t, thread).await.len(), 3);
}

#[tokio::test]
async fn image_path_rules() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    let mine = format!("chats/{thread}/");
    let bad = [
        String::new(),
        format!("{mine}../{}/x.png", thread + 1),
        format!("{mine}..%2fx.png"),
        format!("{mine}a//b.png"),
        format!("{mine}a\\b.png"),
        format!("/{mine}x.png"),
        format!("{mine}x\u{0000}.png"),
        format!("{mine}x\u{202E}gnp.exe"),
        format!("{mine}x\u{200B}.png"),
        format!("chats/{}/x.png", thread + 1),
        format!("chats/{thread}0/x.png"),
        "chats/x.png".to_owned(),
        mine.clone(),
        format!("{mine}{}", "a".repeat(2000)),
        // `.` segments: the same key spelled otherwise (once a 503 and a store alarm).
        format!("{mine}./x.png"),
        format!("{mine}."),
        format!("{mine}a/./b.png"),
        // The service's own checked copies are no client's upload.
        format!("{mine}checked/x.png"),
        // A well-formed path: refused until object storage is configured.
        format!("{mine}photo.png"),
    ];
    for path in bad {
        assert_invalid(
            app.post(&t, thread, json!({"type": "image", "mediaPath": path}))
                .await,
            "mediaPath",
        )
        .await;
    }
    assert_invalid(
        app.post(&t, thread, json!({"type": "image"})).await,
        "mediaPath",
    )
    .await;
    assert_invalid(
        app.post(&t, thread, json!({"type": "image", "mediaPath": 5}))
            .await,
        "mediaPath",
    )
    .await;
    assert!(app.all_messages(&t, thread).await.is_empty());
}

#[tokio::test]
async fn malformed_bodies_are_422_and_oversize_413() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    for raw in ["{", "not json", "[1,2]", "\"text\"", "", "null"] {
        assert_invalid(app.post_raw(&t, &thread.to_string(), raw).await, "body").await;
    }
    // 64 KiB is the default limit: one byte over is refused before being buffered.
    let huge = json!({"type": "text", "text": "a".repeat(65_536)}).to_string();
    assert_error(
        app.post_raw(&t, &thread.to_string(), huge).await,
        413,
        "payload_too_large",
    )
    .await;
    // Without Content-Length (chunked), the limit still holds.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..100).map(|_| Ok(vec![b' '; 1024])).collect();
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    assert_error(
        app.post_raw(&t, &thread.to_string(), streamed).await,
        413,
        "payload_too_large",
    )
    .await;
    assert!(app.all_messages(&t, thread).await.is_empty());
}

/// Every JSON route refuses a body not sent as JSON with 415, whatever it holds (SPEC
/// §3.7), and stores nothing.
#[tokio::test]
async fn bodies_not_sent_as_json_are_415() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    let body = json!({"type": "text", "text": "hello"}).to_string();
    let routes = [
        format!("/api/chat/threads/{thread}/messages"),
        format!("/api/chat/threads/{thread}/media"),
    ];
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonp"),
        None,
    ] {
        for route in &routes {
            let mut request = app
                .client
                .post(app.url(route))
                .bearer_auth(&t)
                .body(body.clone());
            if let Some(content_type) = content_type {
                request = request.header("Content-Type", content_type);
            }
            let response = request.send().await.unwrap();
            assert_error(response, 415, "unsupported_media_type").await;
        }
        let mut register = app
            .client
            .put(app.url("/api/requests/9"))
            .bearer_auth(admin())
            .body(r#"{"client_id": 7}"#);
        if let Some(content_type) = content_type {
            register = register.header("Content-Type", content_type);
        }
        assert_error(
            register.send().await.unwrap(),
            415,
            "unsupported_media_type",
        )
        .await;
    }
    // JSON with parameters, or a +json type, is JSON.
    for content_type in [
        "application/json; charset=utf-8",
        "application/vnd.api+json",
    ] {
        let response = app
            .client
            .post(app.url(&routes[0]))
            .bearer_auth(&t)
            .header("Content-Type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{content_type}");
    }
    assert_eq!(app.all_messages(&t, thread).await.len(), 2);
}

/// A number too large for a double is its field's error, and every invalid field is
/// reported at once, as Laravel does.
#[tokio::test]
async fn every_invalid_field_is_reported_at_once() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    for (raw, field) in [
        (r#"{"type":"location","lat":1e999,"lng":0}"#, "lat"),
        (r#"{"type":"location","lat":0,"lng":-1e999}"#, "lng"),
        (r#"{"type":"text","text":1e999}"#, "text"),
    ] {
        let response = app.post_raw(&t, &thread.to_string(), raw).await;
        let errors = json_of(response, 422).await["errors"].clone();
        assert!(
            errors[field].is_array() && errors.get("body").is_none(),
            "{raw}: {errors}"
        );
    }
    let response = app
        .post(
            &t,
            thread,
            json!({"type": "location", "lat": 91, "lng": "a"}),
        )
        .await;
    let errors = json_of(response, 422).await["errors"].clone();
    assert!(
        errors["lat"].is_array() && errors["lng"].is_array(),
        "{errors}"
    );
    let response = app
        .post(
            &t,
            thread,
            json!({"type": "location", "lat": -91, "lng": 181}),
        )
        .await;
    let errors = json_of(response, 422).await["errors"].clone();
    assert!(
        errors["lat"].is_array() && errors["lng"].is_array(),
        "{errors}"
    );
    assert!(app.all_messages(&t, thread).await.is_empty());
}

/// Responses that carry content, media URLs or thread metadata are kept by no cache.
#[tokio::test]
async fn responses_are_not_stored_by_caches() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    app.post_text(&t, thread, "hello").await;
    let responses = [
        app.list(&t, thread, "").await,
        app.post(&t, thread, json!({"type": "text", "text": "again"}))
            .await,
        app.open(&t, 1).await,
        app.list(&token(99, "client"), thread, "").await,
        app.get("/api/chat/threads/999/messages").await,
    ];
    for response in responses {
        let status = response.status();
        let cache = response
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(cache.as_deref(), Some("no-store"), "{status}");
    }
}

#[tokio::test]
async fn body_limit_is_configurable() {
    let app = TestApp::spawn_with(&[("CHAT_MAX_BODY_BYTES", "100")]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    let r = app
        .post(&t, thread, json!({"type": "text", "text": "a".repeat(100)}))
        .await;
    assert_error(r, 413, "payload_too_large").await;
    app.post_text(&t, thread, "short").await;
}
