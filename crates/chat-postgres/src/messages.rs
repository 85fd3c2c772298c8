//! Sealed messages.

use crate::rows::MessageRow;
use crate::schema::chat_messages as messages;
use crate::{db, PgStore};
use async_trait::async_trait;
use chat_core::ports::{MessageStore, RetentionCut, StoreResult};
use chat_core::{MessageId, MessagePage, StoreError, StoredMessage, ThreadId, Timestamp};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;

#[derive(QueryableByName)]
struct NextId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[async_trait]
impl MessageStore for PgStore {
    async fn next_id(&self, _thread: ThreadId) -> StoreResult<MessageId> {
        self.run(|mut conn| async move {
            let next = diesel::sql_query("SELECT nextval('chat_message_ids') AS id")
                .get_result::<NextId>(&mut conn)
                .await
                .map_err(db)?;
            MessageId::new(next.id)
                .ok_or_else(|| StoreError::Corrupt(format!("message id {}", next.id)))
        })
        .await
    }

    async fn append(&self, message: StoredMessage, cut: RetentionCut) -> StoreResult<()> {
        let row = MessageRow::new(&message);
        self.run(|mut conn| async move {
            // One round trip; see migrations/*_append_function for the locking.
            diesel::sql_query("SELECT chat_append_message($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind::<BigInt, _>(row.id)
                .bind::<BigInt, _>(row.thread_id)
                .bind::<BigInt, _>(row.sender_id)
                .bind::<Text, _>(&row.kind)
                .bind::<Nullable<Bytea>, _>(&row.nonce)
                .bind::<Nullable<Bytea>, _>(&row.ciphertext)
                .bind::<Timestamptz, _>(row.created_at)
                .bind::<Nullable<Timestamptz>, _>(cut.expired_before)
                .bind::<Nullable<BigInt>, _>(cut.keep_newest.map(|k| i64::from(k.get())))
                .execute(&mut conn)
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn page(
        &self,
        thread: ThreadId,
        before: Option<MessageId>,
        limit: u32,
        expired_before: Option<Timestamp>,
    ) -> StoreResult<MessagePage<StoredMessage>> {
        self.run(|mut conn| async move {
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

    async fn redact_thread(&self, thread: ThreadId) -> StoreResult<u64> {
        self.run(|mut conn| async move {
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

    async fn delete_thread(&self, thread: ThreadId) -> StoreResult<u64> {
        self.run(|mut conn| async move {
            let n = diesel::delete(messages::table.filter(messages::thread_id.eq(thread.get())))
                .execute(&mut conn)
                .await
                .map_err(db)?;
            Ok(n as u64)
        })
        .await
    }

    async fn delete_expired(&self, expired_before: Timestamp) -> StoreResult<u64> {
        self.run(|mut conn| async move {
            let n = diesel::delete(messages::table.filter(messages::created_at.lt(expired_before)))
                .execute(&mut conn)
                .await
                .map_err(db)?;
            Ok(n as u64)
        })
        .await
    }
}
