//! Per-user rate limits on posts, upload URLs and channel authorizations (SPEC §3.7:
//! `429 rate_limited` with `Retry-After`). Counted in fixed one-minute windows by a
//! [`RateCounter`]: Redis when configured, so every instance shares the count.

use crate::error::ApiError;
use crate::metric_names::names;
use chat_core::ports::RateCounter;
use chat_core::UserId;
use std::sync::Arc;
use std::time::Duration;

/// What is limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Posts,
    Uploads,
    /// `POST /broadcasting/auth`.
    Auth,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Posts => "posts",
            Self::Uploads => "uploads",
            Self::Auth => "auth",
        }
    }
}

/// Attempts allowed per user and window; `0` turns a limit off.
#[derive(Clone)]
pub struct RateLimits {
    pub counter: Arc<dyn RateCounter>,
    pub window: Duration,
    pub posts: u32,
    pub uploads: u32,
    pub auth: u32,
}

impl RateLimits {
    /// Counts the attempt; `429` once the user is over the scope's limit. A counter that
    /// is down lets the attempt through (and says so in the log): a limit is a guard,
    /// and the stores that matter answer for themselves.
    pub async fn check(&self, scope: Scope, user: UserId) -> Result<(), ApiError> {
        let max = match scope {
            Scope::Posts => self.posts,
            Scope::Uploads => self.uploads,
            Scope::Auth => self.auth,
        };
        if max == 0 {
            return Ok(());
        }
        let key = format!("{}:{user}", scope.as_str());
        match self.counter.hit(&key, self.window).await {
            Ok(hit) if hit.count > u64::from(max) => {
                metrics::counter!(names::RATE_LIMITED, "scope" => scope.as_str()).increment(1);
                tracing::info!(scope = scope.as_str(), user_id = %user, "rate limited");
                Err(ApiError::RateLimited {
                    retry_after_secs: hit.resets_in.as_secs_f64().ceil().max(1.0) as u64,
                })
            }
            Ok(_) => Ok(()),
            Err(error) => {
                metrics::counter!(names::STORE_ERRORS, "kind" => "rate_counter").increment(1);
                tracing::warn!(%error, "rate counter unavailable; not limiting");
                Ok(())
            }
        }
    }
}
