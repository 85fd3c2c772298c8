//! TTL and cap through the API (SPEC §5), with the server's clock under test control.

use crate::helpers::*;
use std::time::Duration;

fn texts(messages: &[serde_json::Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn expired_messages_are_never_returned() {
    let app = TestApp::spawn_with(&[("CHAT_MESSAGE_TTL_SECS", "60")]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    app.post_text(&t, thread, "old").await;
    app.clock.advance(Duration::from_secs(30));
    app.post_text(&t, thread, "new").await;
    assert_eq!(texts(&app.all_messages(&t, thread).await), ["old", "new"]);
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(texts(&app.all_messages(&t, thread).await), ["new"]);
    let page = json_of(app.list(&t, thread, "?limit=1").await, 200).await;
    assert_eq!(
        page["nextCursor"],
        serde_json::Value::Null,
        "expired messages are not 'older messages'"
    );
    app.clock.advance(Duration::from_secs(30));
    assert!(app.all_messages(&t, thread).await.is_empty());
}

#[tokio::test]
async fn only_the_newest_messages_are_kept() {
    let app = TestApp::spawn_with(&[("CHAT_MAX_MESSAGES_PER_THREAD", "5")]).await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(app.post_text(&t, thread, &format!("m{i}")).await);
    }
    let all = app.all_messages(&t, thread).await;
    assert_eq!(texts(&all), ["m3", "m4", "m5", "m6", "m7"]);
    // The older ones are gone from the store, not only hidden.
    let stored = app.stored_messages(thread).await;
    assert_eq!(stored.len(), 5);
}

#[tokio::test]
async fn zero_disables_both_limits() {
    let app = TestApp::spawn_with(&[
        ("CHAT_MESSAGE_TTL_SECS", "0"),
        ("CHAT_MAX_MESSAGES_PER_THREAD", "0"),
    ])
    .await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    for i in 0..120 {
        app.post_text(&t, thread, &format!("m{i}")).await;
    }
    app.clock.advance(Duration::from_secs(30 * 86_400));
    assert_eq!(app.all_messages(&t, thread).await.len(), 120);
}

#[tokio::test]
async fn defaults_are_a_day_and_a_hundred() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    for i in 0..105 {
        app.post_text(&t, thread, &format!("m{i}")).await;
    }
    let all = app.all_messages(&t, thread).await;
    assert_eq!(all.len(), 100);
    assert_eq!(all[0]["text"], "m5");
    app.clock.advance(Duration::from_secs(86_401));
    assert!(app.all_messages(&t, thread).await.is_empty());
}
