//! Sealed messages.

use crate::rows::MessageRow;
use crate::schema::chat_messages as messages;
use crate::{db, PgStore};
use async_trait::async_trait;
use chat_core::ports::{MessageStore, RetentionCut, StoreResult};
use chat_core::{MessageId, MessagePage, StoreError, StoredMessage, ThreadId, Timestamp};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};

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
        let thread = message.thread_id.get();
        // `OFFSET keep - 1` finds the oldest message to keep; older ones go.
        let keep_offset = cut.keep_newest.map(|k| i64::from(k.get()) - 1);
        self.run(|mut conn| async move {
            conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                {
                    // Appends to one thread take turns, so that two concurrent posts
                    // cannot each keep `keep` rows and leave `keep + 1`.
                    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                        .bind::<BigInt, _>(thread)
                        .execute(conn)
                        .await?;
                    diesel::insert_into(messages::table)
                        .values(&row)
                        .execute(conn)
                        .await?;
                    if cut.expired_before.is_some() || keep_offset.is_some() {
                        diesel::sql_query(
                            "DELETE FROM chat_messages WHERE thread_id = $1 AND ( \
                               created_at < $2 \
                               OR ($3::bigint IS NOT NULL AND id < ( \
                                 SELECT id FROM chat_messages WHERE thread_id = $1 \
                                 ORDER BY id DESC OFFSET $3 LIMIT 1)))",
                        )
                        .bind::<BigInt, _>(thread)
                        .bind::<Nullable<Timestamptz>, _>(cut.expired_before)
                        .bind::<Nullable<BigInt>, _>(keep_offset)
                        .execute(conn)
                        .await?;
                    }
                    Ok(())
                }
            })
            .await
            .map_err(db)
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
