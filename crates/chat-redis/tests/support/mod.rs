//! What the Redis test binaries share: a message, and posting as the service does.
#![allow(
    clippy::unwrap_used,
    dead_code,
    reason = "tests fail loudly on the unexpected; each test binary uses part of this"
)]

use chat_core::crypto::SealedContent;
use chat_core::ports::{Appended, MessageStore, RetentionCut, StoreResult};
use chat_core::{MessageId, MessageKind, StoredMessage, ThreadId, UserId};

pub fn message(thread: ThreadId, id: MessageId) -> StoredMessage {
    StoredMessage {
        id,
        thread_id: thread,
        sender_id: UserId::new(7).unwrap(),
        kind: MessageKind::Text,
        content: Some(SealedContent::from_bytes(vec![1; 40])),
        // Stores keep microseconds.
        created_at: chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros())
            .unwrap(),
    }
}

/// Posts as the service does: a new id for each append that answers `Behind`.
pub async fn post(
    store: &dyn MessageStore,
    thread: ThreadId,
    cut: RetentionCut,
) -> StoreResult<StoredMessage> {
    loop {
        let message = message(thread, store.next_id(thread).await?);
        if store.append(message.clone(), None, cut).await? == Appended::Stored {
            return Ok(message);
        }
    }
}
