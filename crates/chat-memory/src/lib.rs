//! In-memory adapters of every chat-core port: the embedded default (`chat-server` with
//! no configuration) and the testers' swap-in. They hold ciphertext only, like every
//! other store. They pass the port contract suites of `chat-contract`, as every
//! adapter does.
#![forbid(unsafe_code)]

mod audit;
mod channels;
mod clock;
mod events;
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
pub use jobs::MemoryJobQueue;
pub use lock::MemoryLeaseLock;
pub use messages::MemoryMessageStore;
pub use rate::MemoryRateCounter;
pub use threads::{MemoryKeyStore, MemoryRequestDirectory, MemoryThreadRepository};
pub use unread::MemoryUnreadChecks;
