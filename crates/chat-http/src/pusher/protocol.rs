//! The frames of the Pusher Channels protocol 7. Server events carry `data` as a JSON
//! string, as Pusher's own servers send it; clients parse either form.

use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

/// What a client sends, read by its `event`.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(tag = "event")]
pub enum ClientFrame {
    #[serde(rename = "pusher:ping")]
    Ping,
    #[serde(rename = "pusher:pong")]
    Pong,
    #[serde(rename = "pusher:subscribe")]
    Subscribe {
        #[serde(default, deserialize_with = "object_or_encoded")]
        data: Subscription,
    },
    #[serde(rename = "pusher:unsubscribe")]
    Unsubscribe {
        #[serde(default, deserialize_with = "object_or_encoded")]
        data: Subscription,
    },
    /// Any other event: a `client-…` one is a [`ClientEvent`], the rest unsupported.
    #[serde(other)]
    Other,
}

/// The `data` of a (un)subscription. A field missing or of the wrong type is empty,
/// and an empty channel is one no socket may join.
#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Subscription {
    pub channel: String,
    pub auth: String,
    pub channel_data: Option<String>,
}

/// A client event (`client-…`), relayed to the channel's other subscribers.
#[derive(Debug, Deserialize)]
pub struct ClientEvent {
    pub event: String,
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub data: Value,
}

/// pusher-js sends `data` as an object; some clients send it JSON-encoded.
fn object_or_encoded<'de, D: Deserializer<'de>>(d: D) -> Result<Subscription, D::Error> {
    let value = match Value::deserialize(d)? {
        Value::String(encoded) => serde_json::from_str(&encoded).unwrap_or(Value::Null),
        value => value,
    };
    Ok(serde_json::from_value(value).unwrap_or_default())
}

/// Close and error codes of the protocol.
pub mod code {
    /// The key in `/app/{key}` names no app.
    pub const APP_NOT_FOUND: u16 = 4001;
    /// `protocol` is not 7.
    pub const UNSUPPORTED_PROTOCOL: u16 = 4007;
    /// No `protocol` query parameter.
    pub const NO_PROTOCOL: u16 = 4008;
    /// The origin is not allowed.
    pub const UNAUTHORIZED: u16 = 4009;
    /// The socket could not keep up with its events (reconnect after a back-off).
    pub const OVER_CAPACITY: u16 = 4100;
    /// Events for this socket were missed: reconnect at once and catch up (list the
    /// thread), rather than carry on with a gap.
    pub const RECONNECT: u16 = 4200;
    /// The socket did not answer a ping.
    pub const PONG_NOT_RECEIVED: u16 = 4201;
    /// A client event over the rate limit (an error event; the socket stays open).
    pub const CLIENT_EVENT_RATE_LIMIT: u16 = 4301;
}

fn frame(value: Value) -> String {
    value.to_string()
}

pub fn connection_established(socket_id: &str, activity_timeout_secs: u64) -> String {
    let data = json!({"socket_id": socket_id, "activity_timeout": activity_timeout_secs});
    frame(json!({"event": "pusher:connection_established", "data": data.to_string()}))
}

pub fn error(code: Option<u16>, message: &str) -> String {
    let data = json!({"code": code, "message": message});
    frame(json!({"event": "pusher:error", "data": data}))
}

pub fn ping() -> String {
    frame(json!({"event": "pusher:ping", "data": "{}"}))
}

pub fn pong() -> String {
    frame(json!({"event": "pusher:pong", "data": "{}"}))
}

pub fn subscription_succeeded(channel: &str) -> String {
    frame(json!({
        "event": "pusher_internal:subscription_succeeded",
        "channel": channel,
        "data": "{}",
    }))
}

/// A presence subscription's answer: the members now, as pusher-js reads them.
pub fn presence_succeeded(channel: &str, members: &[(String, Value)]) -> String {
    let ids: Vec<&String> = members.iter().map(|(id, _)| id).collect();
    let hash: serde_json::Map<String, Value> = members.iter().cloned().collect();
    let data = json!({"presence": {"ids": ids, "hash": hash, "count": members.len()}});
    frame(json!({
        "event": "pusher_internal:subscription_succeeded",
        "channel": channel,
        "data": data.to_string(),
    }))
}

pub fn member_added(channel: &str, user_id: &str, user_info: &Value) -> String {
    let data = json!({"user_id": user_id, "user_info": user_info});
    frame(
        json!({"event": "pusher_internal:member_added", "channel": channel, "data": data.to_string()}),
    )
}

pub fn member_removed(channel: &str, user_id: &str) -> String {
    let data = json!({"user_id": user_id});
    frame(
        json!({"event": "pusher_internal:member_removed", "channel": channel, "data": data.to_string()}),
    )
}

/// What pusher-js and Echo report through `.error(…)` on the channel.
pub fn subscription_error(channel: &str, status: u16, message: &str) -> String {
    let data = json!({"type": "AuthError", "error": message, "status": status});
    frame(json!({"event": "pusher:subscription_error", "channel": channel, "data": data}))
}

/// A server event on a channel, its data JSON-encoded into a string.
pub fn channel_event(event: &str, channel: &str, data: &Value) -> String {
    frame(json!({"event": event, "channel": channel, "data": data.to_string()}))
}

/// A host's event (the Pusher HTTP API): its data is the string the host sent.
pub fn host_event(event: &str, channel: &str, data: &str) -> String {
    frame(json!({"event": event, "channel": channel, "data": data}))
}

/// A client event relayed as it was sent.
pub fn client_event(event: &str, channel: &str, data: &Value) -> String {
    frame(json!({"event": event, "channel": channel, "data": data}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_event_data_is_a_json_string() {
        let f: Value =
            serde_json::from_str(&channel_event("E", "private-chat.1", &json!({"a": 1})))
                .unwrap_or_default();
        assert_eq!(f["data"], "{\"a\":1}");
    }

    fn read(text: &str) -> ClientFrame {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn client_frames_are_read_by_their_event() {
        assert_eq!(
            read(r#"{"event":"pusher:ping","data":{}}"#),
            ClientFrame::Ping
        );
        let subscribe = ClientFrame::Subscribe {
            data: Subscription {
                channel: "private-chat.7".into(),
                auth: "key:sig".into(),
                channel_data: None,
            },
        };
        let object =
            r#"{"event":"pusher:subscribe","data":{"channel":"private-chat.7","auth":"key:sig"}}"#;
        let encoded = r#"{"event":"pusher:subscribe","data":"{\"channel\":\"private-chat.7\",\"auth\":\"key:sig\"}"}"#;
        for text in [object, encoded] {
            assert_eq!(read(text), subscribe);
        }
        // A subscription of the wrong shape is one to no channel, refused as such.
        assert_eq!(
            read(r#"{"event":"pusher:subscribe","data":{"channel":5}}"#),
            ClientFrame::Subscribe {
                data: Subscription::default()
            }
        );
        assert_eq!(
            read(r#"{"event":"client-typing","channel":"private-chat.7","data":{}}"#),
            ClientFrame::Other
        );
        assert!(serde_json::from_str::<ClientFrame>(r#"{"data":{}}"#).is_err());
    }
}
