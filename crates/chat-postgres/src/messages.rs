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

/// What `chat_append_message()` raises (SQLSTATE CH001) for an id at or below the
/// thread's newest, which it gives as the error's detail.
const ID_BEHIND: &str = "message id behind the thread's newest";

diesel::define_sql_function! {
    // The SQL function's own ten parameters.
    #[allow(clippy::too_many_arguments)]
    /// migrations/*_post_idempotency_keys: `NULL` when stored, else the id the
    /// idempotency key already names; raises `CH001` for an id behind the newest.
    fn chat_append_message(
        p_id: BigInt,
        p_thread_id: BigInt,
        p_sender_id: BigInt,
        p_type: Text,
        p_nonce: Nullable<Bytea>,
        p_ciphertext: Nullable<Bytea>,
        p_created_at: Timestamptz,
        p_expired_before: Nullable<Timestamptz>,
        p_keep_newest: Nullable<BigInt>,
        p_key: Nullable<Text>,
    ) -> Nullable<BigInt>;
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

#[async_trait]
impl MessageStore for PgStore {
    /// Drawn in the instance ([`chat_core::ClockIds`]); `chat_append_message()` checks
    /// the order.
    async fn next_id(&self, _thread: ThreadId) -> StoreResult<MessageId> {
        self.message_ids.next(chrono::Utc::now())
    }

    /// One call of `chat_append_message()` per message (see migrations/*_append_function
    /// for the locking, *_append_in_id_order for the order check and
    /// *_post_idempotency_keys for the key), pipelined, in a transaction that commits
    /// only if every answer arrived within the deadline: past it the connection is
    /// closed with the transaction open, so the server rolls it back whenever the
    /// statements finish (after a lock wait, or a stalled backend resuming). `BEGIN` is
    /// pipelined with the calls: two round trips per batch, the calls and `COMMIT`.
    /// Only a failure of the `COMMIT` itself leaves the outcome in doubt; the
    /// idempotency keys resolve that. A message behind the thread's newest aborts the
    /// transaction (its `COMMIT` then rolls back): the whole batch answers `Behind`.
    async fn append_all(
        &self,
        batch: &[(StoredMessage, Option<IdempotencyKey>)],
        cut: RetentionCut,
    ) -> StoreResult<Vec<Appended>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(MessageRow, Option<&str>)> = batch
            .iter()
            .map(|(m, key)| (MessageRow::new(m), key.as_ref().map(IdempotencyKey::as_str)))
            .collect();
        let keep = cut.keep_newest.map(|k| i64::from(k.get()));
        self.in_transaction(async |conn| {
            let mut handles = vec![conn; rows.len()];
            let calls = rows
                .iter()
                .zip(handles.iter_mut())
                .map(|((row, key), handle)| {
                    // A query-builder statement: prepared once per connection and cached.
                    diesel::select(chat_append_message(
                        row.id,
                        row.thread_id,
                        row.sender_id,
                        &row.kind,
                        &row.nonce,
                        &row.ciphertext,
                        row.created_at,
                        cut.expired_before,
                        keep,
                        *key,
                    ))
                    .get_result::<Option<i64>>(handle)
                });
            let answers = futures::future::join_all(calls).await;
            let mut appended = Vec::with_capacity(answers.len());
            for answer in answers {
                match answer {
                    Ok(None) => appended.push(Appended::Stored),
                    Ok(Some(first)) => {
                        appended.push(MessageId::new(first).map(Appended::Duplicate).ok_or_else(
                            || StoreError::Corrupt("chat_append_message: first id".into()),
                        )?)
                    }
                    Err(DieselError::DatabaseError(_, info)) if info.message() == ID_BEHIND => {
                        let newest = info.details().and_then(|d| d.parse().ok());
                        let newest = newest.and_then(MessageId::new).ok_or_else(|| {
                            StoreError::Corrupt("chat_append_message: no newest id".into())
                        })?;
                        self.message_ids.raise_floor(newest);
                        return Ok(vec![Appended::Behind; rows.len()]);
                    }
                    // The same id, drawn at the same microsecond by another instance for
                    // another thread: drawing again gives another.
                    Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
                        if info.constraint_name() == Some("chat_messages_pkey") =>
                    {
                        if let Some(last) = rows.last().and_then(|(r, _)| MessageId::new(r.id)) {
                            self.message_ids.raise_floor(last);
                        }
                        return Ok(vec![Appended::Behind; rows.len()]);
                    }
                    Err(e) => return Err(db(e)),
                }
            }
            // The thread's activity (the inbox's order), in the same commit: the newest
            // message this batch stored.
            let newest = rows
                .iter()
                .zip(&appended)
                .filter(|(_, a)| **a == Appended::Stored)
                .map(|((row, _), _)| (row.id, row.created_at))
                .max_by_key(|(id, _)| *id);
            if let Some((id, at)) = newest {
                let mut shared = conn;
                crate::threads::record_activity_on(&mut shared, rows[0].0.thread_id, id, at)
                    .await
                    .map_err(db)?;
            }
            Ok(appended)
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

    async fn delete_expired(&self, expired_before: Timestamp) -> StoreResult<u64> {
        self.run(async move |mut conn| {
            let n = diesel::delete(messages::table.filter(messages::created_at.lt(expired_before)))
                .execute(&mut conn)
                .await
                .map_err(db)?;
            diesel::delete(post_keys::table.filter(post_keys::created_at.lt(expired_before)))
                .execute(&mut conn)
                .await
                .map_err(db)?;
            Ok(n as u64)
        })
        .await
    }
}
