//! The HTTP API's own limits: bodies, rates, and the browser origins it answers.

use super::env::{ConfigError, Env};

#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `CHAT_MAX_BODY_BYTES`: largest JSON request body; larger is `413`. Default 65536.
    pub max_body_bytes: usize,
    /// `CHAT_RATE_LIMIT_POSTS`: messages a user may post per minute (every instance
    /// together when Redis is configured); `0` is no limit. Default 120.
    pub rate_limit_posts: u32,
    /// `CHAT_RATE_LIMIT_UPLOADS`: upload URLs a user may get per minute. Default 30.
    pub rate_limit_uploads: u32,
    /// `CHAT_RATE_LIMIT_AUTH`: channel authorizations (`/broadcasting/auth`) a user may
    /// get per minute. Default 60.
    pub rate_limit_auth: u32,
    /// `CHAT_ALLOWED_ORIGINS`: comma-separated browser origins allowed to open the
    /// WebSocket (`https://app.example.com`) and answered with CORS headers on the
    /// API, the channel authorizer and the media URLs; unset allows any WebSocket
    /// origin and sends no CORS headers.
    pub allowed_origins: Option<Vec<String>>,
}

impl HttpConfig {
    pub(crate) fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            max_body_bytes: env.positive("CHAT_MAX_BODY_BYTES", 65_536usize)?,
            rate_limit_posts: env.parse("CHAT_RATE_LIMIT_POSTS", 120)?,
            rate_limit_uploads: env.parse("CHAT_RATE_LIMIT_UPLOADS", 30)?,
            rate_limit_auth: env.parse("CHAT_RATE_LIMIT_AUTH", 60)?,
            allowed_origins: env.list("CHAT_ALLOWED_ORIGINS").map(|origins| {
                origins
                    .iter()
                    .map(|o| o.trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            }),
        })
    }
}
