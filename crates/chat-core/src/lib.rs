//! The pure domain of the chat service.
//!
//! This crate does no I/O: it holds the types, the authorization policy, the retention
//! rules, the ports every adapter implements, the encryption contract, and
//! [`ChatService`], which runs the use cases over those ports. Adapters live in other
//! crates and are chosen at run time, so ports are object-safe and held as `Arc<dyn _>`.
#![forbid(unsafe_code)]

mod appends;
pub mod audit;
pub mod channel;
pub mod crypto;
pub mod error;
pub mod ids;
pub mod jobs;
pub mod key_cache;
pub mod kind;
pub mod media;
pub mod model;
pub mod policy;
pub mod ports;
pub mod retention;
pub mod service;
mod turns;
pub mod validation;
pub mod webhook;

pub use audit::{AuditAction, AuditEvent, AuditOutcome, AuditSink};
pub use channel::{Channel, ChatEventName};
pub use error::{ChatError, StoreError};
pub use ids::{ClockIds, JobId, MessageId, RequestId, ThreadId, UserId};
pub use model::{
    Coordinates, CoordinatesError, IdempotencyKey, InboxCursor, InboxEntry, InboxPage, InboxQuery,
    InvalidIdempotencyKey, MediaPath, MediaPathError, MessageContent, MessageKind, MessageList,
    MessagePage, MessageView, RecordState, ServiceRequest, StoredMessage, TextBody, TextBodyError,
    Thread, ThreadStatus, Timestamp, User,
};
pub use retention::Retention;
pub use service::{
    ChatService, ChatSettings, InboxRequest, JobOutcome, OpenedMedia, PageRequest, Ports,
    PurgeReport, RecordedMessage, RotationReport, SweepReport, ThreadRecord, UnreadReport,
    WebhookBatching,
};
pub use validation::{Invalid, ValidationErrors};
pub use webhook::WebhookEvent;
