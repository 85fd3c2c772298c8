//! A store that fails or slows on demand, over another one: the testers' stand-in for
//! a database or an object store that goes away, or answers slowly.

use async_trait::async_trait;
use chat_core::crypto::SealedContent;
use chat_core::ports::{
    Appended, MediaStore, MessageStore, RetentionCut, SignedUpload, StoreResult,
};
use chat_core::{
    IdempotencyKey, MediaPath, MessageId, MessagePage, StoreError, StoredMessage, ThreadId,
    Timestamp, UserId,
};
use parking_lot::Mutex;
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

/// `inner` (a pointer to the store: an `Arc<dyn MediaStore>`, an
/// `Arc<MemoryMessageStore>`) behind faults a test switches on and off: an outage (every call fails with
/// the error given, as a backend that went away), a number of prefix deletions (a
/// purge's) that fail, and a delay before every write (as a backend across the
/// network). It counts the writes it let through.
pub struct Faulty<P> {
    inner: P,
    outage: Mutex<Option<StoreError>>,
    failing_prefix_deletions: AtomicU32,
    write_delay: Mutex<Duration>,
    writes: AtomicUsize,
}

impl<P> Faulty<P> {
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            outage: Mutex::new(None),
            failing_prefix_deletions: AtomicU32::new(0),
            write_delay: Mutex::new(Duration::ZERO),
            writes: AtomicUsize::new(0),
        }
    }

    /// From now on every call fails with `error` (a message store's `next_id`, which
    /// no backend call backs, excepted); `None` ends the outage.
    pub fn fail_with(&self, error: Option<StoreError>) {
        *self.outage.lock() = error;
    }

    /// The next `n` deletions of a whole prefix (a thread's media, at its purge) fail,
    /// as an object store that is down would.
    pub fn fail_prefix_deletions(&self, n: u32) {
        self.failing_prefix_deletions.store(n, Ordering::SeqCst);
    }

    /// Every write waits `delay` first.
    pub fn slow_writes(&self, delay: Duration) {
        *self.write_delay.lock() = delay;
    }

    /// Writes (message batches, objects) that reached the inner store's call.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    fn check(&self) -> StoreResult<()> {
        match &*self.outage.lock() {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    async fn check_write(&self) -> StoreResult<()> {
        let delay = *self.write_delay.lock();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.check()?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn check_prefix_deletion(&self) -> StoreResult<()> {
        self.check()?;
        let failing = self
            .failing_prefix_deletions
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(StoreError::Unavailable("object store: test outage".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl<P> MessageStore for Faulty<P>
where
    P: Deref + Send + Sync,
    P::Target: MessageStore,
{
    async fn next_id(&self, thread: ThreadId) -> StoreResult<MessageId> {
        self.inner.next_id(thread).await
    }
    async fn append_all(
        &self,
        batch: &[(StoredMessage, Option<IdempotencyKey>)],
        cut: RetentionCut,
    ) -> StoreResult<Vec<Appended>> {
        self.check_write().await?;
        self.inner.append_all(batch, cut).await
    }
    async fn page(
        &self,
        thread: ThreadId,
        before: Option<MessageId>,
        limit: u32,
        expired_before: Option<Timestamp>,
    ) -> StoreResult<MessagePage<StoredMessage>> {
        self.check()?;
        self.inner.page(thread, before, limit, expired_before).await
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
        expired_before: Option<Timestamp>,
    ) -> StoreResult<Vec<u64>> {
        self.check()?;
        self.inner
            .unread_counts(reader, threads, expired_before)
            .await
    }
    async fn redact_thread(&self, thread: ThreadId) -> StoreResult<u64> {
        self.check()?;
        self.inner.redact_thread(thread).await
    }
    async fn delete_expired(
        &self,
        expired_before: Timestamp,
        keep: &[ThreadId],
    ) -> StoreResult<u64> {
        self.check()?;
        self.inner.delete_expired(expired_before, keep).await
    }
    async fn set_hold(&self, thread: ThreadId, hold: bool) -> StoreResult<()> {
        self.check()?;
        self.inner.set_hold(thread, hold).await
    }
}

#[async_trait]
impl<P> MediaStore for Faulty<P>
where
    P: Deref + Send + Sync,
    P::Target: MediaStore,
{
    async fn signed_upload(
        &self,
        thread: ThreadId,
        extension: &str,
        content_type: &str,
        ttl: Duration,
    ) -> StoreResult<SignedUpload> {
        self.check()?;
        self.inner
            .signed_upload(thread, extension, content_type, ttl)
            .await
    }
    async fn put_sealed(&self, path: &MediaPath, sealed: SealedContent) -> StoreResult<bool> {
        self.check_write().await?;
        self.inner.put_sealed(path, sealed).await
    }
    async fn get_sealed(&self, path: &MediaPath) -> StoreResult<Option<SealedContent>> {
        self.check()?;
        self.inner.get_sealed(path).await
    }
    async fn exists(&self, path: &MediaPath) -> StoreResult<bool> {
        self.check()?;
        self.inner.exists(path).await
    }
    async fn delete(&self, path: &MediaPath) -> StoreResult<()> {
        self.check()?;
        self.inner.delete(path).await
    }
    async fn signed_get_url(&self, path: &MediaPath, ttl: Duration) -> StoreResult<String> {
        self.check()?;
        self.inner.signed_get_url(path, ttl).await
    }
    async fn delete_prefix(&self, prefix: &str) -> StoreResult<u64> {
        self.check_prefix_deletion()?;
        self.inner.delete_prefix(prefix).await
    }
}
