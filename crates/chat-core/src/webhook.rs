//! The host's webhook events (SPEC §9.1), typed: every name and field the host
//! receives is spelled here once, and the JSON is derived from them. Ids, counts and
//! times only: no content ever goes to the host.

use crate::{Channel, MessageId, MessageKind, RequestId, ThreadId, Timestamp, UserId};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// Where a thread's own event happened, as the host receives it: the thread's
/// (private) `channel` and its `thread_id`, both from the one id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnThread(pub ThreadId);

impl Serialize for OnThread {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("channel", &Channel::private(self.0))?;
        map.serialize_entry("thread_id", &self.0)?;
        map.end()
    }
}

/// One event of a webhook delivery (`{"time_ms": …, "events": [event]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, strum::IntoStaticStr)]
#[serde(tag = "name", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum WebhookEvent {
    /// A message was stored; `offline_user_ids` are the participants other than the
    /// sender with no socket on the thread's channel: whom the host notifies.
    MessageCreated {
        #[serde(flatten)]
        thread: OnThread,
        request_id: RequestId,
        message_id: MessageId,
        sender_id: UserId,
        #[serde(rename = "type")]
        kind: MessageKind,
        #[serde(serialize_with = "rfc3339")]
        created_at: Timestamp,
        offline_user_ids: Vec<UserId>,
    },
    /// A message some recipients had not read `CHAT_UNREAD_ESCALATION_SECS` after it
    /// was posted (SPEC §10).
    MessageUnread {
        #[serde(flatten)]
        thread: OnThread,
        request_id: RequestId,
        message_id: MessageId,
        sender_id: UserId,
        #[serde(serialize_with = "rfc3339")]
        created_at: Timestamp,
        unread_user_ids: Vec<UserId>,
    },
    ThreadClosed {
        #[serde(flatten)]
        thread: OnThread,
        request_id: RequestId,
        #[serde(serialize_with = "rfc3339")]
        closed_at: Timestamp,
    },
    ThreadPurged {
        #[serde(flatten)]
        thread: OnThread,
        /// `null` when the thread's record was already gone.
        request_id: Option<RequestId>,
        media_deleted: u64,
        messages_redacted: u64,
        key_destroyed: bool,
        read_markers_dropped: u64,
    },
    /// The transcript reached the medical record (SPEC §10), `messages` of them.
    ThreadRecorded {
        #[serde(flatten)]
        thread: OnThread,
        request_id: RequestId,
        messages: usize,
    },
    /// Every attempt at the transcript failed: the thread keeps its content.
    ThreadRecordFailed {
        #[serde(flatten)]
        thread: OnThread,
        request_id: RequestId,
    },
    /// Pusher's occupancy and presence events, as the real-time adapter sees them.
    ChannelOccupied {
        channel: Channel,
    },
    ChannelVacated {
        channel: Channel,
    },
    MemberAdded {
        channel: Channel,
        /// A string, as in Pusher's presence webhooks.
        #[serde(serialize_with = "display")]
        user_id: UserId,
    },
    MemberRemoved {
        channel: Channel,
        #[serde(serialize_with = "display")]
        user_id: UserId,
    },
}

impl WebhookEvent {
    /// `message_created`, `member_added`, …: the event's `name`.
    pub fn name(&self) -> &'static str {
        self.into()
    }

    pub fn thread(&self) -> ThreadId {
        match self {
            Self::MessageCreated { thread, .. }
            | Self::MessageUnread { thread, .. }
            | Self::ThreadClosed { thread, .. }
            | Self::ThreadPurged { thread, .. }
            | Self::ThreadRecorded { thread, .. }
            | Self::ThreadRecordFailed { thread, .. } => thread.0,
            Self::ChannelOccupied { channel }
            | Self::ChannelVacated { channel }
            | Self::MemberAdded { channel, .. }
            | Self::MemberRemoved { channel, .. } => channel.thread,
        }
    }

    /// The delivery id (`X-Chat-Delivery`) the host deduplicates by: the same event
    /// queued twice is one to the host. Events that may happen again (a member who
    /// comes back, a second record attempt) are told apart by `at`, in µs.
    pub fn delivery_id(&self, at: Timestamp) -> String {
        let name = self.name();
        let thread = self.thread();
        let at = at.timestamp_micros();
        match self {
            Self::MessageCreated { message_id, .. } | Self::MessageUnread { message_id, .. } => {
                format!("{name}.{thread}.{message_id}")
            }
            Self::ThreadClosed { .. } => format!("{name}.{thread}"),
            Self::ThreadPurged { .. }
            | Self::ThreadRecorded { .. }
            | Self::ThreadRecordFailed { .. } => format!("{name}.{thread}.{at}"),
            Self::ChannelOccupied { channel } | Self::ChannelVacated { channel } => {
                format!("{name}.{channel}..{at}")
            }
            Self::MemberAdded {
                channel, user_id, ..
            }
            | Self::MemberRemoved {
                channel, user_id, ..
            } => format!("{name}.{channel}.{user_id}.{at}"),
        }
    }

    /// The body of a delivery of this one event, as the host receives it (ids, strings
    /// and numbers: it cannot fail to serialize, but serde's signature says it might).
    pub fn body(&self, time: Timestamp) -> serde_json::Result<String> {
        Self::body_of(std::slice::from_ref(self), time)
    }

    /// The body of one delivery of several events, in order: Pusher's
    /// `{"time_ms": …, "events": […]}`.
    pub fn body_of(events: &[WebhookEvent], time: Timestamp) -> serde_json::Result<String> {
        #[derive(Serialize)]
        struct Body<'a> {
            time_ms: i64,
            events: &'a [WebhookEvent],
        }
        serde_json::to_string(&Body {
            time_ms: time.timestamp_millis(),
            events,
        })
    }
}

fn display<T: std::fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// RFC 3339 in whole seconds, UTC (`2026-01-01T00:00:00Z`), as the API's times.
fn rfc3339<S: Serializer>(at: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(secs: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn events_serialize_as_the_host_receives_them() {
        let thread = ThreadId::new(12).unwrap();
        let event = WebhookEvent::MessageCreated {
            thread: OnThread(thread),
            request_id: RequestId::new(5).unwrap(),
            message_id: MessageId::new(99).unwrap(),
            sender_id: UserId::new(7).unwrap(),
            kind: MessageKind::Image,
            created_at: at(1_767_225_600),
            offline_user_ids: vec![UserId::new(3).unwrap()],
        };
        let body: serde_json::Value = serde_json::from_str(&event.body(at(1)).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"time_ms": 1000, "events": [{
                "name": "message_created", "channel": "private-chat.12", "thread_id": 12,
                "request_id": 5, "message_id": 99, "sender_id": 7, "type": "image",
                "created_at": "2026-01-01T00:00:00Z", "offline_user_ids": [3]
            }]})
        );
        assert_eq!(event.delivery_id(at(1)), "message_created.12.99");

        let member = WebhookEvent::MemberRemoved {
            channel: Channel::presence(thread),
            user_id: UserId::new(7).unwrap(),
        };
        assert_eq!(
            serde_json::to_value(&member).unwrap(),
            json!({"name": "member_removed", "channel": "presence-chat.12", "user_id": "7"})
        );
        assert_eq!(
            member.delivery_id(at(2)),
            "member_removed.presence-chat.12.7.2000000"
        );
    }
}
