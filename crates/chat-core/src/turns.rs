//! Posts to one thread take turns within the instance, from drawing the message id to
//! the append. Ids then reach the store in the order they were drawn, so within an
//! instance an append is never refused as [`Behind`](crate::ports::Appended::Behind).
//! Without turns, many concurrent posts to one thread (each waiting for a pooled
//! connection with its id already drawn) overtake one another, and a post can keep
//! drawing ids that are refused. Between instances a refusal costs one retry.
//!
//! Turns are handed over in arrival order (tokio's mutex is fair: a FIFO queue of
//! waiters), so a post to a busy thread waits for the posts that arrived before it and
//! is never overtaken again and again by later ones, which is what made one busy
//! thread's p99 a thousand times its median with a mutex that lets newcomers barge.
//!
//! A wait stays bounded when the store is down: a post that finds the store
//! unavailable marks its turn failed, and the posts that were waiting behind it give up
//! at once with the same answer instead of each waiting for the store's deadline in
//! turn.

use crate::ids::ThreadId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// A turn per thread that has a post in flight; entries of threads with none are
/// dropped as the map grows.
#[derive(Debug, Default)]
pub(crate) struct ThreadTurns {
    turns: parking_lot::Mutex<Turns>,
}

#[derive(Debug, Default)]
struct Turns {
    by_thread: HashMap<ThreadId, Weak<Turn>>,
    /// When the map reaches this size, entries nobody holds are dropped.
    sweep_at: usize,
}

#[derive(Debug, Default)]
struct Turn {
    held: Arc<Mutex<()>>,
    /// How many holders found the store unavailable.
    failures: AtomicU64,
}

/// A thread's turn, passed on when dropped.
pub(crate) struct Held {
    turn: Arc<Turn>,
    _guard: OwnedMutexGuard<()>,
}

/// The post ahead found the store unavailable while this one waited.
#[derive(Debug)]
pub(crate) struct AheadFailed;

impl ThreadTurns {
    /// Waits for `thread`'s turn.
    pub(crate) async fn take(&self, thread: ThreadId) -> Result<Held, AheadFailed> {
        let turn = self.turns.lock().of(thread);
        let seen = turn.failures.load(Ordering::Acquire);
        let guard = turn.held.clone().lock_owned().await;
        if turn.failures.load(Ordering::Acquire) != seen {
            return Err(AheadFailed);
        }
        Ok(Held {
            turn,
            _guard: guard,
        })
    }
}

impl Held {
    /// The store was unavailable: the posts waiting now give up.
    pub(crate) fn failed(&self) {
        self.turn.failures.fetch_add(1, Ordering::Release);
    }
}

impl Turns {
    fn of(&mut self, thread: ThreadId) -> Arc<Turn> {
        if let Some(turn) = self.by_thread.get(&thread).and_then(Weak::upgrade) {
            return turn;
        }
        if self.by_thread.len() >= self.sweep_at {
            self.by_thread.retain(|_, turn| turn.strong_count() > 0);
            self.sweep_at = (self.by_thread.len() * 2).max(1024);
        }
        let turn = Arc::new(Turn::default());
        self.by_thread.insert(thread, Arc::downgrade(&turn));
        turn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn thread(n: i64) -> ThreadId {
        ThreadId::new(n).unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn one_turn_per_thread_at_a_time_and_idle_entries_are_dropped() {
        let turns = ThreadTurns::default();
        let free = |n| matches!(turns.take(thread(n)).now_or_never(), Some(Ok(_)));
        let held = turns.take(thread(1)).now_or_never();
        assert!(matches!(held, Some(Ok(_))));
        assert!(free(2), "another thread's turn is free");
        assert!(!free(1), "the same thread's turn waits");
        drop(held);
        assert!(free(1), "and passes on");

        for n in 1..=3000 {
            assert!(free(n));
        }
        let left = turns.turns.lock().by_thread.len();
        assert!(left < 2048, "idle entries dropped: {left} left");
    }

    #[test]
    fn turns_are_handed_over_in_arrival_order() {
        futures::executor::block_on(async {
            let turns = ThreadTurns::default();
            let Ok(first) = turns.take(thread(1)).await else {
                unreachable!()
            };
            let mut waiting: Vec<_> = (0..4).map(|_| Box::pin(turns.take(thread(1)))).collect();
            for w in &mut waiting {
                assert!(futures::poll!(w.as_mut()).is_pending(), "waits its turn");
            }
            drop(first);
            let mut late = Box::pin(turns.take(thread(1)));
            assert!(
                futures::poll!(late.as_mut()).is_pending(),
                "a newcomer does not overtake the posts already waiting"
            );
            for i in 0..waiting.len() {
                for later in &mut waiting[i + 1..] {
                    assert!(futures::poll!(later.as_mut()).is_pending(), "not yet");
                }
                let held = futures::poll!(waiting[i].as_mut());
                assert!(
                    matches!(held, std::task::Poll::Ready(Ok(_))),
                    "waiter {i} is next"
                );
            }
            assert!(matches!(
                futures::poll!(late.as_mut()),
                std::task::Poll::Ready(Ok(_))
            ));
        });
    }

    #[test]
    fn waiters_give_up_when_the_post_ahead_found_the_store_down() {
        futures::executor::block_on(async {
            let turns = ThreadTurns::default();
            let Ok(ahead) = turns.take(thread(1)).await else {
                unreachable!()
            };
            let mut waiting = Box::pin(turns.take(thread(1)));
            assert!((&mut waiting).now_or_never().is_none(), "waits its turn");
            ahead.failed();
            drop(ahead);
            assert!(matches!(waiting.await, Err(AheadFailed)), "gives up");
            assert!(
                turns.take(thread(1)).await.is_ok(),
                "a post that arrives later tries the store itself"
            );
        });
    }
}
