//! The real-time channels a thread has (SPEC §6): `private-chat.{id}` for its events,
//! and `presence-chat.{id}` for who is online (`Echo.join`). The one place their names
//! are spelled: every other use (subscriptions, the authorizer, the host's HTTP API,
//! webhooks, the channel registry) parses or prints a [`Channel`].
//!
//! Names are exact strings, as in Pusher: only the canonical decimal spelling of a
//! thread id names its channel (`private-chat.01` is no channel, not `private-chat.1`).
//!
//! [`ChatEventName`] is the one list of the events the chat itself sends on them: the
//! real-time adapter names its frames from it, and the host's HTTP API refuses every
//! name in it, so an event added here can never be forged by the host.

use crate::ThreadId;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel {
    pub thread: ThreadId,
    /// The presence channel (`presence-chat.{id}`), not the private one.
    pub presence: bool,
}

const PRIVATE: &str = "private-chat.";
const PRESENCE: &str = "presence-chat.";

/// A name that is not the canonical name of a thread's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not the name of a thread's channel")]
pub struct NotAChannel;

impl Channel {
    /// The thread's private channel, where its events go.
    pub fn private(thread: ThreadId) -> Self {
        Self {
            thread,
            presence: false,
        }
    }

    pub fn presence(thread: ThreadId) -> Self {
        Self {
            thread,
            presence: true,
        }
    }

    /// The channel `name` names exactly, if any.
    pub fn parse(name: &str) -> Option<Self> {
        name.parse().ok()
    }

    pub fn name(&self) -> String {
        self.to_string()
    }
}

impl FromStr for Channel {
    type Err = NotAChannel;

    fn from_str(name: &str) -> Result<Self, NotAChannel> {
        let (presence, id) = match name.strip_prefix(PRIVATE) {
            Some(id) => (false, id),
            None => (true, name.strip_prefix(PRESENCE).ok_or(NotAChannel)?),
        };
        // Digits only, no sign, no leading zero: the one spelling `Display` prints.
        let canonical =
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !id.starts_with('0');
        if !canonical {
            return Err(NotAChannel);
        }
        let thread = id.parse().ok().and_then(ThreadId::new).ok_or(NotAChannel)?;
        Ok(Self { thread, presence })
    }
}

/// Its name, as every wire format spells it.
impl serde::Serialize for Channel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = if self.presence { PRESENCE } else { PRIVATE };
        write!(f, "{prefix}{}", self.thread)
    }
}

/// The chat's own events on a thread's private channel (SPEC §6), spelled as
/// subscribers receive them after the configured prefix (`.MessageCreated`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantNames,
)]
pub enum ChatEventName {
    MessageCreated,
    ThreadClosed,
    MessagesRead,
    MessageRetracted,
}

impl ChatEventName {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether `name` (without the prefix) is one of the chat's own events.
    pub fn is_reserved(name: &str) -> bool {
        name.parse::<Self>().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_names_parse_and_they_round_trip() {
        for name in [
            "private-chat.12",
            "presence-chat.7",
            "private-chat.9007199254740993",
        ] {
            assert_eq!(
                Channel::parse(name).map(|c| c.name()).as_deref(),
                Some(name)
            );
        }
        for junk in [
            "private-chat.",
            "presence-chat.x",
            "private-chat.0",
            "private-chat.01",
            "private-chat.001",
            "presence-chat.07",
            "private-chat.+1",
            "private-chat. 1",
            "private-chat.1 ",
            "chat.1",
            "presence-chat.-1",
            "private-chat.99999999999999999999",
            "Private-chat.1",
        ] {
            assert_eq!(Channel::parse(junk), None, "{junk}");
        }
    }

    #[test]
    fn every_event_name_is_reserved_and_round_trips() {
        use strum::VariantNames;
        assert_eq!(ChatEventName::VARIANTS.len(), 4);
        for name in ChatEventName::VARIANTS {
            assert!(ChatEventName::is_reserved(name), "{name}");
            assert_eq!(name.parse::<ChatEventName>().unwrap().as_str(), *name);
        }
        for other in ["NurseEnRoute", "messagecreated", "MessageCreated ", ""] {
            assert!(!ChatEventName::is_reserved(other), "{other}");
        }
    }
}
