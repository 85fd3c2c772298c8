//! The use case of posting, over the in-memory adapters: a busy thread's posts are
//! appended in batches (group commit), each stored once, in order, each answered with
//! its own id, and announced in id order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use chat_core::ports::{
    Appended, ChatEvent, EventBus, MessageStore, Received, RetentionCut, StoreResult,
};
use chat_core::{
    ChatService, ChatSettings, IdempotencyKey, MessageContent, MessageId, MessagePage, Ports,
    RequestId, StoredMessage, TextBody, ThreadId, Timestamp, User, UserId,
};
use chat_crypto::MasterKeyRing;
use chat_memory::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The in-memory store, counting its batches and taking a while over each one, as a
/// store across the network does.
#[derive(Default)]
struct Slow {
    inner: MemoryMessageStore,
    batches: AtomicUsize,
}

#[async_trait]
impl MessageStore for Slow {
    async fn next_id(&self, thread: ThreadId) -> StoreResult<MessageId> {
        self.inner.next_id(thread).await
    }
    async fn append_all(
        &self,
        batch: &[(StoredMessage, Option<IdempotencyKey>)],
        cut: RetentionCut,
    ) -> StoreResult<Vec<Appended>> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.inner.append_all(batch, cut).await
    }
    async fn page(
        &self,
        thread: ThreadId,
        before: Option<MessageId>,
        limit: u32,
        expired_before: Option<Timestamp>,
    ) -> StoreResult<MessagePage<StoredMessage>> {
        self.inner.page(thread, before, limit, expired_before).await
    }
    async fn get(&self, thread: ThreadId, id: MessageId) -> StoreResult<Option<StoredMessage>> {
        self.inner.get(thread, id).await
    }
    async fn redact(&self, thread: ThreadId, id: MessageId) -> StoreResult<bool> {
        self.inner.redact(thread, id).await
    }
    async fn unread_counts(
        &self,
        reader: chat_core::UserId,
        threads: &[(ThreadId, Option<MessageId>)],
        expired_before: Option<Timestamp>,
    ) -> StoreResult<Vec<u64>> {
        self.inner
            .unread_counts(reader, threads, expired_before)
            .await
    }
    async fn redact_thread(&self, thread: ThreadId) -> StoreResult<u64> {
        self.inner.redact_thread(thread).await
    }
    async fn delete_expired(
        &self,
        expired_before: Timestamp,
        keep: &[ThreadId],
    ) -> StoreResult<u64> {
        self.inner.delete_expired(expired_before, keep).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_threads_posts_are_appended_in_batches_each_once_and_in_order() {
    let store = Arc::new(Slow::default());
    let events = Arc::new(MemoryEventBus::new(1024));
    let ports = Ports {
        requests: Arc::new(MemoryRequestDirectory::default()),
        threads: Arc::new(MemoryThreadRepository::default()),
        keys: Arc::new(MemoryKeyStore::default()),
        messages: store.clone(),
        media: None,
        images: None,
        events: events.clone(),
        jobs: Arc::new(MemoryJobQueue::default()),
        clock: Arc::new(SystemClock),
        key_ring: Arc::new(MasterKeyRing::generate().unwrap()),
        audit: None,
        channels: Arc::new(MemoryChannelRegistry::default()),
        webhooks: None,
        recorder: None,
        unread: Arc::new(MemoryUnreadChecks::default()),
    };
    let chat = ChatService::new(ports, ChatSettings::default());
    let admin = User::new(UserId::new(1).unwrap(), "admin");
    let request = RequestId::new(5).unwrap();
    chat.register_request(&admin, request, UserId::new(7).unwrap(), Vec::new(), false)
        .await
        .unwrap();
    let thread = chat.open_thread(&admin, request).await.unwrap().id;
    let mut announced = events.subscribe().await.unwrap();

    let posts = 40;
    let tasks: Vec<_> = (0..posts)
        .map(|i| {
            let chat = chat.clone();
            let admin = admin.clone();
            tokio::spawn(async move {
                let text = TextBody::parse(&format!("m{i}"), 100).unwrap();
                chat.post_message(&admin, thread, None, || Ok(MessageContent::Text(text)))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut answered = Vec::new();
    for task in tasks {
        answered.push(task.await.unwrap());
    }
    let batches = store.batches.load(Ordering::SeqCst);
    assert!(
        batches < posts / 2,
        "{posts} posts in {batches} store calls"
    );

    let page = chat
        .list_messages(
            &admin,
            thread,
            chat_core::PageRequest {
                before: None,
                limit: 50,
            },
        )
        .await
        .unwrap();
    let listed: Vec<MessageId> = page.messages.iter().map(|m| m.id).collect();
    assert_eq!(listed.len(), posts, "each stored once");
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "in id order");
    answered.sort();
    assert_eq!(answered, listed, "each answered with its own id");
    let mut texts: Vec<String> = page
        .messages
        .iter()
        .map(|m| match &m.content {
            Some(MessageContent::Text(t)) => t.as_str().to_owned(),
            other => panic!("{other:?}"),
        })
        .collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), posts, "every post's own content");

    let mut events_seen = Vec::new();
    while events_seen.len() < posts {
        match announced.next().await.unwrap() {
            Received::Event(ChatEvent::MessageCreated(m)) => events_seen.push(m.id),
            Received::Event(_) => {}
            Received::Missed { .. } => panic!("missed"),
        }
    }
    assert_eq!(events_seen, listed, "announced once each, in id order");
}
