//! A backing store that fails: `503 unavailable` JSON, no internals, nothing stored.

use crate::helpers::*;
use async_trait::async_trait;
use chat_core::ports::{Appended, MessageStore, RetentionCut, StoreResult};
use chat_core::{
    IdempotencyKey, MessageId, MessagePage, StoreError, StoredMessage, ThreadId, Timestamp, UserId,
};
use chat_memory::MemoryMessageStore;
use chat_server::Overrides;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The in-memory store behind a switch that makes every call fail, as a database that
/// went away would.
#[derive(Default)]
struct Switchable {
    inner: MemoryMessageStore,
    down: AtomicBool,
}

impl Switchable {
    fn check(&self) -> StoreResult<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(
                "connection refused (10.0.0.9:5432, password=hunter2)".into(),
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl MessageStore for Switchable {
    async fn next_id(&self, thread: ThreadId) -> StoreResult<MessageId> {
        self.inner.next_id(thread).await
    }
    async fn append_all(
        &self,
        batch: &[(StoredMessage, Option<IdempotencyKey>)],
        cut: RetentionCut,
    ) -> StoreResult<Vec<Appended>> {
        self.check()?;
        self.inner.append_all(batch, cut).await
    }
    async fn page(
        &self,
        thread: ThreadId,
        before: Option<MessageId>,
        limit: u32,
        expired: Option<Timestamp>,
    ) -> StoreResult<MessagePage<StoredMessage>> {
        self.check()?;
        self.inner.page(thread, before, limit, expired).await
    }
    async fn get(&self, thread: ThreadId, id: MessageId) -> StoreResult<Option<StoredMessage>> {
        self.check()?;
        self.inner.get(thread, id).await
    }
    async fn redact(&self, thread: ThreadId, id: MessageId) -> StoreResult<bool> {
        self.check()?;
        self.inner.redact(thread, id).await
    }
    async fn unread_counts(
        &self,
        reader: UserId,
        threads: &[(ThreadId, Option<MessageId>)],
        expired: Option<Timestamp>,
    ) -> StoreResult<Vec<u64>> {
        self.check()?;
        self.inner.unread_counts(reader, threads, expired).await
    }
    async fn redact_thread(&self, thread: ThreadId) -> StoreResult<u64> {
        self.check()?;
        self.inner.redact_thread(thread).await
    }
    async fn delete_expired(&self, before: Timestamp, keep: &[ThreadId]) -> StoreResult<u64> {
        self.check()?;
        self.inner.delete_expired(before, keep).await
    }
}

#[tokio::test]
async fn a_failing_store_is_503_and_nothing_is_half_written() {
    let store = Arc::new(Switchable::default());
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

    store.down.store(true, Ordering::SeqCst);
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
    store.down.store(false, Ordering::SeqCst);
    let texts = app.all_texts(&t, thread).await;
    assert_eq!(texts, ["before"]);
    app.post_text(&t, thread, "after").await;
    assert_eq!(app.all_messages(&t, thread).await.len(), 2);
}
