//! The unread checks' schedule (SPEC §10) in memory.

use async_trait::async_trait;
use chat_core::ports::{StoreResult, UnreadCheck, UnreadChecks};
use chat_core::{ThreadId, Timestamp};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
struct Entry {
    /// `None`: not due until armed (while held: armed since the claim).
    due: Option<Timestamp>,
    checked_through: Option<Timestamp>,
    generation: i64,
    /// Held by a worker until this instant.
    held_until: Option<Timestamp>,
}

/// One entry per thread, as in PostgreSQL's `chat_unread_checks`.
#[derive(Debug, Default)]
pub struct MemoryUnreadChecks(Mutex<HashMap<ThreadId, Entry>>);

fn earlier(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[async_trait]
impl UnreadChecks for MemoryUnreadChecks {
    async fn arm(&self, thread: ThreadId, due: Timestamp) -> StoreResult<()> {
        let mut entries = self.0.lock();
        let entry = entries.entry(thread).or_default();
        entry.due = earlier(entry.due, Some(due));
        entry.generation += 1;
        Ok(())
    }

    async fn claim(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<UnreadCheck>> {
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::days(1));
        let mut entries = self.0.lock();
        // Due, or held by a worker whose lease ran out.
        let mut due: Vec<(Timestamp, ThreadId)> = entries
            .iter()
            .filter_map(|(thread, e)| {
                let due = match e.held_until {
                    Some(held) => held,
                    None => e.due?,
                };
                (due <= now).then_some((due, *thread))
            })
            .collect();
        due.sort_unstable();
        due.truncate(limit);
        Ok(due
            .into_iter()
            .filter_map(|(_, thread)| {
                let entry = entries.get_mut(&thread)?;
                entry.held_until = Some(until);
                // What arms it from now on is due after this check.
                entry.due = None;
                Some(UnreadCheck {
                    thread,
                    checked_through: entry.checked_through,
                    generation: entry.generation,
                })
            })
            .collect())
    }

    async fn finish(
        &self,
        check: &UnreadCheck,
        checked_through: Timestamp,
        next: Option<Timestamp>,
    ) -> StoreResult<()> {
        let mut entries = self.0.lock();
        let Some(entry) = entries.get_mut(&check.thread) else {
            return Ok(());
        };
        entry.checked_through = entry.checked_through.max(Some(checked_through));
        entry.held_until = None;
        entry.due = if entry.generation == check.generation {
            next
        } else {
            earlier(entry.due, next)
        };
        Ok(())
    }

    async fn forget(&self, thread: ThreadId) -> StoreResult<()> {
        self.0.lock().remove(&thread);
        Ok(())
    }
}
