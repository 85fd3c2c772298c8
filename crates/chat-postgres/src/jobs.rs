//! The durable job queue: claimed with `FOR UPDATE SKIP LOCKED`, so several instances
//! share it without taking the same job twice.

use crate::schema::chat_jobs as jobs;
use crate::{db, PgStore};
use async_trait::async_trait;
use chat_core::ports::{ClaimedJob, ExpiredLeases, JobKind, JobQueue, StoreResult};
use chat_core::{JobId, StoreError, ThreadId, Timestamp};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    thread_id: i64,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    delivery_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    payload: Option<String>,
}

#[async_trait]
impl JobQueue for PgStore {
    async fn enqueue(&self, kind: JobKind, run_at: Timestamp) -> StoreResult<JobId> {
        let (name, thread, delivery_id, payload) = match kind {
            JobKind::PurgeThread(thread) => ("purge_thread", thread, None, None),
            JobKind::RecordThread(thread) => ("record_thread", thread, None, None),
            JobKind::Webhook(delivery) => (
                "webhook",
                delivery.thread,
                Some(delivery.id),
                Some(delivery.body),
            ),
        };
        self.run(async move |mut conn| {
            let id: i64 = diesel::insert_into(jobs::table)
                .values((
                    jobs::kind.eq(name),
                    jobs::thread_id.eq(thread.get()),
                    jobs::run_at.eq(run_at),
                    jobs::delivery_id.eq(delivery_id),
                    jobs::payload.eq(payload),
                ))
                .returning(jobs::id)
                .get_result(&mut conn)
                .await
                .map_err(db)?;
            JobId::new(id).ok_or_else(|| StoreError::Corrupt(format!("job id {id}")))
        })
        .await
    }

    async fn claim(
        &self,
        now: Timestamp,
        lease: std::time::Duration,
    ) -> StoreResult<Option<ClaimedJob>> {
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::days(1));
        self.run(async move |mut conn| {
            let claimed = diesel::sql_query(
                "UPDATE chat_jobs SET attempts = attempts + 1, leased_until = $2 \
                 WHERE id = ( \
                   SELECT id FROM chat_jobs \
                   WHERE failed_at IS NULL AND run_at <= $1 \
                     AND (leased_until IS NULL OR leased_until <= $1) \
                   ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, kind, thread_id, attempts, delivery_id, payload",
            )
            .bind::<Timestamptz, _>(now)
            .bind::<Timestamptz, _>(until)
            .get_result::<Claimed>(&mut conn)
            .await
            .optional()
            .map_err(db)?;
            let Some(c) = claimed else { return Ok(None) };
            let thread = ThreadId::new(c.thread_id)
                .ok_or_else(|| StoreError::Corrupt(format!("job thread {}", c.thread_id)))?;
            let kind = match c.kind.as_str() {
                "purge_thread" => JobKind::PurgeThread(thread),
                "record_thread" => JobKind::RecordThread(thread),
                "webhook" => match (c.delivery_id, c.payload) {
                    (Some(id), Some(body)) => {
                        JobKind::Webhook(chat_core::ports::WebhookDelivery { id, thread, body })
                    }
                    _ => return Err(StoreError::Corrupt("webhook job without its body".into())),
                },
                other => return Err(StoreError::Corrupt(format!("job kind {other:?}"))),
            };
            Ok(Some(ClaimedJob {
                id: JobId::new(c.id)
                    .ok_or_else(|| StoreError::Corrupt(format!("job id {}", c.id)))?,
                kind,
                attempt: u32::try_from(c.attempts).unwrap_or(0),
            }))
        })
        .await
    }

    async fn complete(&self, id: JobId) -> StoreResult<()> {
        self.run(async move |mut conn| {
            diesel::delete(jobs::table.find(id.get()))
                .execute(&mut conn)
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn fail(&self, id: JobId, error: &str, run_at: Option<Timestamp>) -> StoreResult<()> {
        let error = error.to_owned();
        self.run(async move |mut conn| {
            let target = jobs::table.find(id.get());
            let update = diesel::update(target);
            match run_at {
                Some(at) => {
                    update
                        .set((
                            jobs::leased_until.eq(None::<Timestamp>),
                            jobs::last_error.eq(&error),
                            jobs::run_at.eq(at),
                        ))
                        .execute(&mut conn)
                        .await
                }
                None => {
                    update
                        .set((
                            jobs::leased_until.eq(None::<Timestamp>),
                            jobs::last_error.eq(&error),
                            jobs::failed_at.eq(diesel::dsl::now),
                        ))
                        .execute(&mut conn)
                        .await
                }
            }
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn failed_count(&self) -> StoreResult<u64> {
        self.run(async move |mut conn| {
            let n: i64 = jobs::table
                .filter(jobs::failed_at.is_not_null())
                .count()
                .get_result(&mut conn)
                .await
                .map_err(db)?;
            Ok(n as u64)
        })
        .await
    }

    async fn expire_leases(&self, now: Timestamp, max_attempts: u32) -> StoreResult<ExpiredLeases> {
        let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        self.run(async move |mut conn| {
            // One statement, so a worker finishing meanwhile is either seen or not.
            let settled = diesel::sql_query(
                "UPDATE chat_jobs SET leased_until = NULL, last_error = $3, \
                   failed_at = CASE WHEN attempts >= $2 THEN $1 END, \
                   run_at = CASE WHEN attempts >= $2 THEN run_at ELSE $1 END \
                 WHERE failed_at IS NULL AND leased_until <= $1 \
                 RETURNING (failed_at IS NOT NULL) AS failed",
            )
            .bind::<Timestamptz, _>(now)
            .bind::<Integer, _>(max_attempts)
            .bind::<Text, _>(chat_core::jobs::LEASE_EXPIRED)
            .load::<Settled>(&mut conn)
            .await
            .map_err(db)?;
            let failed = settled.iter().filter(|s| s.failed).count() as u64;
            Ok(ExpiredLeases {
                requeued: settled.len() as u64 - failed,
                failed,
            })
        })
        .await
    }
}

#[derive(QueryableByName)]
struct Settled {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    failed: bool,
}
