//! Group commit of a thread's posts. Posts to one thread take turns within the instance
//! (ids must reach the store in the order they were drawn, see [`crate::turns`]); the
//! post whose turn it is appends every post queued behind it as well, in one store
//! call: ids drawn in queue order, each message sealed under its own id, one atomic
//! append of the batch, each post its own answer. So a busy thread costs a store round
//! trip per batch rather than per post, and its rate no longer stops at one post per
//! round trip.
//!
//! Every post waits for the turn itself, so none depends on another post's future to
//! be answered: if the post running a batch is cancelled mid-way (its client went),
//! the posts of that batch find no answer when their own turn comes and answer
//! `Unavailable` (the outcome is in doubt; their idempotency keys resolve it).

use crate::crypto::{MessageAad, ThreadKey};
use crate::error::{ChatError, StoreError};
use crate::ids::{MessageId, ThreadId, UserId};
use crate::model::{IdempotencyKey, MessageKind, StoredMessage, Timestamp};
use crate::ports::{
    Appended, ChatEvent, Clock, EventBus, MessageStore, RetentionCut, ThreadRepository,
};
use crate::retention::Retention;
use crate::turns::{Held, ThreadTurns};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Tries of a post whose append answers [`Appended::Behind`], each with a new id. Posts
/// to a thread take turns within the instance, so a refusal means another instance's
/// post just landed: two tries are enough unless several keep landing in between.
const APPEND_ATTEMPTS: usize = 8;

/// Posts appended in one store call at most.
const MAX_BATCH: usize = 64;

/// A validated post, ready to be sealed once it has its id.
pub(crate) struct ReadyPost {
    pub sender: UserId,
    pub kind: MessageKind,
    pub plaintext: Vec<u8>,
    pub idempotency_key: Option<IdempotencyKey>,
    pub thread_key: Arc<dyn ThreadKey>,
}

/// What the store did with a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Posted {
    /// Stored, with the time it carries.
    Stored(MessageId, crate::Timestamp),
    /// A repeat: the post its idempotency key names.
    Duplicate(MessageId),
}

/// What the appends need of the service.
pub(crate) struct Stores<'a> {
    pub messages: &'a dyn MessageStore,
    /// Told each batch's newest message, which orders the inbox.
    pub threads: &'a dyn ThreadRepository,
    pub events: &'a dyn EventBus,
    pub clock: &'a dyn Clock,
    pub retention: &'a Retention,
}

/// A post waiting in its thread's queue, and its answer once a batch ran it.
struct Slot {
    post: Mutex<Option<ReadyPost>>,
    answer: Mutex<Option<Result<Posted, ChatError>>>,
}

#[derive(Default)]
pub(crate) struct ThreadAppends {
    turns: ThreadTurns,
    queues: Mutex<HashMap<ThreadId, VecDeque<Arc<Slot>>>>,
}

impl ThreadAppends {
    /// Stores `post` in `thread`, in turn, with the posts queued beside it.
    pub(crate) async fn append(
        &self,
        stores: &Stores<'_>,
        thread: ThreadId,
        post: ReadyPost,
    ) -> Result<Posted, ChatError> {
        let slot = Arc::new(Slot {
            post: Mutex::new(Some(post)),
            answer: Mutex::new(None),
        });
        self.queues
            .lock()
            .entry(thread)
            .or_default()
            .push_back(slot.clone());
        let turn = self.turns.take(thread).await;
        if let Some(answer) = slot.answer.lock().take() {
            return answer; // a batch ahead of this turn ran it
        }
        let Ok(turn) = turn else {
            // The post ahead found the store down: give up at once, unless a batch
            // has taken this post already.
            if self.withdraw(thread, &slot) {
                return Err(StoreError::Unavailable(
                    "the post ahead in this thread found the store down".into(),
                )
                .into());
            }
            return Err(cut_off());
        };
        let batch = self.take_queued(thread);
        run_batch(stores, thread, batch, &turn).await;
        drop(turn);
        let answer = slot.answer.lock().take();
        answer.unwrap_or_else(|| Err(cut_off()))
    }

    /// The queued posts of `thread`, oldest first, at most [`MAX_BATCH`].
    fn take_queued(&self, thread: ThreadId) -> Vec<(Arc<Slot>, ReadyPost)> {
        let mut queues = self.queues.lock();
        let Some(queue) = queues.get_mut(&thread) else {
            return Vec::new();
        };
        let mut batch = Vec::new();
        while batch.len() < MAX_BATCH {
            let Some(slot) = queue.pop_front() else { break };
            let post = slot.post.lock().take();
            if let Some(post) = post {
                batch.push((slot, post));
            }
        }
        if queue.is_empty() {
            queues.remove(&thread);
        }
        batch
    }

    /// Takes `slot` out of the queue; `false` when a batch took it already.
    fn withdraw(&self, thread: ThreadId, slot: &Arc<Slot>) -> bool {
        let mut queues = self.queues.lock();
        let Some(queue) = queues.get_mut(&thread) else {
            return false;
        };
        let before = queue.len();
        queue.retain(|queued| !Arc::ptr_eq(queued, slot));
        let withdrawn = queue.len() < before;
        if queue.is_empty() {
            queues.remove(&thread);
        }
        withdrawn
    }
}

/// The answer of a post whose batch never finished (the post running it was cancelled).
fn cut_off() -> ChatError {
    StoreError::Unavailable(
        "the batch holding this post was cut off; its outcome is in doubt".into(),
    )
    .into()
}

/// Appends the batch, retrying with new ids the posts the store found behind its
/// newest, and answers every post. Stored messages are announced in id order, while
/// the turn is held.
async fn run_batch(
    stores: &Stores<'_>,
    thread: ThreadId,
    mut pending: Vec<(Arc<Slot>, ReadyPost)>,
    turn: &Held,
) {
    for _ in 0..APPEND_ATTEMPTS {
        if pending.is_empty() {
            return;
        }
        let now = stores.clock.now();
        let cut = RetentionCut {
            expired_before: stores.retention.expired_before(now),
            keep_newest: stores.retention.max_messages,
        };
        let (batch, sealed) = seal_batch(stores, thread, pending, now).await;
        let results = match stores.messages.append_all(&sealed, cut).await {
            Ok(results) => results,
            Err(error) => {
                if error.is_outage() {
                    turn.failed();
                }
                for (slot, _) in &batch {
                    answer(slot, Err(error.clone().into()));
                }
                return;
            }
        };
        if results.len() != batch.len() {
            let wrong = StoreError::Corrupt("append_all: not one answer per message".into());
            for (slot, _) in &batch {
                answer(slot, Err(wrong.clone().into()));
            }
            return;
        }
        pending = Vec::new();
        let mut newest = None;
        for (((slot, post), (message, _)), result) in batch.into_iter().zip(sealed).zip(results) {
            match result {
                Appended::Stored => {
                    let (id, at) = (message.id, message.created_at);
                    newest = Some((id, at));
                    publish(stores.events, ChatEvent::MessageCreated(message)).await;
                    answer(&slot, Ok(Posted::Stored(id, at)));
                }
                Appended::Duplicate(first) => answer(&slot, Ok(Posted::Duplicate(first))),
                Appended::Behind => {
                    tracing::debug!(thread_id = %thread, message_id = %message.id, "id behind the thread's newest; sealing again");
                    pending.push((slot, post));
                }
            }
        }
        if let Some((last, at)) = newest.filter(|_| !stores.messages.records_thread_activity()) {
            // The posts are stored and answered: activity is for ordering the inbox, so a
            // failure here is logged, and the thread's next post records it again.
            if let Err(error) = stores.threads.record_activity(thread, last, at).await {
                tracing::warn!(thread_id = %thread, %error, "could not record the thread's activity");
            }
        }
    }
    for (slot, _) in pending {
        answer(
            &slot,
            Err(StoreError::Unavailable(format!(
                "no message id above the thread's newest after {APPEND_ATTEMPTS} attempts"
            ))
            .into()),
        );
    }
}

fn answer(slot: &Slot, result: Result<Posted, ChatError>) {
    *slot.answer.lock() = Some(result);
}

/// The posts with a new id each, sealed under it, beside the messages to append; a
/// post whose id or seal failed is answered with the error and left out.
async fn seal_batch(
    stores: &Stores<'_>,
    thread: ThreadId,
    pending: Vec<(Arc<Slot>, ReadyPost)>,
    now: Timestamp,
) -> (
    Vec<(Arc<Slot>, ReadyPost)>,
    Vec<(StoredMessage, Option<IdempotencyKey>)>,
) {
    let mut batch = Vec::with_capacity(pending.len());
    let mut sealed = Vec::with_capacity(pending.len());
    for (slot, post) in pending {
        let id = match stores.messages.next_id(thread).await {
            Ok(id) => id,
            Err(error) => {
                answer(&slot, Err(error.into()));
                continue;
            }
        };
        let aad = MessageAad {
            thread,
            message: id,
            kind: post.kind,
        };
        match post.thread_key.seal(&aad, &post.plaintext) {
            Ok(content) => {
                let message = StoredMessage {
                    id,
                    thread_id: thread,
                    sender_id: post.sender,
                    kind: post.kind,
                    content: Some(content),
                    created_at: now,
                };
                sealed.push((message, post.idempotency_key.clone()));
                batch.push((slot, post));
            }
            Err(error) => answer(&slot, Err(error.into())),
        }
    }
    (batch, sealed)
}

/// Best effort: an event is not a store, so a failure is logged and the write stands.
pub(crate) async fn publish(events: &dyn EventBus, event: ChatEvent) {
    let thread_id = event.thread_id();
    if let Err(error) = events.publish(event).await {
        tracing::warn!(%thread_id, %error, "could not publish the event");
    }
}
