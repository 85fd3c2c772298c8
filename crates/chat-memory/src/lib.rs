//! In-memory adapters of every chat-core port: the embedded default (`chat-server` with
//! no configuration) and the testers' swap-in. They hold ciphertext only, like every
//! other store. They pass the port contract suites of `chat-contract`, as every
//! adapter does.
#![forbid(unsafe_code)]

mod audit;
mod channels;
mod clock;
mod events;
mod faulty;
mod jobs;
mod lock;
mod messages;
mod rate;
mod threads;
mod unread;

pub use audit::MemoryAuditLog;
pub use channels::MemoryChannelRegistry;
pub use clock::{ManualClock, SystemClock};
pub use events::MemoryEventBus;
pub use faulty::Faulty;
pub use jobs::MemoryJobQueue;
pub use lock::MemoryLeaseLock;
pub use messages::MemoryMessageStore;
pub use rate::MemoryRateCounter;
pub use threads::{MemoryKeyStore, MemoryRequestDirectory, MemoryThreadRepository};
pub use unread::MemoryUnreadChecks;

use chat_core::crypto::KeyRing;
use chat_core::Ports;
use std::sync::Arc;

/// Events a subscriber may fall behind by before it is told it missed some.
const EVENT_BUFFER: usize = 1024;

/// Every port on its in-memory adapter, each empty, over `key_ring` (the master key,
/// from chat-crypto or a KMS): the embedded default and the testers' start. No object
/// storage or image decoding (image messages are refused), no audit sink beside the
/// log, no webhooks, no medical record. Swap any port in with struct update syntax:
/// `Ports { messages: my_store, ..chat_memory::ports(key_ring) }`.
pub fn ports(key_ring: Arc<dyn KeyRing>) -> Ports {
    Ports {
        requests: Arc::new(MemoryRequestDirectory::default()),
        threads: Arc::new(MemoryThreadRepository::default()),
        keys: Arc::new(MemoryKeyStore::default()),
        messages: Arc::new(MemoryMessageStore::default()),
        media: None,
        images: None,
        events: Arc::new(MemoryEventBus::new(EVENT_BUFFER)),
        jobs: Arc::new(MemoryJobQueue::default()),
        clock: Arc::new(SystemClock),
        key_ring,
        audit: None,
        channels: Arc::new(MemoryChannelRegistry::default()),
        webhooks: None,
        recorder: None,
        unread: Arc::new(MemoryUnreadChecks::default()),
    }
}
