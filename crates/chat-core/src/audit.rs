//! The audit trail (HIPAA §164.312(b), audit controls): one event per use case run —
//! who, what, which thread, when, and the outcome — and never content.
//!
//! The service writes every event to the `chat_audit` tracing target, and hands it to the
//! [`AuditSink`] of its ports when there is one (the PostgreSQL adapter appends it to a
//! table that refuses updates and deletes).

use crate::error::ChatError;
use crate::ids::{MessageId, RequestId, ThreadId, UserId};
use crate::model::User;
use crate::Timestamp;

/// The tracing target of audit events, for routing them to their own log.
pub const AUDIT_TARGET: &str = "chat_audit";

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum AuditAction {
    RegisterRequest,
    Open,
    List,
    Post,
    Close,
    UploadUrl,
    /// A real-time channel subscription signed for a user.
    Subscribe,
    /// The purge of a closed thread (by the job or the sweep; no user).
    Purge,
    /// An admin acted on a thread they do not participate in (the seed's override),
    /// recorded beside the action itself (SPEC §1).
    AdminOverride,
    /// The inbox was listed (no thread: it spans many).
    Inbox,
    MarkRead,
    Retract,
    /// The thread exported for the medical record (SPEC §10).
    Export,
    /// A legal hold set on the thread, with its reason (SPEC §10).
    Hold,
    /// A legal hold lifted.
    Release,
    /// An admin asked for a thread's transcript to be sent to the record again.
    Record,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum AuditOutcome {
    Ok,
    /// The policy refused the user.
    Denied,
    NotFound,
    /// The thread is closed to posts.
    Closed,
    /// The thread is under legal hold (a retraction refused).
    OnHold,
    Invalid,
    Disabled,
    /// A store or the crypto failed; nothing was done.
    Failed,
}

impl AuditOutcome {
    pub fn of<T>(result: &Result<T, ChatError>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(ChatError::Forbidden) => Self::Denied,
            Err(ChatError::NotFound) => Self::NotFound,
            Err(ChatError::ThreadClosed) => Self::Closed,
            Err(ChatError::OnHold) => Self::OnHold,
            Err(ChatError::Invalid(_)) => Self::Invalid,
            Err(ChatError::Disabled) => Self::Disabled,
            Err(ChatError::Unavailable(_) | ChatError::Crypto(_)) => Self::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One audited action. Identifiers and the outcome only: no content, no media keys,
/// no tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: Timestamp,
    /// `None` for the service's own work (the purge).
    pub actor: Option<UserId>,
    pub role: Option<String>,
    pub action: AuditAction,
    pub thread: Option<ThreadId>,
    pub request: Option<RequestId>,
    /// The message a post created.
    pub message: Option<MessageId>,
    pub outcome: AuditOutcome,
    /// What an admin gave as the reason of a legal hold: their words, never content.
    pub detail: Option<String>,
}

impl AuditEvent {
    pub fn new(
        at: Timestamp,
        user: Option<&User>,
        action: AuditAction,
        outcome: AuditOutcome,
    ) -> Self {
        Self {
            at,
            actor: user.map(|u| u.id),
            role: user.map(|u| u.role.clone()),
            action,
            thread: None,
            request: None,
            message: None,
            outcome,
            detail: None,
        }
    }

    /// Writes the event to the `chat_audit` target (absent ids are left out).
    pub fn log(&self) {
        tracing::info!(
            target: AUDIT_TARGET,
            action = self.action.as_str(),
            outcome = self.outcome.as_str(),
            actor_id = self.actor.map(UserId::get),
            role = self.role.as_deref(),
            thread_id = self.thread.map(ThreadId::get),
            request_id = self.request.map(RequestId::get),
            message_id = self.message.map(MessageId::get),
            detail = self.detail.as_deref(),
            at = %self.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "audit"
        );
    }
}

/// Where audit events are kept besides the log. `record` must not block: an adapter
/// that writes to a database queues the event and writes it in the background.
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync {
    fn record(&self, event: &AuditEvent);

    /// Returns once every event recorded so far is stored (before a process exits).
    async fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are stored (`chat_audit_events`) and logged: they never change.
    #[test]
    fn actions_and_outcomes_keep_their_names() {
        use AuditAction as A;
        use AuditOutcome as O;
        let actions = [
            (A::RegisterRequest, "register_request"),
            (A::Open, "open"),
            (A::List, "list"),
            (A::Post, "post"),
            (A::Close, "close"),
            (A::UploadUrl, "upload_url"),
            (A::Subscribe, "subscribe"),
            (A::Purge, "purge"),
        ];
        for (action, name) in actions {
            assert_eq!(action.as_str(), name);
        }
        let outcomes = [
            (O::Ok, "ok"),
            (O::Denied, "denied"),
            (O::NotFound, "not_found"),
            (O::Closed, "closed"),
            (O::Invalid, "invalid"),
            (O::Disabled, "disabled"),
            (O::Failed, "failed"),
        ];
        for (outcome, name) in outcomes {
            assert_eq!(outcome.as_str(), name);
        }
    }
}
