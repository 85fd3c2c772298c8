//! What a channel subscription was granted on (SPEC §6): the `channel_data` that
//! `/broadcasting/auth` signs into its answer and pusher-js sends back on subscribe,
//! naming the user and until when their token is valid. The socket's instance ends the
//! subscription when that time passes, or when the user leaves the care team.

use chat_core::{User, UserId};
use serde::{Deserialize, Serialize};

/// The signed `channel_data` of a subscription, in Pusher's presence shape (`user_id`,
/// `user_info`) plus the token's `exp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelData {
    pub user_id: String,
    pub user_info: UserInfo,
    /// The token's `exp`, Unix seconds.
    pub exp: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub role: String,
}

impl ChannelData {
    pub fn new(user: &User, exp: u64) -> Self {
        Self {
            user_id: user.id.to_string(),
            user_info: UserInfo {
                role: user.role.clone(),
            },
            exp,
        }
    }

    /// As signed and sent: the exact string is what the signature covers.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The `user_info` of signed channel data, as JSON: a presence member's info.
    pub fn user_info(raw: &str) -> Option<String> {
        let data: Self = serde_json::from_str(raw).ok()?;
        serde_json::to_string(&data.user_info).ok()
    }

    /// Who holds the subscription, once its signature checked out.
    pub fn holder(raw: &str, leeway_secs: u64) -> Option<Holder> {
        let data: Self = serde_json::from_str(raw).ok()?;
        Some(Holder {
            user: data.user_id.parse().ok()?,
            admin: data.user_info.role == "admin",
            until: data.exp.saturating_add(leeway_secs),
        })
    }
}

/// The user behind one socket's subscription to one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub user: UserId,
    /// Granted through the admin override: not ended by a change of care team.
    pub admin: bool,
    /// Unix seconds (the token's `exp` plus the leeway) after which it ends.
    pub until: u64,
}

impl Holder {
    pub fn expired(&self, now_unix: u64) -> bool {
        now_unix > self.until
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_read_back_with_the_leeway_and_junk_is_none() {
        let user = User::new(UserId::new(11).unwrap_or_else(|| panic!("id")), "nurse");
        let raw = ChannelData::new(&user, 1_000).encode();
        let holder = ChannelData::holder(&raw, 30).unwrap_or_else(|| panic!("parses"));
        assert_eq!(holder.user, user.id);
        assert!(!holder.admin);
        assert!(!holder.expired(1_030) && holder.expired(1_031));
        for junk in [
            "",
            "{}",
            r#"{"user_id":"x","user_info":{"role":"a"},"exp":1}"#,
        ] {
            assert_eq!(ChannelData::holder(junk, 30), None, "{junk}");
        }
    }
}
