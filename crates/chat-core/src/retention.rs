//! Retention rules (SPEC §5): a time-to-live and a per-thread cap. Every message store
//! obeys both the same way; `None` disables a rule.

use crate::model::Timestamp;
use std::num::NonZeroU32;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Messages older than this are never returned and are removed from the store.
    pub ttl: Option<Duration>,
    /// Only the newest this many messages of a thread are kept.
    pub max_messages: Option<NonZeroU32>,
}

impl Default for Retention {
    /// 24 hours and 100 messages, as in the seed.
    fn default() -> Self {
        Self {
            ttl: Some(Duration::from_secs(86_400)),
            max_messages: NonZeroU32::new(100),
        }
    }
}

impl Retention {
    /// Neither rule: what a thread under legal hold obeys (SPEC §10).
    pub const KEEP_ALL: Self = Self {
        ttl: None,
        max_messages: None,
    };

    /// From the two settings, where `0` disables a rule.
    pub fn from_settings(ttl_secs: u64, max_messages: u32) -> Self {
        Self {
            ttl: (ttl_secs > 0).then(|| Duration::from_secs(ttl_secs)),
            max_messages: NonZeroU32::new(max_messages),
        }
    }

    /// Messages created before this instant have expired at `now`.
    pub fn expired_before(&self, now: Timestamp) -> Option<Timestamp> {
        let ttl = chrono::Duration::from_std(self.ttl?).ok()?;
        now.checked_sub_signed(ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_disables_each_rule() {
        let r = Retention::from_settings(0, 0);
        assert_eq!(r.ttl, None);
        assert_eq!(r.max_messages, None);
        assert_eq!(r.expired_before(chrono::Utc::now()), None);
    }

    #[test]
    fn cutoff_is_now_minus_ttl() {
        let r = Retention::from_settings(60, 5);
        let now = chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(1000);
        assert_eq!(
            r.expired_before(now),
            Some(now - chrono::Duration::seconds(60))
        );
        assert_eq!(r.max_messages.map(|n| n.get()), Some(5));
    }
}
