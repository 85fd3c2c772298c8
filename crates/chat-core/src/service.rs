//! The use cases, run over the ports: register a request, open a thread, list, post,
//! close, and the purge that follows a close.

use crate::appends::{Posted, ReadyPost, Stores, ThreadAppends};
use crate::audit::{AuditAction, AuditEvent, AuditOutcome, AuditSink};
use crate::crypto::{KeyRing, MessageAad, ThreadKey};
use crate::error::ChatError;
use crate::ids::{MessageId, RequestId, ThreadId, UserId};
use crate::key_cache::KeyCache;
use crate::media::sniff_image;
use crate::model::{
    IdempotencyKey, MediaPath, MessageContent, MessagePage, MessageView, ServiceRequest,
    StoredMessage, Thread, User,
};
use crate::policy::{Denied, Policy, ThreadAction};
use crate::ports::{
    ChatEvent, Clock, EventBus, ExpiredLeases, JobKind, JobQueue, MediaStore, MessageStore,
    RequestDirectory, SignedUpload, ThreadKeyStore, ThreadRepository, Upload,
};
use crate::retention::Retention;
use crate::validation::ValidationErrors;
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
    pub events: Arc<dyn EventBus>,
    pub jobs: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    pub key_ring: Arc<dyn KeyRing>,
    /// Where audit events go besides the `chat_audit` log target; `None`: the log only.
    pub audit: Option<Arc<dyn AuditSink>>,
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

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub media_deleted: u64,
    pub messages_redacted: u64,
    pub key_destroyed: bool,
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Messages past their TTL, removed from the message store.
    pub expired_messages: u64,
    /// Closed threads whose purge was run again.
    pub closed_threads: u64,
    /// Of those, purges that failed (logged; the next sweep tries again).
    pub purge_failures: u64,
    /// Objects of closed threads that were still there.
    pub media_deleted: u64,
    /// Thread keys of closed threads that were still there.
    pub keys_destroyed: u64,
    /// Messages of closed threads whose ciphertext was still there.
    pub messages_redacted: u64,
    /// Jobs whose worker died, made due again or, out of attempts, failed.
    pub stale_jobs: ExpiredLeases,
}

/// What a master key rotation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Thread keys now wrapped under the active master key.
    pub rewrapped: u64,
    /// Keys changed or destroyed by someone else meanwhile (left as they are).
    pub skipped: u64,
}

/// Closed threads (or keys) handled per store call by the sweep and the rotation.
const BATCH: u32 = 500;

/// Runs the use cases. Cheap to clone; hold one per process.
#[derive(Clone)]
pub struct ChatService {
    ports: Ports,
    settings: Arc<ChatSettings>,
    policy: Policy,
    appends: Arc<ThreadAppends>,
    keys: Arc<KeyCache>,
}

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
        }
    }

    pub fn settings(&self) -> &ChatSettings {
        &self.settings
    }

    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// Registers (or updates) a service request. Admins only.
    pub async fn register_request(
        &self,
        user: &User,
        id: RequestId,
        client_id: UserId,
    ) -> Result<ServiceRequest, ChatError> {
        let result = async {
            self.policy.may_register_request(user).map_err(denied)?;
            let request = ServiceRequest { id, client_id };
            Ok(self.ports.requests.upsert(request).await?)
        }
        .await;
        self.audit(AuditEvent {
            request: Some(id),
            ..self.audit_event(Some(user), AuditAction::RegisterRequest, None, &result)
        });
        result
    }

    /// Waits until the audit sink has stored every event so far: a process calls it
    /// before it exits (under a deadline of its own; the events are in the log anyway).
    pub async fn flush_audit(&self) {
        if let Some(sink) = &self.ports.audit {
            sink.flush().await;
        }
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

    /// Writes an audit event to the log and to the sink.
    fn audit(&self, event: AuditEvent) {
        event.log();
        if let Some(sink) = &self.ports.audit {
            sink.record(&event);
        }
    }

    /// Opens the request's thread, or returns the existing one (also when closed).
    pub async fn open_thread(&self, user: &User, request: RequestId) -> Result<Thread, ChatError> {
        let result = self.open_thread_unaudited(user, request).await;
        let thread = result.as_ref().ok().map(|t| t.id);
        self.audit(AuditEvent {
            request: Some(request),
            ..self.audit_event(Some(user), AuditAction::Open, thread, &result)
        });
        result
    }

    async fn open_thread_unaudited(
        &self,
        user: &User,
        request: RequestId,
    ) -> Result<Thread, ChatError> {
        if !self.policy.enabled {
            return Err(ChatError::Disabled);
        }
        let request = self
            .ports
            .requests
            .get(request)
            .await?
            .ok_or(ChatError::NotFound)?;
        self.policy.may_open(user, &request).map_err(denied)?;
        let admin = user.is_admin().then_some(user.id);
        let thread = self
            .ports
            .threads
            .open_for_request(&request, admin, self.ports.clock.now())
            .await?;
        if !thread.is_closed() {
            self.key_for_writing(thread.id).await?;
        }
        Ok(thread)
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
        Ok(thread)
    }

    /// One page of the thread's messages, oldest first, opened for the reader.
    pub async fn list_messages(
        &self,
        user: &User,
        thread: ThreadId,
        page: PageRequest,
    ) -> Result<MessagePage<MessageView>, ChatError> {
        let result = self.list_messages_unaudited(user, thread, page).await;
        self.audit(self.audit_event(Some(user), AuditAction::List, Some(thread), &result));
        result
    }

    async fn list_messages_unaudited(
        &self,
        user: &User,
        thread: ThreadId,
        page: PageRequest,
    ) -> Result<MessagePage<MessageView>, ChatError> {
        let thread = self
            .authorized_thread(user, thread, ThreadAction::View)
            .await?;
        let now = self.ports.clock.now();
        let stored = self
            .ports
            .messages
            .page(
                thread.id,
                page.before,
                page.limit.clamp(1, PageRequest::MAX_LIMIT),
                self.settings.retention.expired_before(now),
            )
            .await?;
        if stored.messages.is_empty() {
            return Ok(MessagePage::empty());
        }
        // A destroyed key leaves messages that cannot be opened: they read as redacted.
        // A closed thread's key is always read from the store, which is what the purge
        // destroys.
        let key = if thread.is_closed() {
            self.keys.forget(thread.id);
            self.stored_key(thread.id).await?
        } else {
            self.existing_key(thread.id).await?
        };
        let mut messages = Vec::with_capacity(stored.messages.len());
        for message in stored.messages {
            messages.push(self.open_message(key.as_deref(), message).await?);
        }
        Ok(MessagePage {
            messages,
            has_more: stored.has_more,
        })
    }

    /// Opens one stored message for a reader who may see it.
    pub async fn open_message(
        &self,
        key: Option<&dyn ThreadKey>,
        message: StoredMessage,
    ) -> Result<MessageView, ChatError> {
        let content = match (key, &message.content) {
            (Some(key), Some(sealed)) => {
                let aad = MessageAad {
                    thread: message.thread_id,
                    message: message.id,
                    kind: message.kind,
                };
                let plain = key.open(&aad, sealed)?;
                let content = MessageContent::from_plaintext(message.kind, &plain)
                    .ok_or(crate::crypto::CryptoError::Authentication)?;
                Some(content)
            }
            _ => None,
        };
        let media_url = match (&content, &self.ports.media) {
            (Some(MessageContent::Image(path)), Some(media)) => Some(
                media
                    .signed_get_url(path, self.settings.signed_url_ttl)
                    .await?,
            ),
            _ => None,
        };
        Ok(MessageView {
            id: message.id,
            thread_id: message.thread_id,
            sender_id: message.sender_id,
            kind: message.kind,
            content,
            media_url,
            created_at: message.created_at,
        })
    }

    /// Opens a message for real-time delivery (SPEC §6) to sockets whose subscription
    /// `POST /broadcasting/auth` signed after checking the user may list the thread.
    pub async fn open_for_broadcast(
        &self,
        message: StoredMessage,
    ) -> Result<MessageView, ChatError> {
        let key = self.existing_key(message.thread_id).await?;
        self.open_message(key.as_deref(), message).await
    }

    /// Told that `thread` was closed, on this instance or another (its `ThreadClosed`
    /// event): the key this instance may hold in memory is dropped now, before the
    /// purge destroys the stored one.
    pub fn thread_closed(&self, thread: ThreadId) {
        self.keys.forget(thread);
    }

    /// Authorizes, validates (with `content`, run only once the caller may post, as a
    /// Laravel form request does), seals, stores and announces a message.
    ///
    /// With `key`, a repeat of a post that was stored (even one answered `Unavailable`
    /// because the store failed while committing it) returns the stored id, stores
    /// nothing, and announces the stored message again: an event may so reach a
    /// subscriber twice, never not at all (clients key messages by id).
    pub async fn post_message(
        &self,
        user: &User,
        thread: ThreadId,
        key: Option<IdempotencyKey>,
        content: impl FnOnce() -> Result<MessageContent, ValidationErrors> + Send,
    ) -> Result<MessageId, ChatError> {
        let result = self
            .post_message_unaudited(user, thread, key, content)
            .await;
        self.audit(AuditEvent {
            message: result.as_ref().ok().copied(),
            ..self.audit_event(Some(user), AuditAction::Post, Some(thread), &result)
        });
        result
    }

    async fn post_message_unaudited(
        &self,
        user: &User,
        thread: ThreadId,
        key: Option<IdempotencyKey>,
        content: impl FnOnce() -> Result<MessageContent, ValidationErrors> + Send,
    ) -> Result<MessageId, ChatError> {
        let thread = self
            .authorized_thread(user, thread, ThreadAction::Post)
            .await?;
        let mut content = content()?;
        // What is stored and served is the checked, cleaned copy, never the upload.
        let mut checked_copy = None;
        if let MessageContent::Image(upload) = &content {
            let checked = self.checked_image(thread.id, upload).await?;
            checked_copy = Some(checked.clone());
            content = MessageContent::Image(checked);
        }
        let ready = ReadyPost {
            sender: user.id,
            kind: content.kind(),
            plaintext: content.to_plaintext(),
            idempotency_key: key,
            thread_key: self.key_for_writing(thread.id).await?,
        };
        drop(content);
        let stores = Stores {
            messages: self.ports.messages.as_ref(),
            events: self.ports.events.as_ref(),
            clock: self.ports.clock.as_ref(),
            retention: &self.settings.retention,
        };
        match self.appends.append(&stores, thread.id, ready).await? {
            Posted::Stored(id) => Ok(id),
            Posted::Duplicate(first) => {
                if let Some(unused) = &checked_copy {
                    self.delete_unused_copy(unused).await;
                }
                let cut = self
                    .settings
                    .retention
                    .expired_before(self.ports.clock.now());
                self.announce_again(thread.id, first, cut).await;
                Ok(first)
            }
        }
    }

    /// Publishes a stored message again: the repeat of a keyed post whose first try may
    /// have been stored without being announced (its answer was lost, or a store failed
    /// while committing it). Best effort, like every publish.
    async fn announce_again(
        &self,
        thread: ThreadId,
        id: MessageId,
        expired_before: Option<crate::Timestamp>,
    ) {
        let above = MessageId::new(id.get().saturating_add(1));
        match self
            .ports
            .messages
            .page(thread, above, 1, expired_before)
            .await
        {
            Ok(page) => match page.messages.into_iter().find(|m| m.id == id) {
                Some(message) => self.publish(ChatEvent::MessageCreated(message)).await,
                None => {
                    tracing::debug!(%thread, message_id = %id, "repeated post: the message is no longer kept")
                }
            },
            Err(error) => {
                tracing::warn!(%thread, message_id = %id, %error, "repeated post: could not read the message to announce it again");
            }
        }
    }

    /// Signs an upload of an image of `content_type` to a new key under the thread's
    /// prefix (SPEC §3.6). Same access rules as posting; the type must be allowed.
    pub async fn upload_url(
        &self,
        user: &User,
        thread: ThreadId,
        content_type: impl FnOnce() -> Result<String, ValidationErrors> + Send,
    ) -> Result<(SignedUpload, crate::Timestamp), ChatError> {
        let result = self.upload_url_unaudited(user, thread, content_type).await;
        self.audit(self.audit_event(Some(user), AuditAction::UploadUrl, Some(thread), &result));
        result
    }

    async fn upload_url_unaudited(
        &self,
        user: &User,
        thread: ThreadId,
        content_type: impl FnOnce() -> Result<String, ValidationErrors> + Send,
    ) -> Result<(SignedUpload, crate::Timestamp), ChatError> {
        let thread = self
            .authorized_thread(user, thread, ThreadAction::Post)
            .await?;
        let content_type = content_type()?;
        let extension = crate::media::extension_for(&content_type)
            .filter(|_| self.settings.allowed_image_mime.contains(&content_type))
            .ok_or_else(|| {
                ChatError::Invalid(ValidationErrors::single(
                    "contentType",
                    format!(
                        "The content type must be one of: {}.",
                        self.settings.allowed_image_mime.join(", ")
                    ),
                ))
            })?;
        let media = self.media()?;
        let ttl = self.settings.signed_url_ttl;
        let upload = media
            .signed_upload(thread.id, extension, &content_type, ttl)
            .await?;
        let expires_at = self.ports.clock.now()
            + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        Ok((upload, expires_at))
    }

    fn media(&self) -> Result<&Arc<dyn MediaStore>, ChatError> {
        self.ports.media.as_ref().ok_or_else(|| {
            ChatError::Invalid(ValidationErrors::single(
                "mediaPath",
                "Image uploads are not available: no media storage is configured.",
            ))
        })
    }

    /// Closes the thread (idempotent: the first `closed_at` stays), queues its purge and
    /// announces it.
    pub async fn close_thread(&self, user: &User, thread: ThreadId) -> Result<Thread, ChatError> {
        let result = self.close_thread_unaudited(user, thread).await;
        self.audit(self.audit_event(Some(user), AuditAction::Close, Some(thread), &result));
        result
    }

    /// Whether an upload to `thread`'s media may be written now (SPEC §3.6): while it is
    /// open. The service's own upload gateway asks before it stores anything; a closed
    /// thread is `ThreadClosed`, an unknown one `NotFound`.
    pub async fn accepts_upload(&self, thread: ThreadId) -> Result<(), ChatError> {
        let thread = self
            .ports
            .threads
            .get(thread)
            .await?
            .ok_or(ChatError::NotFound)?;
        if thread.is_closed() {
            return Err(ChatError::ThreadClosed);
        }
        Ok(())
    }

    /// Checks that `user` may follow the thread's real-time channel, and audits the
    /// subscription (SPEC §6: `POST /broadcasting/auth` signs only then).
    pub async fn authorize_subscription(
        &self,
        user: &User,
        thread: ThreadId,
    ) -> Result<Thread, ChatError> {
        let result = self
            .authorized_thread(user, thread, ThreadAction::View)
            .await;
        self.audit(self.audit_event(Some(user), AuditAction::Subscribe, Some(thread), &result));
        result
    }

    async fn close_thread_unaudited(
        &self,
        user: &User,
        thread: ThreadId,
    ) -> Result<Thread, ChatError> {
        let thread = self
            .authorized_thread(user, thread, ThreadAction::Close)
            .await?;
        if thread.is_closed() {
            return Ok(thread);
        }
        let now = self.ports.clock.now();
        let closed = self
            .ports
            .threads
            .close(thread.id, now)
            .await?
            .ok_or(ChatError::NotFound)?;
        self.keys.forget(closed.id);
        // The close is stored; a failed enqueue is caught up by the sweep, which purges
        // the media of every closed thread. A presigned upload URL (S3, GCS, Azure)
        // cannot be revoked: the purge runs again once every URL issued for the thread
        // has expired, and removes what such a URL wrote after the close.
        let ttl = chrono::Duration::from_std(self.settings.signed_url_ttl)
            .unwrap_or(chrono::Duration::MAX);
        let mut runs = vec![now];
        if self
            .ports
            .media
            .as_ref()
            .is_some_and(|m| !m.upload_urls_revocable())
        {
            runs.push(now + ttl + chrono::Duration::seconds(5));
        }
        for run_at in runs {
            if let Err(error) = self
                .ports
                .jobs
                .enqueue(JobKind::PurgeThread(closed.id), run_at)
                .await
            {
                tracing::warn!(thread_id = %closed.id, %error, "could not queue the purge job");
            }
        }
        if let Some(closed_at) = closed.closed_at {
            self.publish(ChatEvent::ThreadClosed {
                thread_id: closed.id,
                closed_at,
            })
            .await;
        }
        Ok(closed)
    }

    /// The purge of a closed thread: its media, and with redaction on its data key and
    /// message ciphertext. Idempotent, so a retried or interrupted run converges.
    pub async fn purge_thread(&self, thread: ThreadId) -> Result<PurgeReport, ChatError> {
        let result = self.purge_thread_unaudited(thread).await;
        // The sweep purges every closed thread again; a run that removed nothing is not
        // an access to anything, and would add a row per closed thread per sweep.
        let removed =
            |r: &PurgeReport| r.media_deleted > 0 || r.key_destroyed || r.messages_redacted > 0;
        if result.as_ref().map_or(true, removed) {
            self.audit(self.audit_event(None, AuditAction::Purge, Some(thread), &result));
        }
        result
    }

    async fn purge_thread_unaudited(&self, thread: ThreadId) -> Result<PurgeReport, ChatError> {
        let mut report = PurgeReport::default();
        if let Some(media) = &self.ports.media {
            report.media_deleted = media
                .delete_prefix(&MediaPath::thread_prefix(thread))
                .await?;
        }
        if self.settings.redact_on_close {
            // Key first: once it is gone nothing left can be read, even if the redaction
            // below fails and has to be retried.
            self.keys.forget(thread);
            report.key_destroyed = self.ports.keys.destroy(thread).await?;
            report.messages_redacted = self.ports.messages.redact_thread(thread).await?;
        }
        Ok(report)
    }

    /// Runs the next due background job, if any: claims it, runs it, and completes it or
    /// schedules its retry. Returns what happened, for the caller to log and pace itself.
    pub async fn run_next_job(&self) -> Result<Option<JobOutcome>, ChatError> {
        let now = self.ports.clock.now();
        let Some(job) = self.ports.jobs.claim(now, self.settings.job_lease).await? else {
            return Ok(None);
        };
        let JobKind::PurgeThread(thread) = job.kind;
        let outcome = match self.purge_thread(thread).await {
            Ok(report) => {
                self.ports.jobs.complete(job.id).await?;
                JobOutcome::Done {
                    thread,
                    attempt: job.attempt,
                    report,
                }
            }
            Err(error) => {
                // The error names a store or crypto failure, never content.
                let error = error_chain(&error);
                let retry_at = crate::jobs::retry_delay(job.attempt)
                    .and_then(|d| chrono::Duration::from_std(d).ok())
                    .map(|d| now + d);
                self.ports.jobs.fail(job.id, &error, retry_at).await?;
                match retry_at {
                    Some(at) => JobOutcome::Retrying {
                        thread,
                        attempt: job.attempt,
                        at,
                        error,
                    },
                    None => JobOutcome::Failed {
                        thread,
                        attempt: job.attempt,
                        error,
                    },
                }
            }
        };
        Ok(Some(outcome))
    }

    /// The periodic clean-up (SPEC §5): removes expired messages, runs the purge of
    /// every closed thread again (so media, keys or ciphertext that a failed or lost
    /// purge job left behind go too; a purge that finds nothing costs a listing), and
    /// settles jobs whose worker died. Callers make sure only one instance runs it at a
    /// time (a lease lock). A thread whose purge fails is logged and counted, and the
    /// sweep goes on with the others.
    pub async fn sweep(&self) -> Result<SweepReport, ChatError> {
        let now = self.ports.clock.now();
        let mut report = SweepReport::default();
        if let Some(cut) = self.settings.retention.expired_before(now) {
            report.expired_messages = self.ports.messages.delete_expired(cut).await?;
        }
        let mut after = None;
        loop {
            let closed = self.ports.threads.closed_threads(after, BATCH).await?;
            for &thread in &closed {
                report.closed_threads += 1;
                match self.purge_thread(thread).await {
                    Ok(purged) => {
                        report.media_deleted += purged.media_deleted;
                        report.keys_destroyed += u64::from(purged.key_destroyed);
                        report.messages_redacted += purged.messages_redacted;
                    }
                    Err(error) => {
                        report.purge_failures += 1;
                        let error = error_chain(&error);
                        tracing::warn!(thread_id = %thread, %error, "sweep: purge failed");
                    }
                }
            }
            match closed.last() {
                Some(&last) if closed.len() == BATCH as usize => after = Some(last),
                _ => break,
            }
        }
        report.stale_jobs = self
            .ports
            .jobs
            .expire_leases(now, crate::jobs::MAX_ATTEMPTS)
            .await?;
        Ok(report)
    }

    /// Rewraps every thread key that is not under the active master key (the first of
    /// `CHAT_MASTER_KEYS`), so that the older keys can then leave the ring. Message
    /// ciphertext is untouched: only the small wrapped data keys change. Safe to run
    /// while serving, and again after an interruption.
    pub async fn rotate_master_key(&self) -> Result<RotationReport, ChatError> {
        let active = self.ports.key_ring.active_version().to_owned();
        let mut report = RotationReport::default();
        let mut after = None;
        loop {
            let batch = self
                .ports
                .keys
                .wrapped_under_other_than(&active, after, BATCH)
                .await?;
            for (thread, old) in &batch {
                let new = self.ports.key_ring.rewrap(*thread, old)?;
                if self.ports.keys.replace(*thread, old, new).await? {
                    report.rewrapped += 1;
                } else {
                    report.skipped += 1;
                }
            }
            match batch.last() {
                Some((last, _)) if batch.len() == BATCH as usize => after = Some(*last),
                _ => break,
            }
        }
        Ok(report)
    }

    /// Reads the upload, judges it by its bytes, removes its metadata and stores the
    /// result where no upload URL can write (SPEC §3.6): so what a recipient downloads
    /// is what was checked, and carries no location. The upload itself is never served
    /// (no URL is signed for it) and goes with the thread's media at the purge.
    async fn checked_image(
        &self,
        thread: ThreadId,
        upload: &MediaPath,
    ) -> Result<MediaPath, ChatError> {
        let invalid = |msg: &str| ChatError::Invalid(ValidationErrors::single("mediaPath", msg));
        let media = self.media()?;
        let max = self.settings.max_upload_bytes;
        let bytes = match media.read_upload(upload, max).await? {
            Upload::Bytes(bytes) => bytes,
            Upload::Missing => {
                return Err(invalid("The media path does not name an uploaded file."))
            }
            Upload::TooLarge { .. } => {
                return Err(invalid(&format!(
                    "The image must not be larger than {max} bytes."
                )))
            }
        };
        // Judged by content, and it must be what was declared for the upload (the key's
        // extension), so that the type a URL serves is the type it holds.
        let mime = match sniff_image(&bytes) {
            Some(mime)
                if self.settings.allowed_image_mime.iter().any(|m| m == mime)
                    && crate::media::mime_for_key(upload.as_str()) == Some(mime) =>
            {
                mime
            }
            Some(_) => {
                return Err(invalid(
                    "The uploaded file is not an allowed image type, or not the declared one.",
                ))
            }
            None => return Err(invalid("The uploaded file is not an allowed image type.")),
        };
        let clean = crate::media::without_metadata(mime, &bytes)
            .ok_or_else(|| invalid("The uploaded image could not be read."))?;
        drop(bytes);
        Ok(media.store_checked(thread, mime, clean).await?)
    }

    /// Deletes the checked copy made by a post that turned out to be a repeat. Best
    /// effort: a copy left behind goes with the thread's media at the purge.
    async fn delete_unused_copy(&self, copy: &MediaPath) {
        if let Ok(media) = self.media() {
            if let Err(error) = media.delete(copy).await {
                tracing::warn!(%error, "could not delete an unused checked image");
            }
        }
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
                let fresh = self.ports.key_ring.generate_thread_key(thread)?;
                self.ports.keys.insert_if_absent(thread, fresh).await?
            }
        };
        let key: Arc<dyn ThreadKey> = self.ports.key_ring.unwrap(thread, &wrapped)?.into();
        self.keys.put(thread, key.clone(), now);
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
            self.keys.put(thread, key.clone(), now);
        }
        Ok(key)
    }

    /// The thread's data key as the store holds it now, uncached: `None` once destroyed.
    async fn stored_key(&self, thread: ThreadId) -> Result<Option<Arc<dyn ThreadKey>>, ChatError> {
        match self.ports.keys.get(thread).await? {
            Some(wrapped) => Ok(Some(self.ports.key_ring.unwrap(thread, &wrapped)?.into())),
            None => Ok(None),
        }
    }

    async fn publish(&self, event: ChatEvent) {
        crate::appends::publish(self.ports.events.as_ref(), event).await;
    }
}

/// What [`ChatService::run_next_job`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Done {
        thread: ThreadId,
        attempt: u32,
        report: PurgeReport,
    },
    Retrying {
        thread: ThreadId,
        attempt: u32,
        at: crate::model::Timestamp,
        error: String,
    },
    Failed {
        thread: ThreadId,
        attempt: u32,
        error: String,
    },
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn denied(d: Denied) -> ChatError {
    match d {
        Denied::Disabled => ChatError::Disabled,
        Denied::Forbidden => ChatError::Forbidden,
        Denied::ThreadClosed => ChatError::ThreadClosed,
    }
}
