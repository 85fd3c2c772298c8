//! Port contract suites: one async function per port, checking every behaviour the
//! port documents. An adapter crate calls them from its own tests with its adapter
//! (`chat-memory/tests/contract.rs`, and the same in chat-postgres and chat-redis).
//! They panic on the first broken rule. A crate of its own, a dev-dependency only: no
//! test code is linked into `chat-server`.
//!
//! Ids come from [`fresh_id`], so the suites can share one database with other tests.
// Test code: a failed expectation is meant to panic with its message.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on what it does not expect"
)]

use chat_core::crypto::{SealedContent, WrappedKey};
use chat_core::ports::{
    Appended, ChatEvent, EventBus, JobKind, JobQueue, LeaseLock, LockToken, MessageStore,
    RateCounter, Received, RequestDirectory, RetentionCut, ThreadKeyStore, ThreadRepository,
};
use chat_core::{
    IdempotencyKey, MessageId, MessageKind, RequestId, ServiceRequest, StoredMessage, ThreadId,
    ThreadStatus, Timestamp, UserId,
};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// One `#[tokio::test]` per suite, each over its own adapter, named after the suite:
///
/// ```ignore
/// chat_contract::suites! {
///     message_store => MemoryMessageStore::default(),
///     job_queue => MemoryJobQueue::default(),
/// }
/// ```
///
/// or, when every suite needs a backend of its own set up first (an async `setup`
/// giving a guard that keeps the backend, and the adapter):
///
/// ```ignore
/// chat_contract::suites! {
///     with migrated_store() => message_store, job_queue
/// }
/// ```
#[macro_export]
macro_rules! suites {
    (with $setup:expr => $($suite:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $suite() {
            let (_backend, adapter) = $setup.await;
            $crate::$suite(&adapter).await;
        }
    )*};
    ($($suite:ident => $adapter:expr),* $(,)?) => {$(
        #[tokio::test]
        async fn $suite() {
            $crate::$suite(&$adapter).await;
        }
    )*};
}

mod channels;
mod events;
mod inbox;
mod jobs;
mod locks;
mod media;
mod messages;
mod threads;
mod unread;

pub use channels::{channel_registry, channel_registry_reaping};
pub use events::{event_bus, event_bus_lag, event_bus_routing};
pub use inbox::{care_team_and_inbox, message_retraction_and_unread};
pub use jobs::job_queue;
pub use locks::{lease_lock, rate_counter};
pub use media::{media_store, UrlCheck};
pub use messages::message_store;
pub use threads::{request_directory, thread_key_store, thread_repository};
pub use unread::unread_checks;

/// An id unlikely to collide with one another test run made in the same store.
pub fn fresh_id() -> i64 {
    static NEXT: AtomicI64 = AtomicI64::new(0);
    let base = chrono::Utc::now().timestamp_micros() % 1_000_000_000_000;
    base * 1000 + NEXT.fetch_add(1, Ordering::Relaxed) % 1000 + 1
}

fn at(secs: i64) -> Timestamp {
    chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(1_700_000_000 + secs)
}

fn uid(n: i64) -> UserId {
    UserId::new(n).unwrap()
}

fn sealed(tag: u8) -> SealedContent {
    SealedContent::from_bytes(vec![tag; 40])
}
