//! The clinical record in HL7 FHIR R4 (SPEC §10): a thread as a `Bundle` of one
//! `Communication` per message still kept. Text is `contentString`; an image a
//! `contentAttachment` with the cleaned image's bytes (base64), type, size and SHA-1
//! hash; a location a contained `Location` referenced by `contentReference`; a
//! retracted or redacted message `entered-in-error`, without payload. Senders,
//! recipients and the service request are identifiers in the configured systems.
//!
//! The model is the handful of R4 types this needs, as typed serde structs in FHIR's
//! JSON names, rather than a crate of all 146 R4 resources: their generated code costs
//! minutes of compile time for five types used. What they produce is checked against
//! an independent FHIR R4 validator in the service's tests.
#![forbid(unsafe_code)]

use base64::Engine;
use chat_core::{MessageContent, MessageId, ThreadRecord, UserId};
use serde::Serialize;

/// The identifier systems of the configuration: `CHAT_FHIR_USER_SYSTEM` and
/// `CHAT_FHIR_REQUEST_SYSTEM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Systems {
    pub user: String,
    pub request: String,
}

impl Default for Systems {
    fn default() -> Self {
        Self {
            user: "urn:chat:user".into(),
            request: "urn:chat:request".into(),
        }
    }
}

/// The system of each `Communication.identifier`: `<thread>.<message id>`, unique, so
/// that a FHIR server stores a message once however often it is sent
/// (`ifNoneExist` in a transaction).
pub const MESSAGE_SYSTEM: &str = "urn:chat:message";

/// The media type of a FHIR JSON body.
pub const CONTENT_TYPE: &str = "application/fhir+json";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    resource_type: &'static str,
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: String,
    entry: Vec<Entry>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    full_url: String,
    resource: Communication,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<EntryRequest>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EntryRequest {
    method: &'static str,
    url: &'static str,
    if_none_exist: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Communication {
    resource_type: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    contained: Vec<Location>,
    identifier: Vec<Identifier>,
    status: &'static str,
    about: Vec<Reference>,
    sent: String,
    recipient: Vec<Reference>,
    sender: Reference,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    payload: Vec<Payload>,
}

#[derive(Debug, Serialize)]
struct Identifier {
    system: String,
    value: String,
}

#[derive(Debug, Serialize)]
struct Reference {
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identifier: Option<Identifier>,
}

/// `Communication.payload.content[x]`: exactly one of the three.
#[derive(Debug, Serialize)]
enum Payload {
    #[serde(rename = "contentString")]
    Text(String),
    #[serde(rename = "contentAttachment")]
    Attachment(Attachment),
    #[serde(rename = "contentReference")]
    Reference(Reference),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Attachment {
    content_type: &'static str,
    /// base64 of the bytes.
    data: String,
    size: u64,
    /// base64 of the SHA-1 of the bytes, as FHIR defines `Attachment.hash`.
    hash: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    resource_type: &'static str,
    id: String,
    position: Position,
}

#[derive(Debug, Serialize)]
struct Position {
    latitude: f64,
    longitude: f64,
}

fn identifier(system: &str, value: impl ToString) -> Identifier {
    Identifier {
        system: system.to_owned(),
        value: value.to_string(),
    }
}

fn user(systems: &Systems, id: UserId) -> Reference {
    Reference {
        reference: None,
        identifier: Some(identifier(&systems.user, id)),
    }
}

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The message's identifier value: `<thread>.<message>`.
pub fn message_identifier(record: &ThreadRecord, id: MessageId) -> String {
    format!("{}.{id}", record.thread.id)
}

fn communication(record: &ThreadRecord, systems: &Systems, index: usize) -> Communication {
    let recorded = &record.messages[index];
    let view = &recorded.view;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut contained = Vec::new();
    let payload = match &view.content {
        None => None,
        Some(MessageContent::Text(text)) => Some(Payload::Text(text.as_str().to_owned())),
        Some(MessageContent::Location(at)) => {
            let id = format!("location-{}", view.id);
            contained.push(Location {
                resource_type: "Location",
                id: id.clone(),
                position: Position {
                    latitude: at.lat(),
                    longitude: at.lng(),
                },
            });
            Some(Payload::Reference(Reference {
                reference: Some(format!("#{id}")),
                identifier: None,
            }))
        }
        Some(MessageContent::Image(_)) => recorded.image.as_ref().map(|image| {
            let hash = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &image.bytes);
            Payload::Attachment(Attachment {
                content_type: image.mime,
                data: b64.encode(&image.bytes),
                size: image.bytes.len() as u64,
                hash: b64.encode(hash.as_ref()),
            })
        }),
    };
    let status = if payload.is_some() {
        "completed"
    } else {
        "entered-in-error"
    };
    Communication {
        resource_type: "Communication",
        contained,
        identifier: vec![identifier(
            MESSAGE_SYSTEM,
            message_identifier(record, view.id),
        )],
        status,
        about: vec![Reference {
            reference: None,
            identifier: Some(identifier(&systems.request, record.thread.request_id)),
        }],
        sent: rfc3339(view.created_at),
        recipient: record
            .participants
            .iter()
            .filter(|u| **u != view.sender_id)
            .map(|u| user(systems, *u))
            .collect(),
        sender: user(systems, view.sender_id),
        payload: payload.into_iter().collect(),
    }
}

fn bundle(
    record: &ThreadRecord,
    systems: &Systems,
    kind: &'static str,
    now: chrono::DateTime<chrono::Utc>,
) -> Bundle {
    let entry = (0..record.messages.len())
        .map(|i| {
            let resource = communication(record, systems, i);
            let request = (kind == "transaction").then(|| EntryRequest {
                method: "POST",
                url: "Communication",
                if_none_exist: format!(
                    "identifier={MESSAGE_SYSTEM}|{}",
                    message_identifier(record, record.messages[i].view.id)
                ),
            });
            Entry {
                full_url: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                resource,
                request,
            }
        })
        .collect();
    Bundle {
        resource_type: "Bundle",
        id: uuid::Uuid::new_v4().to_string(),
        kind,
        timestamp: rfc3339(now),
        entry,
    }
}

/// The thread as a `collection` Bundle: what `GET …/export` answers.
pub fn collection(
    record: &ThreadRecord,
    systems: &Systems,
    now: chrono::DateTime<chrono::Utc>,
) -> Bundle {
    bundle(record, systems, "collection", now)
}

/// The thread as a `transaction` Bundle, each entry a `POST Communication` unless the
/// server has it already (`ifNoneExist` on its identifier): what the record at close
/// sends.
pub fn transaction(
    record: &ThreadRecord,
    systems: &Systems,
    now: chrono::DateTime<chrono::Utc>,
) -> Bundle {
    bundle(record, systems, "transaction", now)
}

/// A Bundle as FHIR JSON.
pub fn to_json(bundle: &Bundle) -> String {
    serde_json::to_string(bundle).unwrap_or_default()
}
