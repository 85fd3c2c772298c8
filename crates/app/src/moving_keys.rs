//! The memory-only mode's key store (SPEC §4): thread keys in Redis beside their
//! thread's messages, and the keys a previous release left in PostgreSQL read from
//! there once and moved, so an upgrade loses nothing and the database ends up holding
//! no key.

use async_trait::async_trait;
use chat_core::crypto::WrappedKey;
use chat_core::ports::{StoreResult, ThreadKeyStore};
use chat_core::ThreadId;
use std::sync::Arc;

/// Keys in `current`; a key found only in `legacy` is copied to `current` (the one
/// there wins, if another instance moved it first) and then destroyed in `legacy`.
pub struct MovingKeyStore {
    pub current: Arc<dyn ThreadKeyStore>,
    pub legacy: Arc<dyn ThreadKeyStore>,
}

#[async_trait]
impl ThreadKeyStore for MovingKeyStore {
    async fn insert_if_absent(&self, thread: ThreadId, key: WrappedKey) -> StoreResult<WrappedKey> {
        // A thread with a legacy key keeps it: moved first.
        match self.get(thread).await? {
            Some(existing) => Ok(existing),
            None => self.current.insert_if_absent(thread, key).await,
        }
    }

    async fn get(&self, thread: ThreadId) -> StoreResult<Option<WrappedKey>> {
        if let Some(key) = self.current.get(thread).await? {
            return Ok(Some(key));
        }
        let Some(old) = self.legacy.get(thread).await? else {
            return Ok(None);
        };
        let moved = self.current.insert_if_absent(thread, old).await?;
        self.legacy.destroy(thread).await?;
        tracing::info!(thread_id = %thread, "moved a thread key from PostgreSQL to Redis");
        Ok(Some(moved))
    }

    async fn destroy(&self, thread: ThreadId) -> StoreResult<bool> {
        let here = self.current.destroy(thread).await?;
        let there = self.legacy.destroy(thread).await?;
        Ok(here || there)
    }

    async fn wrapped_under_other_than(
        &self,
        version: &str,
        after: Option<ThreadId>,
        limit: u32,
    ) -> StoreResult<Vec<(ThreadId, WrappedKey)>> {
        let mut found = self
            .current
            .wrapped_under_other_than(version, after, limit)
            .await?;
        found.extend(
            self.legacy
                .wrapped_under_other_than(version, after, limit)
                .await?,
        );
        found.sort_by_key(|(thread, _)| *thread);
        found.dedup_by_key(|(thread, _)| *thread);
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn replace(
        &self,
        thread: ThreadId,
        old: &WrappedKey,
        new: WrappedKey,
    ) -> StoreResult<bool> {
        if self.current.replace(thread, old, new.clone()).await? {
            return Ok(true);
        }
        self.legacy.replace(thread, old, new).await
    }
}
