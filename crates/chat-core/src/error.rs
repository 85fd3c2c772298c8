//! The errors of the use cases and of the ports.

use crate::crypto::CryptoError;
use crate::validation::ValidationErrors;

/// What a port returns when its backend fails. Adapters map driver errors here; the
/// message is for logs only and must never contain message content.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached, timed out, or refused the write (down, out of
    /// memory, pool exhausted). Nothing was written.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with data the adapter cannot interpret.
    #[error("backend returned corrupt data: {0}")]
    Corrupt(String),
    /// The backend turned the operation down because of concurrent work on the same
    /// rows (a serialization failure, a deadlock, a lock wait that timed out). Nothing
    /// was written; the backend is healthy and a retry is expected to succeed. Still a
    /// `503` to the client, but not an outage to the operator.
    #[error("backend contention: {0}")]
    Contention(String),
    /// The backend refused the operation as wrong: a constraint it violates, a
    /// statement or script the adapter got wrong. Nothing was written, and retrying
    /// will not help: a bug to fix, so a `500`, not a `503`.
    #[error("backend rejected the operation: {0}")]
    Rejected(String),
}

impl StoreError {
    /// Whether the backend may be down (as opposed to busy, wrong or returning junk):
    /// what group commit treats as an outage of the turn.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// The outcome of a use case that did not succeed. The HTTP adapter maps each variant to
/// a status code and logs the cause; it never shows the cause to the client.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// `CHAT_ENABLED=false`.
    #[error("chat is disabled")]
    Disabled,
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    /// Posting to a closed thread, whoever the caller is.
    #[error("thread is closed")]
    ThreadClosed,
    #[error("validation failed")]
    Invalid(ValidationErrors),
    /// A store failed; nothing was accepted.
    #[error("store unavailable")]
    Unavailable(#[from] StoreError),
    /// The thread is under legal hold: nothing of it may be retracted (SPEC §10).
    #[error("the thread is on hold")]
    OnHold,
    /// Stored ciphertext or a wrapped key failed to open: corruption or a missing key.
    #[error("crypto failure")]
    Crypto(#[from] CryptoError),
}

impl From<ValidationErrors> for ChatError {
    fn from(e: ValidationErrors) -> Self {
        Self::Invalid(e)
    }
}
