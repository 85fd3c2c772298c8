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
            .settings
            .retention
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
