//! Requests, threads and wrapped thread keys.

use crate::rows::{KeyRow, RequestRow, ThreadRow};
use crate::schema::{
    chat_thread_keys as keys, chat_threads as threads, service_requests as requests,
};
use crate::{db, PgStore};
use async_trait::async_trait;
use chat_core::crypto::WrappedKey;
use chat_core::ports::{RequestDirectory, StoreResult, ThreadKeyStore, ThreadRepository};
use chat_core::{RequestId, ServiceRequest, Thread, ThreadId, Timestamp, UserId};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Timestamptz};
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

#[async_trait]
impl RequestDirectory for PgStore {
    async fn upsert(&self, request: ServiceRequest) -> StoreResult<ServiceRequest> {
        self.run(|mut conn| async move {
            let row = RequestRow {
                id: request.id.get(),
                client_id: request.client_id.get(),
            };
            diesel::insert_into(requests::table)
                .values(&row)
                .on_conflict(requests::id)
                .do_update()
                .set((
                    requests::client_id.eq(excluded(requests::client_id)),
                    requests::updated_at.eq(diesel::dsl::now),
                ))
                .returning(RequestRow::as_returning())
                .get_result(&mut conn)
                .await
                .map_err(db)?
                .into_core()
        })
        .await
    }

    async fn get(&self, id: RequestId) -> StoreResult<Option<ServiceRequest>> {
        self.run(|mut conn| async move {
            requests::table
                .find(id.get())
                .select(RequestRow::as_select())
                .first(&mut conn)
                .await
                .optional()
                .map_err(db)?
                .map(RequestRow::into_core)
                .transpose()
        })
        .await
    }
}

#[async_trait]
impl ThreadRepository for PgStore {
    async fn open_for_request(
        &self,
        request: &ServiceRequest,
        admin: Option<UserId>,
        now: Timestamp,
    ) -> StoreResult<Thread> {
        let request = *request;
        self.run(|mut conn| async move {
            // One statement: concurrent opens of one request meet on the unique index
            // and all return the same row; an assigned admin is never replaced.
            diesel::sql_query(
                "INSERT INTO chat_threads (request_id, admin_id, client_id, status, opened_at) \
                 VALUES ($1, $2, $3, 'open', $4) \
                 ON CONFLICT (request_id) DO UPDATE \
                   SET admin_id = COALESCE(chat_threads.admin_id, EXCLUDED.admin_id) \
                 RETURNING id, request_id, admin_id, client_id, status, opened_at, closed_at",
            )
            .bind::<BigInt, _>(request.id.get())
            .bind::<Nullable<BigInt>, _>(admin.map(UserId::get))
            .bind::<BigInt, _>(request.client_id.get())
            .bind::<Timestamptz, _>(now)
            .get_result::<ThreadRow>(&mut conn)
            .await
            .map_err(db)?
            .into_core()
        })
        .await
    }

    async fn get(&self, id: ThreadId) -> StoreResult<Option<Thread>> {
        self.run(|mut conn| async move {
            threads::table
                .find(id.get())
                .select(ThreadRow::as_select())
                .first(&mut conn)
                .await
                .optional()
                .map_err(db)?
                .map(ThreadRow::into_core)
                .transpose()
        })
        .await
    }

    async fn close(&self, id: ThreadId, now: Timestamp) -> StoreResult<Option<Thread>> {
        self.run(|mut conn| async move {
            diesel::update(threads::table.find(id.get()))
                .set((
                    threads::status.eq("closed"),
                    threads::closed_at.eq(diesel::dsl::sql::<Nullable<Timestamptz>>(
                        "COALESCE(closed_at, ",
                    )
                    .bind::<Timestamptz, _>(now)
                    .sql(")")),
                ))
                .returning(ThreadRow::as_returning())
                .get_result(&mut conn)
                .await
                .optional()
                .map_err(db)?
                .map(ThreadRow::into_core)
                .transpose()
        })
        .await
    }

    async fn closed_threads(
        &self,
        after: Option<ThreadId>,
        limit: u32,
    ) -> StoreResult<Vec<ThreadId>> {
        self.run(|mut conn| async move {
            let ids: Vec<i64> = threads::table
                .filter(threads::status.eq("closed"))
                .filter(threads::id.gt(after.map_or(0, ThreadId::get)))
                .order(threads::id)
                .limit(i64::from(limit))
                .select(threads::id)
                .load(&mut conn)
                .await
                .map_err(db)?;
            Ok(ids.into_iter().filter_map(ThreadId::new).collect())
        })
        .await
    }
}

#[async_trait]
impl ThreadKeyStore for PgStore {
    async fn insert_if_absent(&self, thread: ThreadId, key: WrappedKey) -> StoreResult<WrappedKey> {
        self.run(|mut conn| async move {
            diesel::insert_into(keys::table)
                .values(KeyRow::new(thread, &key))
                .on_conflict_do_nothing()
                .execute(&mut conn)
                .await
                .map_err(db)?;
            // A separate statement, so it sees a row a concurrent insert committed.
            let row = keys::table
                .find(thread.get())
                .select(KeyRow::as_select())
                .first(&mut conn)
                .await
                .map_err(db)?;
            Ok(row.into_core()?.1)
        })
        .await
    }

    async fn get(&self, thread: ThreadId) -> StoreResult<Option<WrappedKey>> {
        self.run(|mut conn| async move {
            let row = keys::table
                .find(thread.get())
                .select(KeyRow::as_select())
                .first(&mut conn)
                .await
                .optional()
                .map_err(db)?;
            Ok(row.map(KeyRow::into_core).transpose()?.map(|(_, k)| k))
        })
        .await
    }

    async fn destroy(&self, thread: ThreadId) -> StoreResult<bool> {
        self.run(|mut conn| async move {
            let n = diesel::delete(keys::table.find(thread.get()))
                .execute(&mut conn)
                .await
                .map_err(db)?;
            Ok(n > 0)
        })
        .await
    }

    async fn wrapped_under_other_than(
        &self,
        version: &str,
        after: Option<ThreadId>,
        limit: u32,
    ) -> StoreResult<Vec<(ThreadId, WrappedKey)>> {
        let version = version.to_owned();
        self.run(|mut conn| async move {
            keys::table
                .filter(keys::master_key_version.ne(version))
                .filter(keys::thread_id.gt(after.map_or(0, ThreadId::get)))
                .order(keys::thread_id)
                .limit(i64::from(limit))
                .select(KeyRow::as_select())
                .load(&mut conn)
                .await
                .map_err(db)?
                .into_iter()
                .map(KeyRow::into_core)
                .collect()
        })
        .await
    }

    async fn replace(
        &self,
        thread: ThreadId,
        old: &WrappedKey,
        new: WrappedKey,
    ) -> StoreResult<bool> {
        let old = old.clone();
        self.run(|mut conn| async move {
            let n = diesel::update(
                keys::table
                    .find(thread.get())
                    .filter(keys::master_key_version.eq(old.version()))
                    .filter(keys::wrapped_key.eq(old.as_bytes())),
            )
            .set((
                keys::master_key_version.eq(new.version()),
                keys::wrapped_key.eq(new.as_bytes()),
            ))
            .execute(&mut conn)
            .await
            .map_err(db)?;
            Ok(n > 0)
        })
        .await
    }
}
