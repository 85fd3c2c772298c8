//! The unread checks' schedule (SPEC §10): `chat_unread_checks`, one row per thread,
//! claimed with `FOR UPDATE SKIP LOCKED` so that each check runs on one instance.

use crate::{db, PgStore};
use async_trait::async_trait;
use chat_core::ports::{StoreResult, UnreadCheck, UnreadChecks};
use chat_core::{StoreError, ThreadId, Timestamp};
use diesel::sql_types::{BigInt, Nullable, Timestamptz};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use std::time::Duration;

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = BigInt)]
    thread_id: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    checked_through: Option<Timestamp>,
    #[diesel(sql_type = BigInt)]
    generation: i64,
}

#[async_trait]
impl UnreadChecks for PgStore {
    async fn arm(&self, thread: ThreadId, due: Timestamp) -> StoreResult<()> {
        self.run(async move |mut conn| {
            diesel::sql_query(
                "INSERT INTO chat_unread_checks (thread_id, due_at, generation) VALUES ($1, $2, 1) \
                 ON CONFLICT (thread_id) DO UPDATE SET \
                   due_at = LEAST(chat_unread_checks.due_at, EXCLUDED.due_at), \
                   generation = chat_unread_checks.generation + 1",
            )
            .bind::<BigInt, _>(thread.get())
            .bind::<Timestamptz, _>(due)
            .execute(&mut conn)
            .await
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn claim(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<UnreadCheck>> {
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::days(1));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(async move |mut conn| {
            // Due, or held by a worker whose lease ran out; what arms it from now on is
            // due after this check (`due_at` NULL until then).
            let rows: Vec<Claimed> = diesel::sql_query(
                "WITH due AS ( \
                   SELECT thread_id FROM chat_unread_checks \
                   WHERE (held_until IS NULL AND due_at <= $1) OR held_until <= $1 \
                   ORDER BY COALESCE(held_until, due_at) LIMIT $3 \
                   FOR UPDATE SKIP LOCKED) \
                 UPDATE chat_unread_checks c SET held_until = $2, due_at = NULL \
                 FROM due WHERE c.thread_id = due.thread_id \
                 RETURNING c.thread_id, c.checked_through, c.generation",
            )
            .bind::<Timestamptz, _>(now)
            .bind::<Timestamptz, _>(until)
            .bind::<BigInt, _>(limit)
            .load(&mut conn)
            .await
            .map_err(db)?;
            rows.into_iter()
                .map(|row| {
                    Ok(UnreadCheck {
                        thread: ThreadId::new(row.thread_id).ok_or_else(|| {
                            StoreError::Corrupt(format!("unread check thread {}", row.thread_id))
                        })?,
                        checked_through: row.checked_through,
                        generation: row.generation,
                    })
                })
                .collect()
        })
        .await
    }

    async fn finish(
        &self,
        check: &UnreadCheck,
        checked_through: Timestamp,
        next: Option<Timestamp>,
    ) -> StoreResult<()> {
        let (thread, generation) = (check.thread.get(), check.generation);
        self.run(async move |mut conn| {
            // `due_at` holds only what armed it while it ran: the earlier wins then.
            diesel::sql_query(
                "UPDATE chat_unread_checks SET held_until = NULL, \
                   checked_through = GREATEST(checked_through, $3), \
                   due_at = CASE WHEN generation = $2 THEN $4 ELSE LEAST(due_at, $4) END \
                 WHERE thread_id = $1",
            )
            .bind::<BigInt, _>(thread)
            .bind::<BigInt, _>(generation)
            .bind::<Timestamptz, _>(checked_through)
            .bind::<Nullable<Timestamptz>, _>(next)
            .execute(&mut conn)
            .await
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn forget(&self, thread: ThreadId) -> StoreResult<()> {
        self.run(async move |mut conn| {
            diesel::sql_query("DELETE FROM chat_unread_checks WHERE thread_id = $1")
                .bind::<BigInt, _>(thread.get())
                .execute(&mut conn)
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }
}
