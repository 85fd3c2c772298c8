//! The channels a thread has (SPEC §6): `private-chat.{id}` for its events, and
//! `presence-chat.{id}` for who is online (`Echo.join`). The same access opens both.

use chat_core::ThreadId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel {
    pub thread: ThreadId,
    pub presence: bool,
}

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

    /// `private-chat.{id}` or `presence-chat.{id}`; anything else is `None`.
    pub fn parse(name: &str) -> Option<Self> {
        let (presence, id) = match name.strip_prefix("private-chat.") {
            Some(id) => (false, id),
            None => (true, name.strip_prefix("presence-chat.")?),
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            thread: ThreadId::new(id.parse().ok()?)?,
            presence,
        })
    }

    pub fn name(&self) -> String {
        match self.presence {
            false => format!("private-chat.{}", self.thread),
            true => format!("presence-chat.{}", self.thread),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_refused() {
        for name in ["private-chat.12", "presence-chat.7"] {
            assert_eq!(
                Channel::parse(name).map(|c| c.name()).as_deref(),
                Some(name)
            );
        }
        for junk in [
            "private-chat.",
            "presence-chat.x",
            "private-chat.0",
            "chat.1",
            "presence-chat.-1",
        ] {
            assert_eq!(Channel::parse(junk), None, "{junk}");
        }
    }
}
