//! Rows as diesel reads and writes them, and their conversion into core types. Nothing
//! here leaves the crate.

use crate::schema::*;
use chat_core::crypto::{SealedContent, WrappedKey};
use chat_core::{
    MessageId, MessageKind, RecordState, RequestId, ServiceRequest, StoreError, StoredMessage,
    Thread, ThreadId, ThreadStatus, Timestamp, UserId,
};
use diesel::prelude::*;

fn id<T>(raw: i64, make: fn(i64) -> Option<T>, what: &str) -> Result<T, StoreError> {
    make(raw).ok_or_else(|| StoreError::Corrupt(format!("{what} id {raw} is not positive")))
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = service_requests)]
pub struct RequestRow {
    pub id: i64,
    pub client_id: i64,
    pub staff_ids: Vec<i64>,
    pub record: bool,
}

impl RequestRow {
    pub fn into_core(self) -> Result<ServiceRequest, StoreError> {
        Ok(ServiceRequest::new(
            id(self.id, RequestId::new, "request")?,
            id(self.client_id, UserId::new, "client")?,
            users(self.staff_ids)?,
        )
        .with_record(self.record))
    }
}

/// Staff ids as stored.
pub fn users(raw: Vec<i64>) -> Result<Vec<UserId>, StoreError> {
    raw.into_iter()
        .map(|u| id(u, UserId::new, "staff"))
        .collect()
}

#[derive(Queryable, Selectable, QueryableByName)]
#[diesel(table_name = chat_threads)]
pub struct ThreadRow {
    pub id: i64,
    pub request_id: i64,
    pub admin_id: Option<i64>,
    pub client_id: i64,
    pub status: String,
    pub opened_at: Timestamp,
    pub closed_at: Option<Timestamp>,
    pub staff_ids: Vec<i64>,
    pub hold: bool,
    pub record_state: Option<String>,
}

impl ThreadRow {
    pub fn into_core(self) -> Result<Thread, StoreError> {
        let status = ThreadStatus::parse(&self.status)
            .ok_or_else(|| StoreError::Corrupt(format!("thread status {:?}", self.status)))?;
        Ok(Thread {
            id: id(self.id, ThreadId::new, "thread")?,
            request_id: id(self.request_id, RequestId::new, "request")?,
            admin_id: self
                .admin_id
                .map(|a| id(a, UserId::new, "admin"))
                .transpose()?,
            client_id: id(self.client_id, UserId::new, "client")?,
            status,
            opened_at: self.opened_at,
            closed_at: self.closed_at,
            staff_ids: users(self.staff_ids)?,
            hold: self.hold,
            record: match self.record_state.as_deref() {
                None => RecordState::None,
                Some(state) => state
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("thread record state {state:?}")))?,
            },
        })
    }
}

/// A thread as the inbox reads it, with its activity and the reader's marker.
pub struct InboxRow {
    pub thread: ThreadRow,
    pub last_message_id: Option<i64>,
    pub last_message_at: Option<Timestamp>,
    pub read_up_to: Option<i64>,
}

impl InboxRow {
    pub fn into_core(self) -> Result<chat_core::InboxEntry, StoreError> {
        let message = |raw: Option<i64>| raw.map(|m| id(m, MessageId::new, "message")).transpose();
        Ok(chat_core::InboxEntry {
            thread: self.thread.into_core()?,
            last_message_id: message(self.last_message_id)?,
            last_message_at: self.last_message_at,
            read_up_to: message(self.read_up_to)?,
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = chat_thread_keys)]
pub struct KeyRow {
    pub thread_id: i64,
    pub master_key_version: String,
    pub wrapped_key: Vec<u8>,
}

impl KeyRow {
    pub fn new(thread: ThreadId, key: &WrappedKey) -> Self {
        Self {
            thread_id: thread.get(),
            master_key_version: key.version().to_owned(),
            wrapped_key: key.as_bytes().to_vec(),
        }
    }

    pub fn into_core(self) -> Result<(ThreadId, WrappedKey), StoreError> {
        Ok((
            id(self.thread_id, ThreadId::new, "thread")?,
            WrappedKey::new(self.master_key_version, self.wrapped_key),
        ))
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = chat_messages)]
pub struct MessageRow {
    pub id: i64,
    pub thread_id: i64,
    pub sender_id: i64,
    pub kind: String,
    pub nonce: Option<Vec<u8>>,
    pub ciphertext: Option<Vec<u8>>,
    pub created_at: Timestamp,
}

impl MessageRow {
    pub fn new(m: &StoredMessage) -> Self {
        // The sealed format is `nonce || ciphertext || tag`; the columns keep them apart.
        let (nonce, ciphertext) = match &m.content {
            Some(sealed) => {
                let (n, c) = sealed
                    .as_bytes()
                    .split_at(SealedContent::NONCE_LEN.min(sealed.as_bytes().len()));
                (Some(n.to_vec()), Some(c.to_vec()))
            }
            None => (None, None),
        };
        Self {
            id: m.id.get(),
            thread_id: m.thread_id.get(),
            sender_id: m.sender_id.get(),
            kind: m.kind.as_str().to_owned(),
            nonce,
            ciphertext,
            created_at: m.created_at,
        }
    }

    pub fn into_core(self) -> Result<StoredMessage, StoreError> {
        let kind = MessageKind::parse(&self.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("message type {:?}", self.kind)))?;
        let content = match (self.nonce, self.ciphertext) {
            (Some(mut nonce), Some(ciphertext)) => {
                nonce.extend_from_slice(&ciphertext);
                Some(SealedContent::from_bytes(nonce))
            }
            _ => None,
        };
        Ok(StoredMessage {
            id: id(self.id, MessageId::new, "message")?,
            thread_id: id(self.thread_id, ThreadId::new, "thread")?,
            sender_id: id(self.sender_id, UserId::new, "sender")?,
            kind,
            content,
            created_at: self.created_at,
        })
    }
}
