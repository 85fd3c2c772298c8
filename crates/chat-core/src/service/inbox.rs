//! The inbox and read markers (SPEC §3.8, §3.9): metadata only, never content.

use super::*;
use crate::model::InboxCursor;

/// Which of the caller's threads the inbox lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxRequest {
    /// `None`: open and closed.
    pub status: Option<ThreadStatus>,
    /// Every thread, not only the caller's: admins only (`scope=all`).
    pub everyone: bool,
    pub after: Option<InboxCursor>,
    /// 1..=[`InboxRequest::MAX_LIMIT`].
    pub limit: u32,
}

impl InboxRequest {
    pub const MAX_LIMIT: u32 = 50;
    pub const DEFAULT_LIMIT: u32 = 20;
}

impl Default for InboxRequest {
    fn default() -> Self {
        Self {
            status: Some(ThreadStatus::Open),
            everyone: false,
            after: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

impl ChatService {
    /// The caller's threads, newest activity first, each with its unread count: the
    /// messages still kept above the caller's read marker that others sent.
    pub async fn inbox(&self, user: &User, request: InboxRequest) -> Result<InboxPage, ChatError> {
        let result = async {
            if !self.policy.enabled {
                return Err(ChatError::Disabled);
            }
            if request.everyone && !user.is_admin() {
                return Err(ChatError::Forbidden);
            }
            let limit = request.limit.clamp(1, InboxRequest::MAX_LIMIT);
            let mut entries = self
                .ports
                .threads
                .inbox(&InboxQuery {
                    reader: user.id,
                    everyone: request.everyone,
                    status: request.status,
                    after: request.after,
                    limit: limit + 1,
                })
                .await?;
            let has_more = entries.len() > limit as usize;
            entries.truncate(limit as usize);
            let markers: Vec<_> = entries
                .iter()
                .map(|entry| (entry.thread.id, entry.read_up_to))
                .collect();
            let cut = self
                .settings
                .retention
                .expired_before(self.ports.clock.now());
            let unread = match markers.is_empty() {
                true => Vec::new(),
                false => {
                    self.ports
                        .messages
                        .unread_counts(user.id, &markers, cut)
                        .await?
                }
            };
            if unread.len() != entries.len() {
                return Err(
                    StoreError::Corrupt("unread_counts: one answer per thread".into()).into(),
                );
            }
            let next = has_more
                .then(|| entries.last().map(InboxEntry::cursor))
                .flatten();
            Ok(InboxPage {
                threads: entries.into_iter().zip(unread).collect(),
                next,
            })
        }
        .await;
        self.audit(self.audit_event(Some(user), AuditAction::Inbox, None, &result));
        result
    }

    /// Moves the caller's read marker on the thread up to `up_to` (never back, and
    /// never past the thread's newest message), announces it, and returns the marker
    /// now: `None` while the thread holds no message at or below `up_to` to mark.
    pub async fn mark_read(
        &self,
        user: &User,
        thread: ThreadId,
        up_to: MessageId,
    ) -> Result<Option<MessageId>, ChatError> {
        let result = async {
            let thread = self
                .authorized_thread(user, thread, ThreadAction::View)
                .await?;
            let above = MessageId::new(up_to.get().saturating_add(1));
            let newest = self
                .ports
                .messages
                .page(thread.id, above, 1, None)
                .await?
                .messages
                .pop();
            let Some(newest) = newest else {
                let reads = self.ports.threads.reads(thread.id).await?;
                return Ok(reads
                    .into_iter()
                    .find(|(u, _)| *u == user.id)
                    .map(|(_, m)| m));
            };
            let marker = self
                .ports
                .threads
                .mark_read(thread.id, user.id, newest.id)
                .await?;
            self.publish(ChatEvent::MessagesRead {
                thread_id: thread.id,
                user_id: user.id,
                up_to: marker,
            })
            .await;
            Ok(Some(marker))
        }
        .await;
        self.audit(self.audit_event(Some(user), AuditAction::MarkRead, Some(thread), &result));
        result
    }
}
