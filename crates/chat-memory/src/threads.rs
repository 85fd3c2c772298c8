use async_trait::async_trait;
use chat_core::crypto::WrappedKey;
use chat_core::ports::{RequestDirectory, StoreResult, ThreadKeyStore, ThreadRepository};
use chat_core::{RequestId, ServiceRequest, Thread, ThreadId, ThreadStatus, Timestamp, UserId};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default)]
pub struct MemoryRequestDirectory(Mutex<HashMap<RequestId, ServiceRequest>>);

#[async_trait]
impl RequestDirectory for MemoryRequestDirectory {
    async fn upsert(&self, request: ServiceRequest) -> StoreResult<ServiceRequest> {
        self.0.lock().insert(request.id, request);
        Ok(request)
    }

    async fn get(&self, id: RequestId) -> StoreResult<Option<ServiceRequest>> {
        Ok(self.0.lock().get(&id).copied())
    }
}

#[derive(Debug, Default)]
struct Threads {
    last_id: i64,
    by_id: BTreeMap<ThreadId, Thread>,
    by_request: HashMap<RequestId, ThreadId>,
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
