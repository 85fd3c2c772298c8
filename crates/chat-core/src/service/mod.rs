//! The use cases, run over the ports: register a request, open a thread, list, post,
//! close, and the purge that follows a close.

use crate::appends::{Posted, ReadyPost, Stores, ThreadAppends};
use crate::audit::{AuditAction, AuditEvent, AuditOutcome, AuditSink};
use crate::crypto::{KeyRing, MessageAad, ThreadKey};
use crate::error::{ChatError, StoreError};
use crate::ids::{MessageId, RequestId, ThreadId, UserId};
use crate::key_cache::KeyCache;
use crate::model::{
    IdempotencyKey, InboxEntry, InboxPage, InboxQuery, MediaPath, MessageContent, MessageKind,
    MessageList, MessageView, RecordState, ServiceRequest, StoredMessage, Thread, ThreadStatus,
    User,
};
use crate::policy::{Denied, Policy, ThreadAction};
use crate::ports::{
    ChannelRegistry, ChatEvent, ClaimedJob, Clock, EventBus, EventSubscription, ExpiredLeases,
    ImageProcessor, Interest, JobKind, JobQueue, MediaStore, MessageStore, RequestDirectory,
    SignedUpload, ThreadKeyStore, ThreadRecorder, ThreadRepository, UnreadCheck, UnreadChecks,
    WebhookDelivery, WebhookSender,
};
use crate::retention::Retention;
use crate::validation::{Invalid, ValidationErrors};
use std::sync::Arc;
use std::time::Duration;

/// The adapters the service runs on.
#[derive(Clone)]
pub struct Ports {
    pub requests: Arc<dyn RequestDirectory>,
    pub threads: Arc<dyn ThreadRepository>,
    pub keys: Arc<dyn ThreadKeyStore>,
    pub messages: Arc<dyn MessageStore>,
    /// `None` until object storage is configured: image messages are then refused.
    pub media: Option<Arc<dyn MediaStore>>,
    /// Decodes uploaded images and makes their thumbnails; `None`: uploads are refused.
    pub images: Option<Arc<dyn ImageProcessor>>,
    pub events: Arc<dyn EventBus>,
    pub jobs: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    pub key_ring: Arc<dyn KeyRing>,
    /// Where audit events go besides the `chat_audit` log target; `None`: the log only.
    pub audit: Option<Arc<dyn AuditSink>>,
    /// Every instance's real-time subscriptions: who is online in a thread.
    pub channels: Arc<dyn ChannelRegistry>,
    /// The host's webhooks (`CHAT_WEBHOOK_URL`); `None`: none are sent.
    pub webhooks: Option<Arc<dyn WebhookSender>>,
    /// The provider's FHIR server (`CHAT_FHIR_BASE_URL`); `None`: no transcript goes
    /// to the medical record at close.
    pub recorder: Option<Arc<dyn ThreadRecorder>>,
    /// When each thread is next checked for unread messages (SPEC §10, used only with
    /// [`ChatSettings::unread_escalation`] and webhooks).
    pub unread: Arc<dyn UnreadChecks>,
}

/// The settings the use cases obey.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatSettings {
    /// The feature flag (`CHAT_ENABLED`).
    pub enabled: bool,
    pub retention: Retention,
    /// Longest text message, in characters after trimming.
    pub max_text_chars: usize,
    /// Largest image object, in bytes.
    pub max_upload_bytes: u64,
    /// Image types accepted, judged by content.
    pub allowed_image_mime: Vec<String>,
    /// Lifetime of signed media URLs.
    pub signed_url_ttl: Duration,
    /// Whether the purge destroys the thread key and message ciphertext.
    pub redact_on_close: bool,
    /// How long a claimed job may run before another worker may take it over.
    pub job_lease: Duration,
    /// `CHAT_UNREAD_ESCALATION_SECS`: a message some recipient has not read this long
    /// after it was posted sends `message_unread` (with webhooks). `None`: off.
    pub unread_escalation: Option<Duration>,
    /// Webhook events in batches: `None`, each event is queued at once, as a delivery
    /// of its own.
    pub webhook_batch: Option<WebhookBatching>,
}

/// Webhook events wait in memory, `max_events` at most, until
/// [`ChatService::flush_webhooks`], which the host process calls every `wait`, queues
/// them as one delivery: one job row, one request, one signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookBatching {
    pub max_events: std::num::NonZeroUsize,
    pub wait: Duration,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            retention: Retention::default(),
            max_text_chars: 4000,
            max_upload_bytes: 10 * 1024 * 1024,
            allowed_image_mime: ["image/jpeg", "image/png", "image/webp"]
                .map(String::from)
                .to_vec(),
            signed_url_ttl: Duration::from_secs(900),
            redact_on_close: true,
            job_lease: crate::jobs::JOB_LEASE,
            unread_escalation: None,
            webhook_batch: None,
        }
    }
}

/// A request for one page of messages. `limit` is 1..=50.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub before: Option<MessageId>,
    pub limit: u32,
}

impl PageRequest {
    pub const MAX_LIMIT: u32 = 50;
    pub const DEFAULT_LIMIT: u32 = 20;
}

/// The newest [`DEFAULT_LIMIT`](PageRequest::DEFAULT_LIMIT) messages.
impl Default for PageRequest {
    fn default() -> Self {
        Self {
            before: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// Runs the use cases. Cheap to clone; hold one per process.
#[derive(Clone)]
pub struct ChatService {
    ports: Ports,
    settings: Arc<ChatSettings>,
    policy: Policy,
    appends: Arc<ThreadAppends>,
    keys: Arc<KeyCache>,
    unread_armed: Arc<unread::ArmedThreads>,
    /// Webhook events waiting for the next batch (with `webhook_batch`).
    waiting_webhooks: Arc<parking_lot::Mutex<Vec<crate::webhook::WebhookEvent>>>,
}

pub use media::OpenedMedia;
pub use record::{RecordedMessage, ThreadRecord, HOLD_REASON_MAX_CHARS};
mod inbox;
mod maintenance;
pub mod media;
mod messages;
mod record;
mod threads;
mod unread;
mod webhooks;

pub use inbox::InboxRequest;
pub use maintenance::{JobOutcome, PurgeReport, RotationReport, SweepReport};
pub use unread::{UnreadReport, UNREAD_CHECKS_AT_ONCE, UNREAD_CHECK_LEASE};

impl ChatService {
    pub fn new(ports: Ports, settings: ChatSettings) -> Self {
        let policy = Policy {
            enabled: settings.enabled,
        };
        Self {
            ports,
            settings: Arc::new(settings),
            policy,
            appends: Arc::default(),
            keys: Arc::default(),
            unread_armed: Arc::default(),
            waiting_webhooks: Arc::default(),
        }
    }

    pub fn settings(&self) -> &ChatSettings {
        &self.settings
    }

    /// The audit event of a use case on `thread` that ended with `result`.
    fn audit_event<T>(
        &self,
        user: Option<&User>,
        action: AuditAction,
        thread: Option<ThreadId>,
        result: &Result<T, ChatError>,
    ) -> AuditEvent {
        let outcome = AuditOutcome::of(result);
        AuditEvent {
            thread,
            ..AuditEvent::new(self.ports.clock.now(), user, action, outcome)
        }
    }

    /// The retention rules a thread obeys: none under legal hold, nor while its
    /// transcript is on its way to the medical record (SPEC §10).
    fn retention_of(&self, thread: &Thread) -> &Retention {
        if thread.keeps_everything() {
            &Retention::KEEP_ALL
        } else {
            &self.settings.retention
        }
    }

    /// Writes an audit event to the log and to the sink.
    fn audit(&self, event: AuditEvent) {
        event.log();
        if let Some(sink) = &self.ports.audit {
            sink.record(&event);
        }
    }

    /// A thread the user may act on, or why not: unknown is `NotFound`, someone else's
    /// is `Forbidden`.
    pub async fn authorized_thread(
        &self,
        user: &User,
        id: ThreadId,
        action: ThreadAction,
    ) -> Result<Thread, ChatError> {
        if !self.policy.enabled {
            return Err(ChatError::Disabled);
        }
        let thread = self
            .ports
            .threads
            .get(id)
            .await?
            .ok_or(ChatError::NotFound)?;
        self.policy
            .authorize(user, &thread, action)
            .map_err(denied)?;
        if Policy::is_override(user, &thread) {
            let allowed: Result<(), ChatError> = Ok(());
            self.audit(self.audit_event(
                Some(user),
                AuditAction::AdminOverride,
                Some(id),
                &allowed,
            ));
        }
        Ok(thread)
    }

    fn media(&self) -> Result<&Arc<dyn MediaStore>, ChatError> {
        self.ports.media.as_ref().ok_or_else(|| {
            ChatError::Invalid(ValidationErrors::single(
                "mediaPath",
                Invalid::NoMediaStorage,
            ))
        })
    }

    /// The data key of an open thread, made when it has none yet; cached.
    async fn key_for_writing(&self, thread: ThreadId) -> Result<Arc<dyn ThreadKey>, ChatError> {
        let now = self.ports.clock.now();
        if let Some(key) = self.keys.get(thread, now) {
            return Ok(key);
        }
        let wrapped = match self.ports.keys.get(thread).await? {
            Some(wrapped) => wrapped,
            None => {
                let fresh = self.ports.key_ring.generate_thread_key(thread).await?;
                self.ports.keys.insert_if_absent(thread, fresh).await?
            }
        };
        let key: Arc<dyn ThreadKey> = self.ports.key_ring.unwrap(thread, &wrapped).await?.into();
        self.keys
            .put(thread, key.clone(), now, self.ports.key_ring.cache_bound());
        Ok(key)
    }

    /// The data key of a thread that is (or was just now) open, if it has one; cached.
    async fn existing_key(
        &self,
        thread: ThreadId,
    ) -> Result<Option<Arc<dyn ThreadKey>>, ChatError> {
        let now = self.ports.clock.now();
        if let Some(key) = self.keys.get(thread, now) {
            return Ok(Some(key));
        }
        let key = self.stored_key(thread).await?;
        if let Some(key) = &key {
            self.keys
                .put(thread, key.clone(), now, self.ports.key_ring.cache_bound());
        }
        Ok(key)
    }

    /// Drops the thread's unwrapped key from this instance's memory: the cache here and
    /// the key ring's own (a key service's ring caches what it unwrapped).
    fn forget_key(&self, thread: ThreadId) {
        self.keys.forget(thread);
        self.ports.key_ring.forget(thread);
    }

    /// The thread's data key as the store holds it now, uncached: `None` once destroyed.
    async fn stored_key(&self, thread: ThreadId) -> Result<Option<Arc<dyn ThreadKey>>, ChatError> {
        match self.ports.keys.get(thread).await? {
            Some(wrapped) => Ok(Some(
                self.ports.key_ring.unwrap(thread, &wrapped).await?.into(),
            )),
            None => Ok(None),
        }
    }

    async fn publish(&self, event: ChatEvent) {
        crate::appends::publish(self.ports.events.as_ref(), event).await;
    }
}

fn denied(d: Denied) -> ChatError {
    match d {
        Denied::Disabled => ChatError::Disabled,
        Denied::Forbidden => ChatError::Forbidden,
        Denied::ThreadClosed => ChatError::ThreadClosed,
    }
}
