//! What the chat routes share.

use crate::limits::RateLimits;
use crate::tokens::TokenVerifier;
use chat_core::ChatService;
use std::sync::Arc;

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub service: ChatService,
    pub tokens: Arc<TokenVerifier>,
    /// Largest request body accepted (`CHAT_MAX_BODY_BYTES`); larger is `413`.
    pub max_body_bytes: usize,
    /// Per-user limits on posts, upload URLs and channel authorizations.
    pub limits: RateLimits,
    /// The identifier systems of the FHIR export (SPEC §10).
    pub fhir: chat_fhir::Systems,
}
