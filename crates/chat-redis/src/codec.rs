//! The bytes Redis holds for a message and carries for an event. Binary and versioned;
//! content stays sealed. The layout is fixed so that the Lua scripts can redact a
//! message in place: byte [`CONTENT_FLAG`] says whether sealed content follows.
//!
//! ```text
//! message: version(1) id(8) sender(8) kind(1) created_at µs(8) has_content(1) sealed…
//! event:   b'M' thread(8) message…   |   b'C' thread(8) closed_at µs(8)
//!        | b'R' thread(8) user(8) up_to(8)   |   b'D' thread(8) message id(8)
//!        | b'A' thread(8) user(8)…           |   b'X' thread(8) client event…
//!        | b'H' thread(8) len(2) name len(2) except (empty: none) data
//!        | b'Y' as b'X' on the presence channel
//!        | b'J' thread(8) user(8) len(2) origin info | b'L' thread(8) user(8)
//! ```
//! Integers are big-endian. A message's thread is the key it lives under.

use chat_core::crypto::SealedContent;
use chat_core::ports::ChatEvent;
use chat_core::{MessageId, MessageKind, StoreError, StoredMessage, ThreadId, Timestamp, UserId};

const VERSION: u8 = 1;
/// 0-based offset of the has-content byte (the Lua scripts use it 1-based).
pub(crate) const CONTENT_FLAG: usize = 26;

pub(crate) fn micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

fn timestamp(us: i64) -> Result<Timestamp, StoreError> {
    chrono::DateTime::from_timestamp_micros(us).ok_or_else(|| corrupt("timestamp out of range"))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("redis value: {what}"))
}

fn kind_from_tag(tag: u8) -> Option<MessageKind> {
    [MessageKind::Text, MessageKind::Image, MessageKind::Location]
        .into_iter()
        .find(|k| k.tag() == tag)
}

pub(crate) fn encode_message(m: &StoredMessage) -> Vec<u8> {
    let sealed = m.content.as_ref().map(SealedContent::as_bytes);
    let mut out = Vec::with_capacity(CONTENT_FLAG + 1 + sealed.map_or(0, <[u8]>::len));
    out.push(VERSION);
    out.extend_from_slice(&m.id.get().to_be_bytes());
    out.extend_from_slice(&m.sender_id.get().to_be_bytes());
    out.push(m.kind.tag());
    out.extend_from_slice(&micros(m.created_at).to_be_bytes());
    out.push(u8::from(sealed.is_some()));
    out.extend_from_slice(sealed.unwrap_or_default());
    out
}

/// Reads 8 bytes at `at` as a big-endian i64.
fn int_at(bytes: &[u8], at: usize) -> Result<i64, StoreError> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_be_bytes)
        .ok_or_else(|| corrupt("truncated"))
}

pub(crate) fn decode_message(thread: ThreadId, bytes: &[u8]) -> Result<StoredMessage, StoreError> {
    if bytes.first() != Some(&VERSION) || bytes.len() <= CONTENT_FLAG {
        return Err(corrupt("unknown message layout"));
    }
    let content = match bytes[CONTENT_FLAG] {
        0 => None,
        1 => Some(SealedContent::from_bytes(
            bytes[CONTENT_FLAG + 1..].to_vec(),
        )),
        _ => return Err(corrupt("bad content flag")),
    };
    Ok(StoredMessage {
        id: MessageId::new(int_at(bytes, 1)?).ok_or_else(|| corrupt("message id"))?,
        thread_id: thread,
        sender_id: UserId::new(int_at(bytes, 9)?).ok_or_else(|| corrupt("sender id"))?,
        kind: kind_from_tag(bytes[17]).ok_or_else(|| corrupt("message kind"))?,
        created_at: timestamp(int_at(bytes, 18)?)?,
        content,
    })
}

/// The tag that opens an event's bytes.
fn event_tag(event: &ChatEvent) -> u8 {
    match event {
        ChatEvent::MessageCreated(_) => b'M',
        ChatEvent::ThreadClosed { .. } => b'C',
        ChatEvent::MessagesRead { .. } => b'R',
        ChatEvent::EventsLost { .. } => b'G',
        ChatEvent::MessageRetracted { .. } => b'D',
        ChatEvent::AccessRevoked { .. } => b'A',
        // `P` on the presence channel; `H`, as before, on the private one.
        ChatEvent::HostEvent { presence, .. } => {
            if *presence {
                b'P'
            } else {
                b'H'
            }
        }
        ChatEvent::MemberAdded { .. } => b'J',
        ChatEvent::MemberRemoved { .. } => b'L',
        ChatEvent::ClientEvent { presence, .. } => {
            if *presence {
                b'Y'
            } else {
                b'X'
            }
        }
    }
}

pub(crate) fn encode_event(event: &ChatEvent) -> Vec<u8> {
    let mut out = Writer(vec![event_tag(event)]);
    out.int(event.thread_id().get());
    match event {
        ChatEvent::MessageCreated(m) => out.rest(&encode_message(m)),
        ChatEvent::ThreadClosed { closed_at, .. } => out.int(micros(*closed_at)),
        ChatEvent::MessagesRead { user_id, up_to, .. } => out.int(user_id.get()).int(up_to.get()),
        ChatEvent::EventsLost { .. } => &mut out,
        ChatEvent::MessageRetracted { id, .. } => out.int(id.get()),
        ChatEvent::AccessRevoked { user_ids, .. } => {
            for user in user_ids {
                out.int(user.get());
            }
            &mut out
        }
        ChatEvent::HostEvent {
            name,
            data,
            except_socket,
            ..
        } => out
            .short(name)
            .short(except_socket.as_deref().unwrap_or_default())
            .rest(data.as_bytes()),
        ChatEvent::MemberAdded {
            user_id,
            info,
            origin,
            ..
        } => out.int(user_id.get()).short(origin).rest(info.as_bytes()),
        ChatEvent::MemberRemoved { user_id, .. } => out.int(user_id.get()),
        ChatEvent::ClientEvent {
            origin, name, data, ..
        } => out.short(origin).short(name).rest(data.as_bytes()),
    };
    out.0
}

pub(crate) fn decode_event(bytes: &[u8]) -> Result<ChatEvent, StoreError> {
    let (&tag, rest) = bytes.split_first().ok_or_else(|| corrupt("empty event"))?;
    let mut read = Reader(rest);
    let thread_id = ThreadId::new(read.int()?).ok_or_else(|| corrupt("thread id"))?;
    let event = match tag {
        b'M' => ChatEvent::MessageCreated(decode_message(thread_id, read.0)?),
        b'C' => ChatEvent::ThreadClosed {
            thread_id,
            closed_at: timestamp(read.int()?)?,
        },
        b'R' => ChatEvent::MessagesRead {
            thread_id,
            user_id: read.user()?,
            up_to: MessageId::new(read.int()?).ok_or_else(|| corrupt("message id"))?,
        },
        b'D' => ChatEvent::MessageRetracted {
            thread_id,
            id: MessageId::new(read.int()?).ok_or_else(|| corrupt("message id"))?,
        },
        b'G' => ChatEvent::EventsLost { thread_id },
        b'A' => {
            if read.0.len() % 8 != 0 {
                return Err(corrupt("revocation"));
            }
            let user_ids = (0..read.0.len() / 8)
                .map(|_| read.user())
                .collect::<Result<_, _>>()?;
            ChatEvent::AccessRevoked {
                thread_id,
                user_ids,
            }
        }
        b'H' | b'P' => {
            let name = read.short()?;
            let except = read.short()?;
            ChatEvent::HostEvent {
                thread_id,
                presence: tag == b'P',
                name,
                data: read.rest()?,
                except_socket: (!except.is_empty()).then_some(except),
            }
        }
        b'J' => ChatEvent::MemberAdded {
            thread_id,
            user_id: read.user()?,
            origin: read.short()?,
            info: read.rest()?,
        },
        b'L' => ChatEvent::MemberRemoved {
            thread_id,
            user_id: read.user()?,
        },
        b'X' | b'Y' => ChatEvent::ClientEvent {
            thread_id,
            presence: tag == b'Y',
            origin: read.short()?,
            name: read.short()?,
            data: read.rest()?,
        },
        _ => return Err(corrupt("unknown event")),
    };
    Ok(event)
}

/// An event's bytes as they are written: big-endian integers, short strings behind
/// their length (2 bytes; longer is cut, not wrapped: a socket id, an event name), and
/// the rest.
struct Writer(Vec<u8>);

impl Writer {
    fn int(&mut self, n: i64) -> &mut Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    fn short(&mut self, text: &str) -> &mut Self {
        let bytes = &text.as_bytes()[..text.len().min(u16::MAX as usize)];
        self.0
            .extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        self.0.extend_from_slice(bytes);
        self
    }

    fn rest(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
}

/// An event's bytes as they are read, from the front, in [`Writer`]'s layout.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn int(&mut self) -> Result<i64, StoreError> {
        let n = int_at(self.0, 0)?;
        self.0 = &self.0[8..];
        Ok(n)
    }

    fn user(&mut self) -> Result<UserId, StoreError> {
        UserId::new(self.int()?).ok_or_else(|| corrupt("user id"))
    }

    fn short(&mut self) -> Result<String, StoreError> {
        let len = self
            .0
            .get(..2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .ok_or_else(|| corrupt("event strings"))?;
        let text = self
            .0
            .get(2..2 + len)
            .ok_or_else(|| corrupt("event strings"))?;
        let text = String::from_utf8(text.to_vec()).map_err(|_| corrupt("event strings"))?;
        self.0 = &self.0[2 + len..];
        Ok(text)
    }

    fn rest(&mut self) -> Result<String, StoreError> {
        let text = String::from_utf8(self.0.to_vec()).map_err(|_| corrupt("event text"))?;
        self.0 = &[];
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(content: Option<Vec<u8>>) -> StoredMessage {
        StoredMessage {
            id: MessageId::new(1_763_000_000_000_123).unwrap(),
            thread_id: ThreadId::new(42).unwrap(),
            sender_id: UserId::new(7).unwrap(),
            kind: MessageKind::Location,
            content: content.map(SealedContent::from_bytes),
            created_at: timestamp(1_763_000_000_123_456).unwrap(),
        }
    }

    #[test]
    fn messages_and_events_round_trip() {
        for m in [message(Some(vec![9; 45])), message(None)] {
            let bytes = encode_message(&m);
            assert_eq!(decode_message(m.thread_id, &bytes).unwrap(), m);
            let created = ChatEvent::MessageCreated(m.clone());
            assert_eq!(decode_event(&encode_event(&created)).unwrap(), created);
        }
        let whisper = ChatEvent::ClientEvent {
            thread_id: ThreadId::new(3).unwrap(),
            presence: true,
            origin: "4f2a.17".into(),
            name: "client-typing".into(),
            data: r#"{"typing":true,"who":"Zoë"}"#.into(),
        };
        assert_eq!(decode_event(&encode_event(&whisper)).unwrap(), whisper);
        let closed = ChatEvent::ThreadClosed {
            thread_id: ThreadId::new(3).unwrap(),
            closed_at: timestamp(5).unwrap(),
        };
        assert_eq!(decode_event(&encode_event(&closed)).unwrap(), closed);
        let thread = ThreadId::new(3).unwrap();
        for event in [
            ChatEvent::MessagesRead {
                thread_id: thread,
                user_id: UserId::new(7).unwrap(),
                up_to: MessageId::new(1_763_000_000_000_123).unwrap(),
            },
            ChatEvent::MessageRetracted {
                thread_id: thread,
                id: MessageId::new(99).unwrap(),
            },
            ChatEvent::EventsLost { thread_id: thread },
            ChatEvent::AccessRevoked {
                thread_id: thread,
                user_ids: vec![UserId::new(11).unwrap(), UserId::new(12).unwrap()],
            },
            ChatEvent::HostEvent {
                thread_id: thread,
                presence: false,
                name: "NurseEnRoute".into(),
                data: r#"{"eta":"15 min"}"#.into(),
                except_socket: Some("123.456".into()),
            },
            ChatEvent::MemberAdded {
                thread_id: thread,
                user_id: UserId::new(11).unwrap(),
                info: r#"{"role":"nurse"}"#.into(),
                origin: "4f2a.17".into(),
            },
            ChatEvent::MemberRemoved {
                thread_id: thread,
                user_id: UserId::new(11).unwrap(),
            },
            ChatEvent::HostEvent {
                thread_id: thread,
                presence: true,
                name: "Notice".into(),
                data: String::new(),
                except_socket: None,
            },
        ] {
            assert_eq!(decode_event(&encode_event(&event)).unwrap(), event);
        }
    }

    #[test]
    fn redaction_in_place_is_the_flag_byte_and_a_cut() {
        // What the redact script does: keep the header, set the flag to 0, drop the rest.
        let m = message(Some(vec![9; 45]));
        let mut bytes = encode_message(&m);
        bytes.truncate(CONTENT_FLAG);
        bytes.push(0);
        let redacted = decode_message(m.thread_id, &bytes).unwrap();
        assert_eq!(redacted.content, None);
        assert_eq!(redacted.id, m.id);
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        for bytes in [&b""[..], b"\x01", b"\x02abc", &[1u8; 26], b"M\0\0"] {
            assert!(decode_message(ThreadId::new(1).unwrap(), bytes).is_err());
            assert!(decode_event(bytes).is_err());
        }
    }
}
