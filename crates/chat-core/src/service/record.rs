//! The clinical record (SPEC §10): a thread's kept messages, opened, for an export in
//! the provider's format (the FHIR adapter builds the Bundle).

use super::*;
use crate::service::media::OpenedMedia;

/// A thread as it goes to the medical record: its messages still kept, oldest first,
/// each opened (an image with its bytes), and who took part.
#[derive(Debug)]
pub struct ThreadRecord {
    pub thread: Thread,
    pub participants: Vec<UserId>,
    pub messages: Vec<RecordedMessage>,
}

/// One message of a [`ThreadRecord`]: `view.content` is `None` for one retracted or
/// redacted (it goes to the record as entered in error, without content).
#[derive(Debug)]
pub struct RecordedMessage {
    pub view: MessageView,
    /// An image message's image, opened.
    pub image: Option<OpenedMedia>,
}

impl ChatService {
    /// The thread for the medical record (SPEC §10): admins and the staff among its
    /// participants; its client `Forbidden`. Audited as `export`.
    pub async fn export_thread(
        &self,
        user: &User,
        thread: ThreadId,
    ) -> Result<ThreadRecord, ChatError> {
        let result = async {
            let thread = self
                .authorized_thread(user, thread, ThreadAction::Export)
                .await?;
            self.thread_record(thread).await
        }
        .await;
        self.audit(self.audit_event(Some(user), AuditAction::Export, Some(thread), &result));
        result
    }

    /// Every message the thread still keeps, opened, oldest first.
    pub(super) async fn thread_record(&self, thread: Thread) -> Result<ThreadRecord, ChatError> {
        let expired_before = self
            .retention_of(&thread)
            .expired_before(self.ports.clock.now());
        let mut stored = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .ports
                .messages
                .page(thread.id, before, PageRequest::MAX_LIMIT, expired_before)
                .await?;
            before = page.messages.first().map(|m| m.id);
            let more = page.has_more;
            stored.splice(0..0, page.messages);
            if !more || before.is_none() {
                break;
            }
        }
        let key = if thread.is_closed() {
            self.stored_key(thread.id).await?
        } else {
            self.existing_key(thread.id).await?
        };
        let mut messages = Vec::with_capacity(stored.len());
        for message in stored {
            let view = self.open_message(key.as_deref(), message).await?;
            let image = match &view.content {
                Some(MessageContent::Image(path)) => Some(self.open_media(thread.id, path).await?),
                _ => None,
            };
            messages.push(RecordedMessage { view, image });
        }
        Ok(ThreadRecord {
            participants: thread.participants(),
            thread,
            messages,
        })
    }
}

/// The longest reason a legal hold takes, in characters.
pub const HOLD_REASON_MAX_CHARS: usize = 500;

impl ChatService {
    /// Sets or lifts a thread's legal hold (SPEC §10): admins only; setting it needs a
    /// reason (1..=500 characters after trimming), audited with it. While held nothing
    /// of the thread expires, is capped, purged or retracted; lifting it restores the
    /// ordinary rules at once, and a closed thread is purged then.
    pub async fn set_hold(
        &self,
        user: &User,
        thread: ThreadId,
        hold: bool,
        reason: impl FnOnce() -> Result<Option<String>, ValidationErrors> + Send,
    ) -> Result<Thread, ChatError> {
        let mut detail = None;
        let result = async {
            let found = self
                .ports
                .threads
                .get(thread)
                .await?
                .ok_or(ChatError::NotFound)?;
            if !self.policy.enabled {
                return Err(ChatError::Disabled);
            }
            if !user.is_admin() {
                return Err(ChatError::Forbidden);
            }
            let reason = reason()?;
            if hold && reason.is_none() {
                return Err(ChatError::Invalid(ValidationErrors::single(
                    "reason",
                    Invalid::HoldReasonRequired,
                )));
            }
            detail = reason;
            // The stores first: a message store that expires by itself stops before
            // the thread says it is held, and starts again only once it no longer is.
            if hold {
                self.ports.messages.set_hold(found.id, true).await?;
            }
            let updated = self
                .ports
                .threads
                .set_hold(found.id, hold)
                .await?
                .ok_or(ChatError::NotFound)?;
            if !hold {
                // A transcript still on its way to the record keeps the store's hold.
                if !updated.record.keeps_content() {
                    self.ports.messages.set_hold(found.id, false).await?;
                }
                if updated.is_closed() {
                    let now = self.ports.clock.now();
                    if let Err(error) = self
                        .ports
                        .jobs
                        .enqueue(JobKind::PurgeThread(updated.id), now)
                        .await
                    {
                        tracing::warn!(thread_id = %updated.id, %error, "could not queue the purge job; the sweep will purge it");
                    }
                }
            }
            Ok(updated)
        }
        .await;
        let action = if hold {
            AuditAction::Hold
        } else {
            AuditAction::Release
        };
        self.audit(AuditEvent {
            detail,
            ..self.audit_event(Some(user), action, Some(thread), &result)
        });
        result
    }
}

impl ChatService {
    /// One attempt at sending a closed thread's transcript to the medical record (the
    /// `RecordThread` job): the thread's kept messages as FHIR, through the recorder.
    /// On success the thread is `Recorded`, the host gets `thread_recorded`, and the
    /// purge is queued. Returns how many messages went; an error says why (no content).
    pub(super) async fn record_thread(&self, thread: ThreadId) -> Result<usize, String> {
        let recorder = self
            .ports
            .recorder
            .as_ref()
            .ok_or("no FHIR server is configured (CHAT_FHIR_BASE_URL)")?;
        let found = self
            .ports
            .threads
            .get(thread)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the thread is gone")?;
        let (request, held) = (found.request_id, found.hold);
        let record = self.thread_record(found).await.map_err(|e| e.to_string())?;
        recorder.record(&record).await?;
        let messages = record.messages.len();
        drop(record);
        self.ports
            .threads
            .set_record_state(thread, RecordState::Recorded)
            .await
            .map_err(|e| e.to_string())?;
        if !held {
            if let Err(error) = self.ports.messages.set_hold(thread, false).await {
                tracing::warn!(thread_id = %thread, %error, "could not release the store's hold; the purge removes the thread's keys");
            }
        }
        tracing::info!(thread_id = %thread, messages, "transcript recorded");
        self.queue_webhook(crate::webhook::WebhookEvent::ThreadRecorded {
            thread: crate::webhook::OnThread(thread),
            request_id: request,
            messages,
        })
        .await;
        let now = self.ports.clock.now();
        if let Err(error) = self
            .ports
            .jobs
            .enqueue(JobKind::PurgeThread(thread), now)
            .await
        {
            tracing::warn!(thread_id = %thread, %error, "could not queue the purge; the sweep will purge it");
        }
        Ok(messages)
    }

    /// Every attempt at the transcript failed: the thread keeps its content (no TTL,
    /// no cap, no purge) until an admin's retry succeeds; the host hears of it.
    pub(super) async fn record_failed(&self, thread: ThreadId) {
        if let Err(error) = self
            .ports
            .threads
            .set_record_state(thread, RecordState::Failed)
            .await
        {
            tracing::warn!(thread_id = %thread, %error, "could not mark the record as failed");
        }
        let request = match self.ports.threads.get(thread).await {
            Ok(Some(found)) => found.request_id,
            _ => return,
        };
        tracing::error!(thread_id = %thread, "the transcript could not be recorded: the thread's content is kept");
        self.queue_webhook(crate::webhook::WebhookEvent::ThreadRecordFailed {
            thread: crate::webhook::OnThread(thread),
            request_id: request,
        })
        .await;
    }

    /// An admin's `POST …/record` (SPEC §10): sends a closed thread's transcript to the
    /// medical record again at once (the job is queued, due now), whatever became of
    /// the last attempts; its content is kept meanwhile.
    pub async fn record_again(&self, user: &User, thread: ThreadId) -> Result<Thread, ChatError> {
        let result = async {
            let found = self
                .ports
                .threads
                .get(thread)
                .await?
                .ok_or(ChatError::NotFound)?;
            if !self.policy.enabled {
                return Err(ChatError::Disabled);
            }
            if !user.is_admin() {
                return Err(ChatError::Forbidden);
            }
            if self.ports.recorder.is_none() {
                return Err(ChatError::Invalid(ValidationErrors::single(
                    "record",
                    Invalid::NoRecorder,
                )));
            }
            if !found.is_closed() {
                return Err(ChatError::Invalid(ValidationErrors::single(
                    "record",
                    Invalid::ThreadNotClosed,
                )));
            }
            self.ports.messages.set_hold(found.id, true).await?;
            self.ports
                .threads
                .set_record_state(found.id, RecordState::Pending)
                .await?;
            let now = self.ports.clock.now();
            self.ports
                .jobs
                .enqueue(JobKind::RecordThread(found.id), now)
                .await?;
            Ok(Thread {
                record: RecordState::Pending,
                ..found
            })
        }
        .await;
        self.audit(self.audit_event(Some(user), AuditAction::Record, Some(thread), &result));
        result
    }
}
