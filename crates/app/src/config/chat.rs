//! What the chat keeps, for how long, and the background work that enforces it.

use super::env::{ConfigError, Env};
use chat_core::{ChatSettings, Retention};
use std::time::Duration;

/// A year: no interval or lifetime set in whole seconds needs more.
const A_YEAR_SECS: u64 = 366 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// `CHAT_ENABLED`: the feature flag; `false` answers `501` on every chat route.
    /// Default `true`.
    pub enabled: bool,
    /// `CHAT_MESSAGE_TTL_SECS` (message lifetime; `0` keeps messages forever; default
    /// 86400) and `CHAT_MAX_MESSAGES_PER_THREAD` (only the newest are kept; `0` keeps
    /// all; default 100).
    pub retention: Retention,
    /// `CHAT_MAX_TEXT_CHARS`: longest text message, in characters. Default 4000.
    pub max_text_chars: usize,
    /// `CHAT_REDACT_MESSAGES`: the purge after a close destroys the thread key and the
    /// message ciphertext. Default `true`.
    pub redact_messages: bool,
    /// `CHAT_SWEEP_INTERVAL_SECS`: how often the sweep runs (one instance at a time);
    /// `0` runs it only through `chat-server cleanup`. Default 3600.
    pub sweep_interval: Option<Duration>,
    /// `CHAT_JOB_LEASE_SECS`: how long a job may run before another worker takes it
    /// over, and so how long a job interrupted by a crash waits to resume. Default 120.
    pub job_lease: Duration,
    /// `CHAT_UNREAD_ESCALATION_SECS`: a message some recipient has not read this long
    /// after it was posted sends the webhook `message_unread` (SPEC §10). 0 or unset:
    /// off; without `CHAT_WEBHOOK_URL` it has nowhere to go, and stays off.
    pub unread_escalation: Option<Duration>,
}

impl ChatConfig {
    pub(crate) fn from_env(env: &Env, defaults: &ChatSettings) -> Result<Self, ConfigError> {
        let ttl_secs = env.parse(
            "CHAT_MESSAGE_TTL_SECS",
            defaults.retention.ttl.map_or(0, |ttl| ttl.as_secs()),
        )?;
        let max_messages = env.parse(
            "CHAT_MAX_MESSAGES_PER_THREAD",
            defaults.retention.max_messages.map_or(0, |max| max.get()),
        )?;
        Ok(Self {
            enabled: env.flag("CHAT_ENABLED", defaults.enabled)?,
            retention: Retention::from_settings(ttl_secs, max_messages),
            max_text_chars: env.positive("CHAT_MAX_TEXT_CHARS", defaults.max_text_chars)?,
            redact_messages: env.flag("CHAT_REDACT_MESSAGES", defaults.redact_on_close)?,
            sweep_interval: env.seconds_or_off(
                "CHAT_SWEEP_INTERVAL_SECS",
                Some(Duration::from_secs(3600)),
                A_YEAR_SECS,
            )?,
            job_lease: env.seconds("CHAT_JOB_LEASE_SECS", defaults.job_lease, 1..=A_YEAR_SECS)?,
            // A year: past it, no message is kept to escalate (the TTL's own bound).
            unread_escalation: env.seconds_or_off(
                "CHAT_UNREAD_ESCALATION_SECS",
                None,
                A_YEAR_SECS,
            )?,
        })
    }
}
