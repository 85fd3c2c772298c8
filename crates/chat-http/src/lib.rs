//! The actix-web adapter: the routes of SPEC §3, the bearer-token extractor of §2, the
//! JSON errors of §3.7, `/healthz`, `/readyz` and `/metrics` ([`ops`]), and the Pusher-protocol WebSocket of §6
//! ([`pusher`]).
//!
//! The application builds an [`HttpState`] once and mounts [`configure`] on its
//! `App`; everything a handler needs comes from that state.
#![forbid(unsafe_code)]

mod auth;
mod body;
mod error;
pub mod limits;
mod media;
mod metric_names;
mod mount;
pub mod openapi;
pub mod ops;
pub mod pusher;
mod routes;
pub mod wire;

pub use auth::{sign_hs256, AuthConfig, AuthError, AuthUser, Claims, TokenVerifier};
pub use error::ApiError;
pub use mount::{configure, no_store, RoutePattern};

use chat_core::ChatService;
use std::sync::Arc;

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub service: ChatService,
    pub tokens: Arc<TokenVerifier>,
    /// Largest request body accepted (`CHAT_MAX_BODY_BYTES`); larger is `413`.
    pub max_body_bytes: usize,
    /// The WebSocket server; `None` serves no `/app/…` nor `/broadcasting/auth`.
    pub realtime: Option<Arc<pusher::Realtime>>,
    /// Per-user limits on posts, upload URLs and channel authorizations.
    pub limits: limits::RateLimits,
    /// What `/readyz` asks and what `/metrics` renders.
    pub operations: ops::Operations,
}
