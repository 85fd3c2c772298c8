//! The ports: what the core needs from the outside world. Adapters implement them;
//! `chat-memory` has the in-memory adapters and `chat-contract` the suites every
//! adapter must pass.
//!
//! # Errors
//!
//! Every method returns a [`StoreError`], with one meaning for all of them unless the
//! method says otherwise:
//! - [`StoreError::Unavailable`]: the backend could not be reached, timed out or
//!   refused for lack of resources. *Nothing was written* (an adapter that cannot
//!   know, because the backend failed while committing, says so on the method:
//!   only [`MessageStore::append_all`] can).
//! - [`StoreError::Contention`]: the backend is up but turned the operation down
//!   because of concurrent work on the same data. Nothing was written; a retry works.
//! - [`StoreError::Rejected`]: the backend refused the operation as wrong (a
//!   violated constraint, a statement the adapter got wrong): a bug, never retried.
//! - [`StoreError::Corrupt`]: the backend answered with something the adapter
//!   cannot read, or the caller broke a precondition the method states.
//!
//! A method never reports "not found" as an error: absence is `Ok(None)`, `Ok(false)`
//! or an empty list, as each method says. Error messages are for logs and carry no
//! content.

use crate::crypto::{SealedContent, WrappedKey};
use crate::error::StoreError;
use crate::ids::{JobId, MessageId, RequestId, ThreadId, UserId};
use crate::model::{
    IdempotencyKey, InboxEntry, InboxQuery, MediaPath, MessagePage, RecordState, ServiceRequest,
    StoredMessage, Thread, Timestamp,
};
use async_trait::async_trait;
use std::num::NonZeroU32;
use std::time::Duration;

pub type StoreResult<T> = Result<T, StoreError>;

/// The service requests the host system registered.
#[async_trait]
pub trait RequestDirectory: Send + Sync {
    /// Creates the request or replaces its client. Returns what is now stored.
    async fn upsert(&self, request: ServiceRequest) -> StoreResult<ServiceRequest>;

    /// `Ok(None)` when no such request was registered.
    async fn get(&self, id: RequestId) -> StoreResult<Option<ServiceRequest>>;
}

/// Chat threads: one per service request, ever.
#[async_trait]
pub trait ThreadRepository: Send + Sync {
    /// Atomically returns the request's thread, creating it (status `open`, `client_id`
    /// from the request, `admin_id = admin`, `opened_at = now`) when none exists. When
    /// the thread exists and has no admin, `admin` is assigned; an assigned admin is
    /// never replaced and a closed thread stays closed. Concurrent calls for one request
    /// return the same thread.
    async fn open_for_request(
        &self,
        request: &ServiceRequest,
        admin: Option<UserId>,
        now: Timestamp,
    ) -> StoreResult<Thread>;

    /// `Ok(None)` when the thread does not exist.
    async fn get(&self, id: ThreadId) -> StoreResult<Option<Thread>>;

    /// Marks the thread closed at `now` unless it already is; either way returns the
    /// thread, whose `closed_at` never changes once set. `Ok(None)` when it does not exist.
    async fn close(&self, id: ThreadId, now: Timestamp) -> StoreResult<Option<Thread>>;

    /// Sets or lifts the thread's legal hold; returns the thread as it is now.
    /// `Ok(None)` when it does not exist.
    async fn set_hold(&self, id: ThreadId, hold: bool) -> StoreResult<Option<Thread>>;

    /// Sets where the thread's transcript is on its way to the medical record.
    async fn set_record_state(&self, id: ThreadId, state: RecordState) -> StoreResult<()>;

    /// Every thread that keeps everything ([`Thread::keeps_everything`]: a legal hold, a
    /// transcript pending or failed): few, by an admin's act or a record's failure.
    async fn held_threads(&self) -> StoreResult<Vec<ThreadId>>;

    /// Closed threads, oldest id first, with id greater than `after`, at most `limit`.
    /// The sweep walks them to find media a failed purge left behind.
    async fn closed_threads(
        &self,
        after: Option<ThreadId>,
        limit: u32,
    ) -> StoreResult<Vec<ThreadId>>;

    /// Gives the request's thread, if it has one, the care team `staff` (distinct,
    /// ascending), at once for every later read and inbox. Returns the thread as it is
    /// now and the team it had before, so the caller can end the removed members'
    /// access. `Ok(None)` when the request has no thread yet.
    async fn set_staff(
        &self,
        request: RequestId,
        staff: &[UserId],
    ) -> StoreResult<Option<(Thread, Vec<UserId>)>>;

    /// The thread's newest message is now `last`, posted at `at`, unless a newer one
    /// was recorded already (the record only moves forward). Orders the inbox.
    async fn record_activity(
        &self,
        thread: ThreadId,
        last: MessageId,
        at: Timestamp,
    ) -> StoreResult<()>;

    /// The reader's threads (where they are the client, the admin or on the team), or
    /// every thread with `everyone`, with `status`, ordered by last activity (the
    /// newest message's time, else the opening), then id, both descending, strictly
    /// after the cursor; at most `limit`, each with the reader's read marker. An
    /// adapter serves this from an index on (participant, status, activity), not a
    /// scan of the reader's threads.
    async fn inbox(&self, query: &InboxQuery) -> StoreResult<Vec<InboxEntry>>;

    /// Moves `user`'s read marker on the thread up to `up_to`, never back. Returns the
    /// marker now (`up_to`, or the higher one it had).
    async fn mark_read(
        &self,
        thread: ThreadId,
        user: UserId,
        up_to: MessageId,
    ) -> StoreResult<MessageId>;

    /// Every read marker of the thread, by user id ascending.
    async fn reads(&self, thread: ThreadId) -> StoreResult<Vec<(UserId, MessageId)>>;

    /// Drops the thread's read markers (its purge). Returns how many.
    async fn forget_reads(&self, thread: ThreadId) -> StoreResult<u64>;
}

/// Wrapped thread data keys.
#[async_trait]
pub trait ThreadKeyStore: Send + Sync {
    /// Stores `key` unless the thread already has one; returns the key now stored (the
    /// existing one when there was one), so concurrent callers agree on a single key.
    async fn insert_if_absent(&self, thread: ThreadId, key: WrappedKey) -> StoreResult<WrappedKey>;

    /// `Ok(None)` when the thread has no key (never had one, or it was destroyed).
    async fn get(&self, thread: ThreadId) -> StoreResult<Option<WrappedKey>>;

    /// Destroys the key for good (crypto-shredding). Returns whether one existed.
    async fn destroy(&self, thread: ThreadId) -> StoreResult<bool>;

    /// Threads whose key is wrapped under a version other than `version`, id ascending,
    /// after `after`, at most `limit`: the work list of a master key rotation.
    async fn wrapped_under_other_than(
        &self,
        version: &str,
        after: Option<ThreadId>,
        limit: u32,
    ) -> StoreResult<Vec<(ThreadId, WrappedKey)>>;

    /// Replaces `old` by `new` if `old` is still the stored key (compare and swap).
    /// Returns whether it replaced it.
    async fn replace(
        &self,
        thread: ThreadId,
        old: &WrappedKey,
        new: WrappedKey,
    ) -> StoreResult<bool>;
}

/// What to keep when appending and what counts as expired when reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionCut {
    /// Messages created strictly before this instant are expired.
    pub expired_before: Option<Timestamp>,
    /// Keep only the newest this many messages of the thread.
    pub keep_newest: Option<NonZeroU32>,
}

impl RetentionCut {
    /// No TTL and no cap: every message is kept.
    pub const KEEP_ALL: Self = Self {
        expired_before: None,
        keep_newest: None,
    };
}

/// What [`MessageStore::append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Appended {
    Stored,
    /// Nothing was stored: the thread already holds a message whose id is at or above
    /// this one (a concurrent post drew a lower id but appended first, or another
    /// instance drew its ids from a clock ahead of this one). The id is bound into the
    /// ciphertext, so the caller draws a new id and seals again.
    Behind,
    /// Nothing was stored: the sender already posted to this thread under the same
    /// idempotency key (and that message is not expired); this is its id.
    Duplicate(MessageId),
}

/// Messages, sealed. The store never sees plaintext.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// A new id for a message of `thread`: greater than every id this store handed out
    /// before for that thread, and than the newest id of any append that answered
    /// [`Appended::Behind`]. Ids may be skipped (an id whose append failed is never
    /// reused). It may be drawn in the instance, with no round trip to the backend.
    async fn next_id(&self, thread: ThreadId) -> StoreResult<MessageId>;

    /// Stores the messages of one thread durably, in order, then drops the thread's
    /// expired messages (by `cut`) and all but the newest `keep_newest`, all in one
    /// atomic step; one answer per message, in order. A message is not stored when
    /// - its key was stored with an earlier message of the same sender and thread (an
    ///   earlier one of this batch included) that is not expired by `cut`:
    ///   [`Appended::Duplicate`] with that message's id;
    /// - the thread already holds an id at or above its own (an earlier one of this
    ///   batch included): [`Appended::Behind`]. So ids are stored in increasing order
    ///   within a thread, and a reader never sees an id appear below one it has
    ///   already seen.
    ///
    /// A key is stored with its message in the same atomic step and removed with it
    /// when it expires (never with any content). `Unavailable` means none was stored,
    /// except when the backend failed while committing: then all may be, and a retry
    /// with the same keys finds them. An adapter never leaves a write it answered
    /// `Unavailable` for to commit later (a deadline rolls it back). A store may
    /// refuse a whole batch as `Behind` when one of its messages is (storing none of
    /// it); the caller retries those with new ids. Messages of several threads in one
    /// batch are the caller's error (`Corrupt` or undefined).
    async fn append_all(
        &self,
        batch: &[(StoredMessage, Option<IdempotencyKey>)],
        cut: RetentionCut,
    ) -> StoreResult<Vec<Appended>>;

    /// Whether [`Self::append_all`] also records each batch's newest stored message as
    /// its thread's activity, in the same commit, in the thread repository this store
    /// shares a database with (then the caller does not record it again). Default: no.
    fn records_thread_activity(&self) -> bool {
        false
    }

    /// [`Self::append_all`] of one message.
    async fn append(
        &self,
        message: StoredMessage,
        key: Option<&IdempotencyKey>,
        cut: RetentionCut,
    ) -> StoreResult<Appended> {
        let answers = self.append_all(&[(message, key.cloned())], cut).await?;
        answers
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("append: no answer".into()))
    }

    /// The newest `limit` messages of `thread` with id `< before` (all when `None`) that
    /// are not expired, returned in ascending id order, and whether older unexpired
    /// messages exist. An unknown thread is an empty page.
    async fn page(
        &self,
        thread: ThreadId,
        before: Option<MessageId>,
        limit: u32,
        expired_before: Option<Timestamp>,
    ) -> StoreResult<MessagePage<StoredMessage>>;

    /// One message of the thread, expired or not; `Ok(None)` when it is not stored.
    async fn get(&self, thread: ThreadId, id: MessageId) -> StoreResult<Option<StoredMessage>>;

    /// Drops one message's content, keeping id, kind, sender and time (a retraction).
    /// Idempotent. Returns whether it had content until now; `false` also when the
    /// message is not stored.
    async fn redact(&self, thread: ThreadId, id: MessageId) -> StoreResult<bool>;

    /// For each `(thread, read marker)`, how many of the thread's messages that are not
    /// expired by `expired_before` have an id above the marker (all, without one) and
    /// were not sent by `reader`: the inbox's `unread`, one answer per thread, in
    /// order. Metadata only: no content is read.
    async fn unread_counts(
        &self,
        reader: UserId,
        threads: &[(ThreadId, Option<MessageId>)],
        expired_before: Option<Timestamp>,
    ) -> StoreResult<Vec<u64>>;

    /// Drops every message's content of `thread`, keeping id, kind, sender and time
    /// (`content` becomes `None`). Idempotent. Returns how many were redacted now.
    async fn redact_thread(&self, thread: ThreadId) -> StoreResult<u64>;

    /// Deletes every message, of every thread but those of `keep`, created before
    /// `expired_before`. Returns how many.
    async fn delete_expired(
        &self,
        expired_before: Timestamp,
        keep: &[ThreadId],
    ) -> StoreResult<u64>;

    /// The thread's legal hold was set or lifted (SPEC §10). A store whose messages
    /// expire by themselves (Redis keys with a time to live) stops that while held and
    /// starts it again when lifted; the others keep nothing of it (the service passes
    /// [`RetentionCut::KEEP_ALL`] for a held thread).
    async fn set_hold(&self, _thread: ThreadId, _hold: bool) -> StoreResult<()> {
        Ok(())
    }
}

/// How a client uploads one object: send its bytes with `method` to `url`, with
/// `headers`.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedUpload {
    /// The key the store chose, under the thread's prefix.
    pub path: MediaPath,
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for SignedUpload {
    // A signed URL is a bearer credential: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignedUpload(<redacted>)")
    }
}

/// Object storage for images (SPEC §3.6). It holds ciphertext only: every object is
/// an image or a thumbnail sealed under its thread's data key ([`SealedContent`],
/// bound to the thread and the object's key), written by the service, which takes the
/// bytes of every upload itself; the URLs it signs are the service's own. Errors: a
/// backend that cannot be reached, refuses the credentials or times out is
/// `Unavailable`; a key it cannot represent is `Corrupt`.
#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Chooses a new random key `chats/{thread}/<random>.{extension}` and signs an
    /// upload of `content_type` to it (the service's own upload route), valid for
    /// `ttl`.
    async fn signed_upload(
        &self,
        thread: ThreadId,
        extension: &str,
        content_type: &str,
        ttl: Duration,
    ) -> StoreResult<SignedUpload>;

    /// Writes `sealed` at `path` unless an object is there already: `false` then, and
    /// nothing written (an upload URL writes its key once).
    async fn put_sealed(&self, path: &MediaPath, sealed: SealedContent) -> StoreResult<bool>;

    /// The object at `path` as stored; `None` when there is none.
    async fn get_sealed(&self, path: &MediaPath) -> StoreResult<Option<SealedContent>>;

    /// Whether an object is at `path`.
    async fn exists(&self, path: &MediaPath) -> StoreResult<bool>;

    /// Deletes one object. Idempotent.
    async fn delete(&self, path: &MediaPath) -> StoreResult<()>;

    /// A URL of the service's own download route that lets its holder GET the object,
    /// opened, until `ttl` has passed.
    async fn signed_get_url(&self, path: &MediaPath, ttl: Duration) -> StoreResult<String>;

    /// Deletes every object whose key starts with `prefix`. Idempotent. Returns how many.
    async fn delete_prefix(&self, prefix: &str) -> StoreResult<u64>;
}

/// Why an image was refused when it was decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ImageRejected {
    /// Its header claims more pixels than allowed (a decompression bomb, or simply too
    /// large): refused before it is decoded.
    #[error("the image has {pixels} pixels, more than the {limit} allowed")]
    TooManyPixels { pixels: u64, limit: u64 },
    /// It does not decode as the image type its bytes announce.
    #[error("the image does not decode")]
    Undecodable,
}

/// Decodes images (SPEC §3.6): checks that one decodes within the limits and makes its
/// thumbnail. Decoding is bounded (pixels, memory) and runs off the async workers.
#[async_trait]
pub trait ImageProcessor: Send + Sync {
    /// The thumbnail of `image` (of `mime`, one of JPEG, PNG or WebP), at most the
    /// configured size on its longer side, encoded as
    /// [`crate::media::thumbnail_type`] says.
    async fn thumbnail(
        &self,
        mime: &'static str,
        image: std::sync::Arc<[u8]>,
    ) -> Result<Vec<u8>, ImageRejected>;
}

/// An event for the thread's real-time channel. Content stays sealed on the bus; the
/// delivering instance opens it for the subscribers it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    MessageCreated(StoredMessage),
    ThreadClosed {
        thread_id: ThreadId,
        closed_at: Timestamp,
    },
    /// A participant's read marker moved (SPEC §3.9).
    MessagesRead {
        thread_id: ThreadId,
        user_id: UserId,
        up_to: MessageId,
    },
    /// A message's content was destroyed by its sender or an admin (SPEC §3.10).
    MessageRetracted {
        thread_id: ThreadId,
        id: MessageId,
    },
    /// A user's first socket joined the thread's presence channel (SPEC §6): every
    /// instance tells its other presence subscribers (`pusher_internal:member_added`).
    MemberAdded {
        thread_id: ThreadId,
        user_id: UserId,
        /// The member's `user_info`, JSON as the grant carried it.
        info: String,
        /// The joining socket, which is told by its own subscription instead.
        origin: String,
    },
    /// A user's last socket left the thread's presence channel.
    MemberRemoved {
        thread_id: ThreadId,
        user_id: UserId,
    },
    /// These users lost their access to the thread (removed from the care team): every
    /// instance ends their live subscriptions to it (SPEC §6), except one an admin's
    /// override granted.
    AccessRevoked {
        thread_id: ThreadId,
        user_ids: Vec<UserId>,
    },
    /// The host's own event (the Pusher HTTP API, SPEC §9.2) for a thread's channel, on
    /// its way to the subscribers on every instance. Relayed, never stored.
    HostEvent {
        thread_id: ThreadId,
        /// On the thread's presence channel (`presence-chat.{id}`), not its private one.
        presence: bool,
        /// The event name, as the host gave it (`NurseEnRoute`).
        name: String,
        /// The data, a string as the host sent it.
        data: String,
        /// A Pusher socket id the host excludes (its `socket_id`), if any.
        except_socket: Option<String>,
    },
    /// Events of this thread may have been lost between an instance and the bus (its
    /// publisher could not reach the bus while the link was down): every instance
    /// closes the thread's subscribed sockets with 4200, so their clients reconnect and
    /// list what they missed (SPEC §6: a subscriber never silently misses an event).
    EventsLost {
        thread_id: ThreadId,
    },
    /// A client event (Pusher `client-…`, such as a typing indicator) on its way to the
    /// thread's other subscribers on every instance. Relayed, never stored or logged.
    ClientEvent {
        thread_id: ThreadId,
        /// On the thread's presence channel (`presence-chat.{id}`), not its private one.
        presence: bool,
        /// Opaque id of the sending socket, which does not get its own event back.
        origin: String,
        /// The event name (`client-typing`).
        name: String,
        /// The JSON the client sent, as text.
        data: String,
    },
}

impl ChatEvent {
    pub fn thread_id(&self) -> ThreadId {
        match self {
            Self::MessageCreated(m) => m.thread_id,
            Self::ThreadClosed { thread_id, .. } => *thread_id,
            Self::ClientEvent { thread_id, .. }
            | Self::HostEvent { thread_id, .. }
            | Self::MemberAdded { thread_id, .. }
            | Self::MemberRemoved { thread_id, .. }
            | Self::MessagesRead { thread_id, .. }
            | Self::MessageRetracted { thread_id, .. }
            | Self::AccessRevoked { thread_id, .. }
            | Self::EventsLost { thread_id } => *thread_id,
        }
    }
}

/// What an [`EventSubscription`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Event(ChatEvent),
    /// Events were lost here: the subscriber fell further behind than the bus buffers,
    /// or the bus's connection dropped and came back. Whoever relays events must tell
    /// its clients to catch up (reconnect and list the thread), never carry on with a
    /// silent gap. `skipped` is how many, when the bus knows (0 when it does not).
    Missed {
        skipped: u64,
    },
}

/// A live feed of events, from [`EventBus::subscribe`].
#[async_trait]
pub trait EventSubscription: Send {
    /// The next event, in the order it was published; `None` when the bus is gone. A
    /// subscriber that falls too far behind does not hold the bus back: it gets
    /// [`Received::Missed`] in place of what it lost.
    async fn next(&mut self) -> Option<Received>;
}

/// Fan-out of events to the subscribers of every instance that follows their thread.
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes to the subscribers of every process that follows the event's thread.
    /// Best effort: an event is not a store, so a failure is `Unavailable` and the
    /// caller logs it without undoing the write.
    async fn publish(&self, event: ChatEvent) -> StoreResult<()>;

    /// This process's feed: the events of the threads it [`follow`](Self::follow)s (a
    /// bus may deliver more; the relay filters by channel anyway).
    async fn subscribe(&self) -> StoreResult<Box<dyn EventSubscription>>;

    /// Routes `thread`'s events to this process's subscriptions for as long as the
    /// returned [`Interest`] lives; returns once an event published from now on will
    /// arrive. Interests in one thread are counted: the thread is unfollowed when the
    /// last one goes. A bus across instances routes by it, so that each instance's bus
    /// work grows with its own sockets' threads, not with the whole system's traffic;
    /// a bus within one process may deliver everything and return [`Interest::unrouted`].
    async fn follow(&self, thread: ThreadId) -> StoreResult<Interest>;
}

/// A process's interest in a thread's events, from [`EventBus::follow`]: dropping it
/// unfollows (the bus counts interests per thread).
#[must_use = "the thread is unfollowed when the interest is dropped"]
pub struct Interest(Option<Box<dyn FnOnce() + Send + Sync>>);

impl Interest {
    /// For a bus that delivers every event to every subscriber anyway.
    pub fn unrouted() -> Self {
        Self(None)
    }

    /// Runs `unfollow` when dropped.
    pub fn on_drop(unfollow: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self(Some(Box::new(unfollow)))
    }
}

impl Drop for Interest {
    fn drop(&mut self) {
        if let Some(unfollow) = self.0.take() {
            unfollow();
        }
    }
}

impl std::fmt::Debug for Interest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Interest(routed)"
        } else {
            "Interest(unrouted)"
        })
    }
}

/// Proof of holding a [`LeaseLock`]: only its holder can release the lock.
#[derive(Clone, PartialEq, Eq)]
pub struct LockToken(pub String);

impl std::fmt::Debug for LockToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockToken(..)")
    }
}

/// A named lock held by one holder at a time, across every instance that shares the
/// backend, for at most its time to live (a holder that dies frees it when that runs
/// out). The sweep takes one so that it never runs twice at once.
#[async_trait]
pub trait LeaseLock: Send + Sync {
    /// Takes `name` for `ttl` unless it is held. `Ok(None)` when someone else holds it.
    async fn try_acquire(&self, name: &str, ttl: Duration) -> StoreResult<Option<LockToken>>;

    /// Frees `name` if `token` still holds it; returns whether it did. A token whose
    /// lease ran out (and perhaps went to someone else) frees nothing.
    async fn release(&self, name: &str, token: &LockToken) -> StoreResult<bool>;
}

/// Attempts counted in a fixed window, and how long until the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    /// Attempts in the current window, the one just counted included.
    pub count: u64,
    pub resets_in: Duration,
}

/// Counts attempts per key in fixed windows, across every instance that shares the
/// backend: what per-user rate limits are built on.
#[async_trait]
pub trait RateCounter: Send + Sync {
    /// Counts one attempt under `key` in its current window of length `window` (a
    /// window opens at the first attempt after the previous one ended).
    async fn hit(&self, key: &str, window: Duration) -> StoreResult<WindowCount>;
}

/// One socket's subscription to a real-time channel, as every instance sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelMember {
    /// The socket, unique across instances (its instance's id and its own).
    pub socket: String,
    /// Who subscribed, when the grant names them.
    pub user: Option<UserId>,
    /// Their `user_info` (JSON) on a presence channel.
    pub info: Option<String>,
}

/// Which sockets are subscribed to which channels, across every instance that shares
/// the backend: what channel occupancy (the Pusher HTTP API) is counted from. Each
/// instance holds its sockets' entries for a while and renews them while they last,
/// so the entries of an instance that died lapse on their own, and one instance then
/// [reaps](Self::reap) them to announce the departures the dead one never sent.
///
/// A member's `socket` is `<instance>.<connection>`: the part before the first `.`
/// names the instance that holds it.
#[async_trait]
pub trait ChannelRegistry: Send + Sync {
    /// Records (or renews) each subscription until `until`; the instances that hold
    /// them count as alive until then.
    async fn hold(
        &self,
        subscriptions: &[(String, ChannelMember)],
        until: Timestamp,
    ) -> StoreResult<()>;

    /// Forgets one subscription (the socket left the channel). Idempotent.
    async fn release(&self, channel: &str, member: &ChannelMember) -> StoreResult<()>;

    /// The channel's subscriptions held past `now`, by socket.
    async fn members(&self, channel: &str, now: Timestamp) -> StoreResult<Vec<ChannelMember>>;

    /// The channels whose name starts with `prefix` that have a subscription held past
    /// `now`, by name, each with how many.
    async fn occupied(&self, prefix: &str, now: Timestamp) -> StoreResult<Vec<(String, u64)>>;

    /// Takes away what instances that stopped renewing (nothing of theirs held past
    /// `now`: they died) still had recorded, and returns it. Each such instance is
    /// handed to one caller only, however many reap at once, so what it leaves is
    /// announced once.
    async fn reap(&self, now: Timestamp) -> StoreResult<Vec<(String, ChannelMember)>>;
}

/// The instance part of a [`ChannelMember::socket`] (`<instance>.<connection>`).
pub fn socket_instance(socket: &str) -> &str {
    socket.split('.').next().unwrap_or(socket)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// Delete the thread's media and, when redaction is on, its key and ciphertext.
    PurgeThread(ThreadId),
    /// Send the closed thread's transcript to the medical record (SPEC §10), then
    /// queue its purge.
    RecordThread(ThreadId),
    /// Deliver a webhook to the host.
    Webhook(WebhookDelivery),
}

/// One webhook for the host (SPEC §9.1), as it is sent on every attempt: its delivery
/// id (the host deduplicates by it) and its body, Pusher's `{"time_ms", "events"}`.
/// Ids and times only: a webhook never carries content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: String,
    pub thread: ThreadId,
    pub body: String,
}

/// Sends a thread's transcript to the provider's FHIR server (SPEC §10).
#[async_trait]
pub trait ThreadRecorder: Send + Sync {
    /// One attempt: `Ok` when the server took it; else why not (no content), and the
    /// job queue retries.
    async fn record(&self, record: &crate::service::ThreadRecord) -> Result<(), String>;
}

/// Sends webhooks to the host.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// One attempt: `Ok` when the host answered `2xx` in time; else why not (no
    /// content), and the job queue retries.
    async fn deliver(&self, delivery: &WebhookDelivery) -> Result<(), String>;
}

/// When each open thread's messages are next checked for recipients who have not
/// read them (SPEC §10, unread escalation): one entry per thread, not one per message,
/// so a busy deployment pays for a check only per thread and per escalation delay.
/// An entry is armed with the time its check is due, claimed by one worker at a time
/// (held for a lease, so a worker that died is replaced), and finished with how far
/// the messages were judged, which no later check judges again.
#[async_trait]
pub trait UnreadChecks: Send + Sync {
    /// Makes sure the thread is checked at `due` at the latest: an entry due later, or
    /// not due at all, or held by a worker, becomes due at `due` (a held one once its
    /// worker finishes, at the earlier of `due` and what that worker asks for).
    async fn arm(&self, thread: ThreadId, due: Timestamp) -> StoreResult<()>;

    /// Up to `limit` threads whose check is due at `now` (oldest due first), each held
    /// until `now + lease`, when it is due again unless finished.
    async fn claim(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<UnreadCheck>>;

    /// The check is done: messages created up to `checked_through` have been judged
    /// (kept as the larger of it and what was there), and the next check is due at
    /// `next` (`None`: not until the thread is armed again). When the thread was armed
    /// while held, the earlier of the two is due.
    async fn finish(
        &self,
        check: &UnreadCheck,
        checked_through: Timestamp,
        next: Option<Timestamp>,
    ) -> StoreResult<()>;

    /// The thread is checked no more (closed, purged); its entry goes.
    async fn forget(&self, thread: ThreadId) -> StoreResult<()>;
}

/// A thread's check, claimed by [`UnreadChecks::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadCheck {
    pub thread: ThreadId,
    /// Messages created up to this were judged by an earlier check.
    pub checked_through: Option<Timestamp>,
    /// Counts the arms: [`UnreadChecks::finish`] compares it to see one that came while
    /// the check ran.
    pub generation: i64,
}

/// A job handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub id: JobId,
    pub kind: JobKind,
    /// 1 on the first run.
    pub attempt: u32,
}

/// Durable background jobs.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Queues a job to run at `run_at`.
    async fn enqueue(&self, kind: JobKind, run_at: Timestamp) -> StoreResult<JobId>;

    /// Takes the oldest due job (run_at <= now) that no live worker holds, marks it
    /// running until `now + lease`, and counts the attempt. A job whose lease expired is
    /// due again. `Ok(None)` when nothing is due.
    async fn claim(&self, now: Timestamp, lease: Duration) -> StoreResult<Option<ClaimedJob>>;

    /// The job succeeded; it is removed.
    async fn complete(&self, id: JobId) -> StoreResult<()>;

    /// The attempt failed: run it again at `run_at`, or with `None` keep it as failed
    /// for good, with `error` (never content) either way.
    async fn fail(&self, id: JobId, error: &str, run_at: Option<Timestamp>) -> StoreResult<()>;

    /// Jobs kept as failed for good.
    async fn failed_count(&self) -> StoreResult<u64>;

    /// Jobs still marked running after their lease ran out at `now` (their worker died
    /// or hung): those with attempts left become due now, those that had already made
    /// `max_attempts` are kept as failed. The sweep calls this, so that a job that kills
    /// its worker every time ends as failed instead of being claimed forever.
    async fn expire_leases(&self, now: Timestamp, max_attempts: u32) -> StoreResult<ExpiredLeases>;
}

/// What [`JobQueue::expire_leases`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiredLeases {
    /// Made due again.
    pub requeued: u64,
    /// Out of attempts: kept as failed.
    pub failed: u64,
}

/// The current time. Tests drive a manual clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}
