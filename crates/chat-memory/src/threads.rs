use async_trait::async_trait;
use chat_core::crypto::WrappedKey;
use chat_core::ports::{RequestDirectory, StoreResult, ThreadKeyStore, ThreadRepository};
use chat_core::{
    InboxEntry, InboxQuery, MessageId, RequestId, ServiceRequest, Thread, ThreadId, ThreadStatus,
    Timestamp, UserId,
};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default)]
pub struct MemoryRequestDirectory(Mutex<HashMap<RequestId, ServiceRequest>>);

#[async_trait]
impl RequestDirectory for MemoryRequestDirectory {
    async fn upsert(&self, request: ServiceRequest) -> StoreResult<ServiceRequest> {
        self.0.lock().insert(request.id, request.clone());
        Ok(request)
    }

    async fn get(&self, id: RequestId) -> StoreResult<Option<ServiceRequest>> {
        Ok(self.0.lock().get(&id).cloned())
    }
}

#[derive(Debug, Default)]
struct Threads {
    last_id: i64,
    by_id: BTreeMap<ThreadId, Thread>,
    by_request: HashMap<RequestId, ThreadId>,
    /// Each thread's newest message and its time.
    activity: HashMap<ThreadId, (MessageId, Timestamp)>,
    reads: HashMap<ThreadId, BTreeMap<UserId, MessageId>>,
}

#[derive(Debug, Default)]
pub struct MemoryThreadRepository(Mutex<Threads>);

#[async_trait]
impl ThreadRepository for MemoryThreadRepository {
    async fn open_for_request(
        &self,
        request: &ServiceRequest,
        admin: Option<UserId>,
        now: Timestamp,
    ) -> StoreResult<Thread> {
        let mut t = self.0.lock();
        if let Some(id) = t.by_request.get(&request.id).copied() {
            if let Some(thread) = t.by_id.get_mut(&id) {
                if thread.admin_id.is_none() {
                    thread.admin_id = admin;
                }
                return Ok(thread.clone());
            }
        }
        t.last_id += 1;
        let id = ThreadId::new(t.last_id)
            .ok_or_else(|| chat_core::StoreError::Corrupt("thread id overflow".into()))?;
        let thread = Thread {
            id,
            request_id: request.id,
            admin_id: admin,
            client_id: request.client_id,
            status: ThreadStatus::Open,
            opened_at: now,
            closed_at: None,
            staff_ids: request.staff_ids.clone(),
            hold: false,
            record: chat_core::RecordState::None,
        };
        t.by_request.insert(request.id, id);
        t.by_id.insert(id, thread.clone());
        Ok(thread)
    }

    async fn get(&self, id: ThreadId) -> StoreResult<Option<Thread>> {
        Ok(self.0.lock().by_id.get(&id).cloned())
    }

    async fn close(&self, id: ThreadId, now: Timestamp) -> StoreResult<Option<Thread>> {
        let mut t = self.0.lock();
        Ok(t.by_id.get_mut(&id).map(|thread| {
            if thread.status == ThreadStatus::Open {
                thread.status = ThreadStatus::Closed;
                thread.closed_at = Some(now);
            }
            thread.clone()
        }))
    }

    async fn set_hold(&self, id: ThreadId, hold: bool) -> StoreResult<Option<Thread>> {
        let mut t = self.0.lock();
        Ok(t.by_id.get_mut(&id).map(|thread| {
            thread.hold = hold;
            thread.clone()
        }))
    }

    async fn set_record_state(
        &self,
        id: ThreadId,
        state: chat_core::RecordState,
    ) -> StoreResult<()> {
        if let Some(thread) = self.0.lock().by_id.get_mut(&id) {
            thread.record = state;
        }
        Ok(())
    }

    async fn held_threads(&self) -> StoreResult<Vec<ThreadId>> {
        let t = self.0.lock();
        Ok(t.by_id
            .values()
            .filter(|thread| thread.keeps_everything())
            .map(|thread| thread.id)
            .collect())
    }

    async fn closed_threads(
        &self,
        after: Option<ThreadId>,
        limit: u32,
    ) -> StoreResult<Vec<ThreadId>> {
        let t = self.0.lock();
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(t.by_id
            .range((start, std::ops::Bound::Unbounded))
            .filter(|(_, th)| th.status == ThreadStatus::Closed)
            .map(|(id, _)| *id)
            .take(limit as usize)
            .collect())
    }

    async fn set_staff(
        &self,
        request: RequestId,
        staff: &[UserId],
    ) -> StoreResult<Option<(Thread, Vec<UserId>)>> {
        let mut t = self.0.lock();
        let Some(id) = t.by_request.get(&request).copied() else {
            return Ok(None);
        };
        Ok(t.by_id.get_mut(&id).map(|thread| {
            let before = std::mem::replace(&mut thread.staff_ids, staff.to_vec());
            (thread.clone(), before)
        }))
    }

    async fn record_activity(
        &self,
        thread: ThreadId,
        last: MessageId,
        at: Timestamp,
    ) -> StoreResult<()> {
        let mut t = self.0.lock();
        let newest = t.activity.entry(thread).or_insert((last, at));
        if newest.0 < last {
            *newest = (last, at);
        }
        Ok(())
    }

    /// A scan of every thread: this store is for one process and tests, where that is
    /// fast enough; the PostgreSQL store serves the inbox from an index.
    async fn inbox(&self, query: &InboxQuery) -> StoreResult<Vec<InboxEntry>> {
        let t = self.0.lock();
        let mut entries: Vec<InboxEntry> = t
            .by_id
            .values()
            .filter(|thread| query.everyone || thread.is_participant(query.reader))
            .filter(|thread| query.status.is_none_or(|s| thread.status == s))
            .map(|thread| {
                let activity = t.activity.get(&thread.id);
                InboxEntry {
                    thread: thread.clone(),
                    last_message_id: activity.map(|a| a.0),
                    last_message_at: activity.map(|a| a.1),
                    read_up_to: t
                        .reads
                        .get(&thread.id)
                        .and_then(|r| r.get(&query.reader))
                        .copied(),
                }
            })
            .filter(|entry| {
                query.after.is_none_or(|after| {
                    (entry.activity_at(), entry.thread.id) < (after.activity_at, after.thread_id)
                })
            })
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse((e.activity_at(), e.thread.id)));
        entries.truncate(query.limit as usize);
        Ok(entries)
    }

    async fn mark_read(
        &self,
        thread: ThreadId,
        user: UserId,
        up_to: MessageId,
    ) -> StoreResult<MessageId> {
        let mut t = self.0.lock();
        let marker = t
            .reads
            .entry(thread)
            .or_default()
            .entry(user)
            .or_insert(up_to);
        *marker = (*marker).max(up_to);
        Ok(*marker)
    }

    async fn reads(&self, thread: ThreadId) -> StoreResult<Vec<(UserId, MessageId)>> {
        let t = self.0.lock();
        Ok(t.reads
            .get(&thread)
            .map(|r| r.iter().map(|(u, m)| (*u, *m)).collect())
            .unwrap_or_default())
    }

    async fn forget_reads(&self, thread: ThreadId) -> StoreResult<u64> {
        let mut t = self.0.lock();
        Ok(t.reads.remove(&thread).map_or(0, |r| r.len() as u64))
    }
}

#[derive(Debug, Default)]
pub struct MemoryKeyStore(Mutex<BTreeMap<ThreadId, WrappedKey>>);

#[async_trait]
impl ThreadKeyStore for MemoryKeyStore {
    async fn insert_if_absent(&self, thread: ThreadId, key: WrappedKey) -> StoreResult<WrappedKey> {
        Ok(self.0.lock().entry(thread).or_insert(key).clone())
    }

    async fn get(&self, thread: ThreadId) -> StoreResult<Option<WrappedKey>> {
        Ok(self.0.lock().get(&thread).cloned())
    }

    async fn destroy(&self, thread: ThreadId) -> StoreResult<bool> {
        Ok(self.0.lock().remove(&thread).is_some())
    }

    async fn wrapped_under_other_than(
        &self,
        version: &str,
        after: Option<ThreadId>,
        limit: u32,
    ) -> StoreResult<Vec<(ThreadId, WrappedKey)>> {
        let keys = self.0.lock();
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(keys
            .range((start, std::ops::Bound::Unbounded))
            .filter(|(_, k)| k.version() != version)
            .map(|(t, k)| (*t, k.clone()))
            .take(limit as usize)
            .collect())
    }

    async fn replace(
        &self,
        thread: ThreadId,
        old: &WrappedKey,
        new: WrappedKey,
    ) -> StoreResult<bool> {
        let mut keys = self.0.lock();
        match keys.get_mut(&thread) {
            Some(current) if current == old => {
                *current = new;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
