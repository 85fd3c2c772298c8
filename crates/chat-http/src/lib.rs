//! The actix-web adapter: the routes of SPEC §3, the bearer-token extractor of §2, the
//! JSON errors of §3.7, `/healthz`, `/readyz` and `/metrics` ([`ops`]), and the Pusher-protocol WebSocket of §6
//! ([`pusher`]).
//!
//! The application builds an [`HttpState`], the [`pusher::Realtime`] and the
//! [`ops::Operations`] once and mounts [`configure`] over them on its
//! `App`; each handler takes the part it reads.
#![forbid(unsafe_code)]

mod auth;
mod body;
mod error;
mod inbox;
pub mod limits;
mod media;
mod metric_names;
mod mount;
pub mod openapi;
pub mod ops;
pub mod pusher;
mod routes;
mod state;
mod tokens;
pub mod wire;

pub use auth::AuthUser;
pub use error::ApiError;
pub use mount::{configure, cors, cors_finish, no_store, RoutePattern};
pub use state::HttpState;
pub use tokens::{
    public_key_from_pem, sign_hs256, AuthConfig, AuthError, Claims, JwksKeys, JwksSource,
    KeyRefused, TokenKeys, TokenVerifier, MIN_REFETCH,
};
