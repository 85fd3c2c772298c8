//! A backing store that fails: `503 unavailable` JSON, no internals, nothing stored.

use crate::helpers::*;
use chat_core::StoreError;
use chat_memory::{Faulty, MemoryMessageStore};
use chat_server::Overrides;
use serde_json::json;
use std::sync::Arc;

/// What a database that went away answers, internals included: none may show.
fn outage() -> StoreError {
    StoreError::Unavailable("connection refused (10.0.0.9:5432, password=hunter2)".into())
}

#[tokio::test]
async fn a_failing_store_is_503_and_nothing_is_half_written() {
    let store = Arc::new(Faulty::new(Arc::new(MemoryMessageStore::default())));
    let app = TestApp::spawn_over(
        &[],
        Overrides {
            messages: Some(store.clone()),
            ..Default::default()
        },
    )
    .await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    app.post_text(&t, thread, "before").await;

    store.fail_with(Some(outage()));
    let r = app
        .post(&t, thread, json!({"type": "text", "text": "during"}))
        .await;
    assert_eq!(
        r.headers().get("retry-after").map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let body = assert_error(r, 503, "unavailable").await;
    let shown = body.to_string();
    assert!(
        !shown.contains("10.0.0.9") && !shown.contains("hunter2"),
        "no internals: {shown}"
    );
    assert_error(app.list(&t, thread, "").await, 503, "unavailable").await;

    // Back up: the service recovers, and the failed post was not stored.
    store.fail_with(None);
    let texts = app.all_texts(&t, thread).await;
    assert_eq!(texts, ["before"]);
    app.post_text(&t, thread, "after").await;
    assert_eq!(app.all_messages(&t, thread).await.len(), 2);
}
