//! Sealed messages.

use crate::rows::MessageRow;
use crate::schema::chat_messages as messages;
use crate::schema::chat_post_keys as post_keys;
use crate::{db, PgStore};
use async_trait::async_trait;
use chat_core::ports::{Appended, MessageStore, RetentionCut, StoreResult};
use chat_core::{
    IdempotencyKey, MessageId, MessagePage, StoreError, StoredMessage, ThreadId, Timestamp, UserId,
};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Array, BigInt, Bytea, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;

/// What `chat_append_batch()` raises (SQLSTATE CH001) for an id at or below the
/// thread's newest, which it gives as the error's detail.
const ID_BEHIND: &str = "message id behind the thread's newest";

diesel::define_sql_function! {
    // The SQL function's own ten parameters.
    #[expect(clippy::too_many_arguments, reason = "the SQL function's own parameters")]
    /// migrations/*_append_batch: one answer per message, `NULL` when stored, else the
    /// id its idempotency key already names; raises `CH001` for an id behind the newest.
    fn chat_append_batch(
        p_thread_id: BigInt,
        p_ids: Array<BigInt>,
        p_sender_ids: Array<BigInt>,
        p_types: Array<Text>,
        p_nonces: Array<Nullable<Bytea>>,
        p_ciphertexts: Array<Nullable<Bytea>>,
        p_created_at: Array<Timestamptz>,
        p_keys: Array<Nullable<Text>>,
        p_expired_before: Nullable<Timestamptz>,
        p_keep_newest: Nullable<BigInt>,
    ) -> Array<Nullable<BigInt>>;
}

diesel::define_sql_function! {
    /// migrations/*_inbox_functions: one count per thread, in order.
    fn chat_unread_counts(
        p_threads: Array<BigInt>,
        p_markers: Array<BigInt>,
        p_reader: BigInt,
        p_expired_before: Nullable<Timestamptz>,
    ) -> BigInt;
}

/// A batch as `chat_append_batch()` takes it: one array per column.
struct BatchColumns<'a> {
    ids: Vec<i64>,
    senders: Vec<i64>,
    kinds: Vec<String>,
    nonces: Vec<Option<Vec<u8>>>,
    ciphertexts: Vec<Option<Vec<u8>>>,
    created_at: Vec<Timestamp>,
    keys: Vec<Option<&'a str>>,
}

impl<'a> BatchColumns<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            ids: Vec::with_capacity(n),
            senders: Vec::with_capacity(n),
            kinds: Vec::with_capacity(n),
            nonces: Vec::with_capacity(n),
            ciphertexts: Vec::with_capacity(n),
            created_at: Vec::with_capacity(n),
            keys: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, row: MessageRow, key: Option<&'a str>) {
        self.ids.push(row.id);
        self.senders.push(row.sender_id);
        self.kinds.push(row.kind);
        self.nonces.push(row.nonce);
        self.ciphertexts.push(row.ciphertext);
        self.created_at.push(row.created_at);
        self.keys.push(key);
    }
}

#[async_trait]
impl MessageStore for PgStore {
    /// Drawn in the instance ([`chat_core::ClockIds`]); `chat_append_batch()` checks
    /// the order.
    async fn next_id(&self, _thread: ThreadId) -> StoreResult<MessageId> {
        self.message_ids.next(chrono::Utc::now())
    }

    /// One prepared call of `chat_append_batch()` for the whole batch (see
    /// migrations/*_append_batch; the locking is *_append_function's), which also
    /// records the thread's activity, in a transaction that commits only if the answer
    /// arrived within the deadline: past it the connection is closed with the
    /// transaction open, so the server rolls it back whenever the call finishes (after a
    /// lock wait, or a stalled backend resuming). `BEGIN` is pipelined with the call:
    /// two round trips per batch, the call and `COMMIT`. Only a failure of the `COMMIT`
    /// itself leaves the outcome in doubt; the idempotency keys resolve that. A message
    /// behind the thread's newest aborts the transaction (its `COMMIT` then rolls back):
    /// the whole batch answers `Behind`.
    async fn append_all(
        &self,
        batch: &[(StoredMessage, Option<IdempotencyKey>)],
        cut: RetentionCut,
    ) -> StoreResult<Vec<Appended>> {
        let Some((first, _)) = batch.first() else {
            return Ok(Vec::new());
        };
        let thread = first.thread_id;
        if batch.iter().any(|(m, _)| m.thread_id != thread) {
            return Err(StoreError::Corrupt(
                "append_all: messages of several threads".into(),
            ));
        }
        let mut columns = BatchColumns::with_capacity(batch.len());
        for (m, key) in batch {
            columns.push(MessageRow::new(m), key.as_ref().map(IdempotencyKey::as_str));
        }
        let keep = cut.keep_newest.map(|k| i64::from(k.get()));
        let last_id = columns.ids.last().copied();
        self.in_transaction(async |mut conn| {
            // A query-builder statement: prepared once per connection and cached.
            let answer = diesel::select(chat_append_batch(
                thread.get(),
                &columns.ids,
                &columns.senders,
                &columns.kinds,
                &columns.nonces,
                &columns.ciphertexts,
                &columns.created_at,
                &columns.keys,
                cut.expired_before,
                keep,
            ))
            .get_result::<Vec<Option<i64>>>(&mut conn)
            .await;
            let firsts = match answer {
                Ok(firsts) if firsts.len() == batch.len() => firsts,
                Ok(_) => return Err(StoreError::Corrupt("chat_append_batch: answers".into())),
                Err(DieselError::DatabaseError(_, info)) if info.message() == ID_BEHIND => {
                    let newest = info.details().and_then(|d| d.parse().ok());
                    let newest = newest.and_then(MessageId::new).ok_or_else(|| {
                        StoreError::Corrupt("chat_append_batch: no newest id".into())
                    })?;
                    self.message_ids.raise_floor(newest);
                    return Ok(vec![Appended::Behind; batch.len()]);
                }
                // The same id, drawn at the same microsecond by another instance for
                // another thread: drawing again gives another.
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
                    if info.constraint_name() == Some("chat_messages_pkey") =>
                {
                    if let Some(last) = last_id.and_then(MessageId::new) {
                        self.message_ids.raise_floor(last);
                    }
                    return Ok(vec![Appended::Behind; batch.len()]);
                }
                Err(e) => return Err(db(e)),
            };
            firsts
                .into_iter()
                .map(|first| match first {
                    None => Ok(Appended::Stored),
                    Some(first) => MessageId::new(first)
                        .map(Appended::Duplicate)
                        .ok_or_else(|| StoreError::Corrupt("chat_append_batch: first id".into())),
                })
                .collect()
        })
        .await
    }

    /// In the same commit as the append (above).
    fn records_thread_activity(&self) -> bool {
        true
    }

    async fn page(
        &self,
        thread: ThreadId,
        before: Option<MessageId>,
        limit: u32,
        expired_before: Option<Timestamp>,
    ) -> StoreResult<MessagePage<StoredMessage>> {
        self.run(async move |mut conn| {
            let mut query = messages::table
                .filter(messages::thread_id.eq(thread.get()))
                .into_boxed();
            if let Some(before) = before {
                query = query.filter(messages::id.lt(before.get()));
            }
            if let Some(cut) = expired_before {
                query = query.filter(messages::created_at.ge(cut));
            }
            // One more than asked tells whether older messages exist.
            let mut rows: Vec<MessageRow> = query
                .order(messages::id.desc())
                .limit(i64::from(limit) + 1)
                .select(MessageRow::as_select())
                .load(&mut conn)
                .await
                .map_err(db)?;
            let has_more = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            rows.reverse();
            let messages = rows
                .into_iter()
                .map(MessageRow::into_core)
                .collect::<Result<_, _>>()?;
            Ok(MessagePage { messages, has_more })
        })
        .await
    }

    async fn get(&self, thread: ThreadId, id: MessageId) -> StoreResult<Option<StoredMessage>> {
        self.run(async move |mut conn| {
            messages::table
                .filter(messages::thread_id.eq(thread.get()))
                .filter(messages::id.eq(id.get()))
                .select(MessageRow::as_select())
                .first(&mut conn)
                .await
                .optional()
                .map_err(db)?
                .map(MessageRow::into_core)
                .transpose()
        })
        .await
    }

    async fn redact(&self, thread: ThreadId, id: MessageId) -> StoreResult<bool> {
        self.run(async move |mut conn| {
            let n = diesel::update(
                messages::table
                    .filter(messages::thread_id.eq(thread.get()))
                    .filter(messages::id.eq(id.get()))
                    .filter(messages::ciphertext.is_not_null()),
            )
            .set((
                messages::nonce.eq(None::<Vec<u8>>),
                messages::ciphertext.eq(None::<Vec<u8>>),
            ))
            .execute(&mut conn)
            .await
            .map_err(db)?;
            Ok(n > 0)
        })
        .await
    }

    /// `chat_unread_counts()` (migrations/*_inbox_functions), one call for the page of
    /// threads: each count walks the thread's `(thread_id, id)` index above the marker
    /// (a thread keeps at most its cap).
    async fn unread_counts(
        &self,
        reader: UserId,
        threads: &[(ThreadId, Option<MessageId>)],
        expired_before: Option<Timestamp>,
    ) -> StoreResult<Vec<u64>> {
        let ids: Vec<i64> = threads.iter().map(|(t, _)| t.get()).collect();
        let markers: Vec<i64> = threads
            .iter()
            .map(|(_, m)| m.map_or(0, MessageId::get))
            .collect();
        self.run(async move |mut conn| {
            let counts: Vec<i64> = diesel::select(chat_unread_counts(
                ids,
                markers,
                reader.get(),
                expired_before,
            ))
            .load(&mut conn)
            .await
            .map_err(db)?;
            Ok(counts.into_iter().map(|c| c.max(0) as u64).collect())
        })
        .await
    }

    async fn redact_thread(&self, thread: ThreadId) -> StoreResult<u64> {
        self.run(async move |mut conn| {
            let n = diesel::update(
                messages::table
                    .filter(messages::thread_id.eq(thread.get()))
                    .filter(messages::ciphertext.is_not_null()),
            )
            .set((
                messages::nonce.eq(None::<Vec<u8>>),
                messages::ciphertext.eq(None::<Vec<u8>>),
            ))
            .execute(&mut conn)
            .await
            .map_err(db)?;
            Ok(n as u64)
        })
        .await
    }

    async fn delete_expired(
        &self,
        expired_before: Timestamp,
        keep: &[ThreadId],
    ) -> StoreResult<u64> {
        let keep: Vec<i64> = keep.iter().map(|t| t.get()).collect();
        self.run(async move |mut conn| {
            let n = diesel::delete(
                messages::table
                    .filter(messages::created_at.lt(expired_before))
                    .filter(messages::thread_id.ne_all(&keep)),
            )
            .execute(&mut conn)
            .await
            .map_err(db)?;
            diesel::delete(
                post_keys::table
                    .filter(post_keys::created_at.lt(expired_before))
                    .filter(post_keys::thread_id.ne_all(&keep)),
            )
            .execute(&mut conn)
            .await
            .map_err(db)?;
            Ok(n as u64)
        })
        .await
    }
}
