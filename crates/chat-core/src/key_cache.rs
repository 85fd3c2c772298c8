//! Unwrapped thread keys kept in memory for a short while, so that a post or a
//! real-time delivery does not read and unwrap the thread's key from the store each
//! time (one statement and one unwrap fewer per post; the delivery path otherwise
//! needs a store round trip per event and falls behind under load).
//!
//! A key is cached only for a thread known to be open. It is dropped when the thread is
//! closed or purged here, when any instance's `ThreadClosed` event arrives, and at the
//! latest [`KEY_CACHE_TTL`] after it was read, so a destroyed key does not outlive its
//! destruction in any instance's memory by more than that.

use crate::crypto::ThreadKey;
use crate::ids::ThreadId;
use crate::model::Timestamp;
use parking_lot::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::sync::Arc;

/// How long an unwrapped key stays cached after it was read from the store.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Threads whose keys are cached at most; past it, expired entries go first, then all.
const CAPACITY: usize = 10_000;

/// A cached key and the instant it must be read again.
type Entry = (Arc<dyn ThreadKey>, Timestamp);

#[derive(Default)]
pub(crate) struct KeyCache {
    keys: Mutex<HashMap<ThreadId, Entry>>,
}

impl KeyCache {
    fn keys(&self) -> MutexGuard<'_, HashMap<ThreadId, Entry>> {
        self.keys.lock()
    }

    /// The cached key of `thread`, unless it was read more than the TTL before `now`.
    pub(crate) fn get(&self, thread: ThreadId, now: Timestamp) -> Option<Arc<dyn ThreadKey>> {
        let mut keys = self.keys();
        match keys.get(&thread) {
            Some((key, until)) if *until > now => Some(key.clone()),
            Some(_) => {
                keys.remove(&thread);
                None
            }
            None => None,
        }
    }

    /// Caches `key` for [`KEY_CACHE_TTL`], or `bound` when shorter (a key ring may bound
    /// how long what it unwrapped stays in memory).
    pub(crate) fn put(
        &self,
        thread: ThreadId,
        key: Arc<dyn ThreadKey>,
        now: Timestamp,
        bound: Option<std::time::Duration>,
    ) {
        let ttl = bound.map_or(KEY_CACHE_TTL, |b| b.min(KEY_CACHE_TTL));
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::zero());
        let mut keys = self.keys();
        if keys.len() >= CAPACITY {
            keys.retain(|_, (_, until)| *until > now);
            if keys.len() >= CAPACITY {
                keys.clear();
            }
        }
        keys.insert(thread, (key, now + ttl));
    }

    pub(crate) fn forget(&self, thread: ThreadId) {
        self.keys().remove(&thread);
    }
}
