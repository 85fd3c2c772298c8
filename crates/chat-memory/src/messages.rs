use async_trait::async_trait;
use chat_core::ports::{Appended, MessageStore, RetentionCut, StoreResult};
use chat_core::{
    IdempotencyKey, MessageId, MessagePage, StoreError, StoredMessage, ThreadId, Timestamp, UserId,
};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};

/// Messages in a map per thread, keyed by id. Ids come from one counter for the whole
/// store, so they increase within every thread.
#[derive(Debug, Default)]
pub struct MemoryMessageStore {
    last_id: AtomicI64,
    threads: Mutex<HashMap<ThreadId, Thread>>,
}

#[derive(Debug, Default)]
struct Thread {
    messages: BTreeMap<MessageId, StoredMessage>,
    /// Idempotency keys by sender: the message each stored, and when.
    keys: HashMap<(UserId, IdempotencyKey), (MessageId, Timestamp)>,
    /// No message here is older: the TTL cut walks the messages only when it is past
    /// this (a removal may leave it older than the oldest left, which costs one walk).
    oldest: Option<Timestamp>,
}

fn is_expired(m: &StoredMessage, expired_before: Option<Timestamp>) -> bool {
    is_expired_at(m.created_at, expired_before)
}

fn is_expired_at(at: Timestamp, expired_before: Option<Timestamp>) -> bool {
    expired_before.is_some_and(|cut| at < cut)
}

#[async_trait]
impl MessageStore for MemoryMessageStore {
    async fn next_id(&self, _thread: ThreadId) -> StoreResult<MessageId> {
        let raw = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        MessageId::new(raw).ok_or_else(|| StoreError::Corrupt("message id overflow".into()))
    }

    async fn append_all(
        &self,
        batch: &[(StoredMessage, Option<IdempotencyKey>)],
        cut: RetentionCut,
    ) -> StoreResult<Vec<Appended>> {
        let mut threads = self.threads.lock();
        let mut answers = Vec::with_capacity(batch.len());
        for (message, key) in batch {
            let thread = threads.entry(message.thread_id).or_default();
            thread
                .keys
                .retain(|_, (_, at)| cut.expired_before.is_none_or(|c| *at >= c));
            let key = key.as_ref().map(|k| (message.sender_id, k.clone()));
            if let Some((first, _)) = key.as_ref().and_then(|k| thread.keys.get(k)) {
                answers.push(Appended::Duplicate(*first));
                continue;
            }
            if thread
                .messages
                .last_key_value()
                .is_some_and(|(&newest, _)| newest >= message.id)
            {
                answers.push(Appended::Behind);
                continue;
            }
            if let Some(key) = key {
                thread.keys.insert(key, (message.id, message.created_at));
            }
            thread.messages.insert(message.id, message.clone());
            let at = message.created_at;
            thread.oldest = Some(thread.oldest.map_or(at, |oldest| oldest.min(at)));
            if thread
                .oldest
                .is_some_and(|oldest| is_expired_at(oldest, cut.expired_before))
            {
                thread
                    .messages
                    .retain(|_, m| !is_expired(m, cut.expired_before));
                thread.oldest = thread.messages.values().map(|m| m.created_at).min();
            }
            if let Some(keep) = cut.keep_newest {
                while thread.messages.len() > keep.get() as usize {
                    thread.messages.pop_first();
                }
            }
            answers.push(Appended::Stored);
        }
        Ok(answers)
    }

    async fn get(&self, thread: ThreadId, id: MessageId) -> StoreResult<Option<StoredMessage>> {
        let threads = self.threads.lock();
        Ok(threads
            .get(&thread)
            .and_then(|t| t.messages.get(&id))
            .cloned())
    }

    async fn redact(&self, thread: ThreadId, id: MessageId) -> StoreResult<bool> {
        let mut threads = self.threads.lock();
        Ok(threads
            .get_mut(&thread)
            .and_then(|t| t.messages.get_mut(&id))
            .and_then(|m| m.content.take())
            .is_some())
    }

    async fn unread_counts(
        &self,
        reader: UserId,
        threads: &[(ThreadId, Option<MessageId>)],
        expired_before: Option<Timestamp>,
    ) -> StoreResult<Vec<u64>> {
        let held = self.threads.lock();
        Ok(threads
            .iter()
            .map(|(thread, marker)| {
                let Some(t) = held.get(thread) else {
                    return 0;
                };
                let after = marker.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
                t.messages
                    .range((after, std::ops::Bound::Unbounded))
                    .filter(|(_, m)| m.sender_id != reader && !is_expired(m, expired_before))
                    .count() as u64
            })
            .collect())
    }

    async fn page(
        &self,
        thread: ThreadId,
        before: Option<MessageId>,
        limit: u32,
        expired_before: Option<Timestamp>,
    ) -> StoreResult<MessagePage<StoredMessage>> {
        let threads = self.threads.lock();
        let Some(Thread { messages, .. }) = threads.get(&thread) else {
            return Ok(MessagePage::empty());
        };
        let end = before.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let mut newest_first = messages
            .range((std::ops::Bound::Unbounded, end))
            .rev()
            .map(|(_, m)| m)
            .filter(|m| !is_expired(m, expired_before));
        let mut page: Vec<StoredMessage> = newest_first
            .by_ref()
            .take(limit as usize)
            .cloned()
            .collect();
        let has_more = newest_first.next().is_some();
        page.reverse();
        Ok(MessagePage {
            messages: page,
            has_more,
        })
    }

    async fn redact_thread(&self, thread: ThreadId) -> StoreResult<u64> {
        let mut threads = self.threads.lock();
        let mut n = 0;
        for m in threads
            .get_mut(&thread)
            .into_iter()
            .flat_map(|t| t.messages.values_mut())
        {
            if m.content.take().is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn delete_expired(
        &self,
        expired_before: Timestamp,
        keep: &[ThreadId],
    ) -> StoreResult<u64> {
        let mut threads = self.threads.lock();
        let mut n = 0;
        for (id, thread) in threads.iter_mut() {
            if keep.contains(id) {
                continue;
            }
            let before = thread.messages.len();
            thread
                .messages
                .retain(|_, m| m.created_at >= expired_before);
            thread.keys.retain(|_, (_, at)| *at >= expired_before);
            n += (before - thread.messages.len()) as u64;
        }
        threads.retain(|_, t| !t.messages.is_empty() || !t.keys.is_empty());
        Ok(n)
    }
}
