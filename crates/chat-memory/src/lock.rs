use async_trait::async_trait;
use chat_core::ports::{LeaseLock, LockToken, StoreResult};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Locks within one process: enough for a single instance, which is all the in-memory
/// stores serve. Tokens only need to be unique within the process.
#[derive(Debug, Default)]
pub struct MemoryLeaseLock {
    next_token: AtomicU64,
    held: Mutex<HashMap<String, (LockToken, Instant)>>,
}

#[async_trait]
impl LeaseLock for MemoryLeaseLock {
    async fn try_acquire(&self, name: &str, ttl: Duration) -> StoreResult<Option<LockToken>> {
        let now = Instant::now();
        let mut held = self.held.lock();
        if held.get(name).is_some_and(|(_, until)| *until > now) {
            return Ok(None);
        }
        let token = LockToken(self.next_token.fetch_add(1, Ordering::Relaxed).to_string());
        held.insert(name.to_owned(), (token.clone(), now + ttl));
        Ok(Some(token))
    }

    async fn release(&self, name: &str, token: &LockToken) -> StoreResult<bool> {
        let mut held = self.held.lock();
        let live = held
            .get(name)
            .is_some_and(|(t, until)| t == token && *until > Instant::now());
        if live {
            held.remove(name);
        }
        Ok(live)
    }
}
