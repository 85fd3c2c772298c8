//! Requests, threads and wrapped thread keys.

use crate::rows::{users, InboxRow, KeyRow, RequestRow, ThreadRow};
use crate::schema::{
    chat_reads as reads, chat_thread_keys as keys, chat_threads as threads,
    service_requests as requests,
};
use crate::{db, PgStore};
use async_trait::async_trait;
use chat_core::crypto::WrappedKey;
use chat_core::ports::{RequestDirectory, StoreResult, ThreadKeyStore, ThreadRepository};
use chat_core::{
    InboxEntry, InboxQuery, MessageId, RecordState, RequestId, ServiceRequest, Thread, ThreadId,
    Timestamp, UserId,
};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

#[async_trait]
impl RequestDirectory for PgStore {
    async fn upsert(&self, request: ServiceRequest) -> StoreResult<ServiceRequest> {
        self.run(async move |mut conn| {
            let row = RequestRow {
                id: request.id.get(),
                client_id: request.client_id.get(),
                staff_ids: request.staff_ids.iter().map(|u| u.get()).collect(),
                record: request.record,
            };
            diesel::insert_into(requests::table)
                .values(&row)
                .on_conflict(requests::id)
                .do_update()
                .set((
                    requests::client_id.eq(excluded(requests::client_id)),
                    requests::staff_ids.eq(excluded(requests::staff_ids)),
                    requests::record.eq(excluded(requests::record)),
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
        self.run(async move |mut conn| {
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
        let request = request.clone();
        self.run(async move |mut conn| {
            // One statement: concurrent opens of one request meet on the unique index
            // and all return the same row; an assigned admin is never replaced. The
            // participants get their inbox rows (again, harmlessly, on a later open).
            diesel::sql_query(format!(
                "WITH t AS ( \
                   INSERT INTO chat_threads \
                     (request_id, admin_id, client_id, status, opened_at, activity_at, staff_ids) \
                   VALUES ($1, $2, $3, 'open', $4, $4, $5) \
                   ON CONFLICT (request_id) DO UPDATE \
                     SET admin_id = COALESCE(chat_threads.admin_id, EXCLUDED.admin_id) \
                   RETURNING {THREAD_COLUMNS}, activity_at), \
                 members AS ({INSERT_MEMBERS}) \
                 SELECT * FROM t"
            ))
            .bind::<BigInt, _>(request.id.get())
            .bind::<Nullable<BigInt>, _>(admin.map(UserId::get))
            .bind::<BigInt, _>(request.client_id.get())
            .bind::<Timestamptz, _>(now)
            .bind::<Array<BigInt>, _>(ids(&request.staff_ids))
            .get_result::<ThreadRow>(&mut conn)
            .await
            .map_err(db)?
            .into_core()
        })
        .await
    }

    async fn get(&self, id: ThreadId) -> StoreResult<Option<Thread>> {
        self.run(async move |mut conn| {
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
        self.run(async move |mut conn| {
            diesel::sql_query(format!(
                "WITH t AS ( \
                   UPDATE chat_threads SET status = 'closed', closed_at = COALESCE(closed_at, $2) \
                   WHERE id = $1 RETURNING {THREAD_COLUMNS}), \
                 inbox AS ( \
                   UPDATE chat_inbox SET status = 'closed' \
                   WHERE thread_id = $1 AND status <> 'closed') \
                 SELECT * FROM t"
            ))
            .bind::<BigInt, _>(id.get())
            .bind::<Timestamptz, _>(now)
            .get_result::<ThreadRow>(&mut conn)
            .await
            .optional()
            .map_err(db)?
            .map(ThreadRow::into_core)
            .transpose()
        })
        .await
    }

    async fn set_hold(&self, id: ThreadId, hold: bool) -> StoreResult<Option<Thread>> {
        self.run(async move |mut conn| {
            diesel::update(threads::table.filter(threads::id.eq(id.get())))
                .set(threads::hold.eq(hold))
                .returning(ThreadRow::as_returning())
                .get_result::<ThreadRow>(&mut conn)
                .await
                .optional()
                .map_err(db)?
                .map(ThreadRow::into_core)
                .transpose()
        })
        .await
    }

    async fn set_record_state(&self, id: ThreadId, state: RecordState) -> StoreResult<()> {
        let state = (state != RecordState::None).then(|| state.as_str());
        self.run(async move |mut conn| {
            diesel::update(threads::table.filter(threads::id.eq(id.get())))
                .set(threads::record_state.eq(state))
                .execute(&mut conn)
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn held_threads(&self) -> StoreResult<Vec<ThreadId>> {
        self.run(async move |mut conn| {
            let ids: Vec<i64> = threads::table
                .filter(
                    threads::hold
                        .eq(true)
                        .or(threads::record_state.eq_any(["pending", "failed"])),
                )
                .select(threads::id)
                .load(&mut conn)
                .await
                .map_err(db)?;
            Ok(ids.into_iter().filter_map(ThreadId::new).collect())
        })
        .await
    }

    async fn closed_threads(
        &self,
        after: Option<ThreadId>,
        limit: u32,
    ) -> StoreResult<Vec<ThreadId>> {
        self.run(async move |mut conn| {
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

    async fn set_staff(
        &self,
        request: RequestId,
        staff: &[UserId],
    ) -> StoreResult<Option<(Thread, Vec<UserId>)>> {
        let staff = ids(staff);
        self.run(async move |mut conn| {
            // The team and the inbox rows change in one statement: the removed
            // members' rows go, the new members' come, the client's and admin's stay.
            let row: Option<StaffChangeRow> = diesel::sql_query(format!(
                "WITH old AS ( \
                   SELECT id, staff_ids FROM chat_threads WHERE request_id = $1 FOR UPDATE), \
                 t AS ( \
                   UPDATE chat_threads c SET staff_ids = $2 FROM old WHERE c.id = old.id \
                   RETURNING {THREAD_COLUMNS_OF_C}, c.activity_at), \
                 gone AS ( \
                   DELETE FROM chat_inbox i USING t WHERE i.thread_id = t.id \
                   AND i.user_id <> ALL (array_remove(ARRAY[t.client_id, t.admin_id] || t.staff_ids, NULL))), \
                 members AS ({INSERT_MEMBERS}) \
                 SELECT t.*, old.staff_ids AS previous FROM t JOIN old ON old.id = t.id"
            ))
            .bind::<BigInt, _>(request.get())
            .bind::<Array<BigInt>, _>(staff)
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(db)?;
            row.map(|row| Ok((row.thread.into_core()?, users(row.previous)?)))
                .transpose()
        })
        .await
    }

    async fn record_activity(
        &self,
        thread: ThreadId,
        last: MessageId,
        at: Timestamp,
    ) -> StoreResult<()> {
        self.run(async move |mut conn| {
            record_activity_on(&mut conn, thread.get(), last.get(), at)
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    /// `chat_inbox_page()` (migrations/*_inbox_functions): a participant's page is one
    /// range of `chat_inbox_by_status` (or `chat_inbox_all`), an admin's `scope=all` one
    /// of `chat_threads_status_activity` (or `chat_threads_activity`), each planned once
    /// per connection.
    async fn inbox(&self, query: &InboxQuery) -> StoreResult<Vec<InboxEntry>> {
        let query = *query;
        self.run(async move |mut conn| {
            let page = chat_inbox_page(
                query.reader.get(),
                query.everyone,
                query.status.map(|s| s.as_str()),
                query.after.map(|a| a.activity_at),
                query.after.map(|a| a.thread_id.get()),
                i32::try_from(query.limit).unwrap_or(i32::MAX),
            );
            let rows: Vec<InboxRecord> = diesel::select(page).load(&mut conn).await.map_err(db)?;
            let mut entries = rows
                .into_iter()
                .map(inbox_entry)
                .collect::<StoreResult<Vec<_>>>()?;
            // The page's threads under legal hold: few, read from the partial index.
            let ids: Vec<i64> = entries.iter().map(|e| e.thread.id.get()).collect();
            if !ids.is_empty() {
                let held: Vec<i64> = threads::table
                    .filter(threads::hold.eq(true))
                    .filter(threads::id.eq_any(ids))
                    .select(threads::id)
                    .load(&mut conn)
                    .await
                    .map_err(db)?;
                for entry in &mut entries {
                    entry.thread.hold = held.contains(&entry.thread.id.get());
                }
            }
            Ok(entries)
        })
        .await
    }

    async fn mark_read(
        &self,
        thread: ThreadId,
        user: UserId,
        up_to: MessageId,
    ) -> StoreResult<MessageId> {
        self.run(async move |mut conn| {
            let marker: i64 = diesel::insert_into(reads::table)
                .values((
                    reads::thread_id.eq(thread.get()),
                    reads::user_id.eq(user.get()),
                    reads::up_to.eq(up_to.get()),
                ))
                .on_conflict((reads::thread_id, reads::user_id))
                .do_update()
                .set(reads::up_to.eq(diesel::dsl::sql::<BigInt>(
                    "GREATEST(chat_reads.up_to, EXCLUDED.up_to)",
                )))
                .returning(reads::up_to)
                .get_result(&mut conn)
                .await
                .map_err(db)?;
            MessageId::new(marker)
                .ok_or_else(|| chat_core::StoreError::Corrupt("read marker".into()))
        })
        .await
    }

    async fn reads(&self, thread: ThreadId) -> StoreResult<Vec<(UserId, MessageId)>> {
        self.run(async move |mut conn| {
            let rows: Vec<(i64, i64)> = reads::table
                .filter(reads::thread_id.eq(thread.get()))
                .order(reads::user_id)
                .select((reads::user_id, reads::up_to))
                .load(&mut conn)
                .await
                .map_err(db)?;
            rows.into_iter()
                .map(|(u, m)| match (UserId::new(u), MessageId::new(m)) {
                    (Some(u), Some(m)) => Ok((u, m)),
                    _ => Err(chat_core::StoreError::Corrupt("read marker".into())),
                })
                .collect()
        })
        .await
    }

    async fn forget_reads(&self, thread: ThreadId) -> StoreResult<u64> {
        self.run(async move |mut conn| {
            let n = diesel::delete(reads::table.filter(reads::thread_id.eq(thread.get())))
                .execute(&mut conn)
                .await
                .map_err(db)?;
            Ok(n as u64)
        })
        .await
    }
}

diesel::define_sql_function! {
    /// migrations/*_inbox_functions. Called in the select list (one row per thread),
    /// so that diesel prepares it once per connection, as it does every statement of
    /// a fixed shape.
    fn chat_inbox_page(
        p_reader: BigInt,
        p_everyone: Bool,
        p_status: Nullable<Text>,
        p_after_at: Nullable<Timestamptz>,
        p_after_id: Nullable<BigInt>,
        p_limit: Integer,
    ) -> Record<(
        BigInt,
        BigInt,
        Nullable<BigInt>,
        BigInt,
        Text,
        Timestamptz,
        Nullable<Timestamptz>,
        Array<BigInt>,
        Nullable<BigInt>,
        Nullable<Timestamptz>,
        Nullable<BigInt>,
    )>;
}

/// A row of `chat_inbox_page()`: the thread's columns, its last message, the marker.
type InboxRecord = (
    i64,
    i64,
    Option<i64>,
    i64,
    String,
    Timestamp,
    Option<Timestamp>,
    Vec<i64>,
    Option<i64>,
    Option<Timestamp>,
    Option<i64>,
);

fn inbox_entry(record: InboxRecord) -> StoreResult<InboxEntry> {
    let (
        id,
        request_id,
        admin_id,
        client_id,
        status,
        opened_at,
        closed_at,
        staff_ids,
        last,
        at,
        read,
    ) = record;
    let thread = ThreadRow {
        id,
        request_id,
        admin_id,
        client_id,
        status,
        opened_at,
        closed_at,
        staff_ids,
        // `chat_inbox_page()` has no hold column: the caller fills it in.
        hold: false,
        record_state: None,
    };
    InboxRow {
        thread,
        last_message_id: last,
        last_message_at: at,
        read_up_to: read,
    }
    .into_core()
}

/// The thread's newest message is `last` at `at`, unless a newer one is recorded: the
/// thread and its inbox rows, in one statement (`chat_append_batch()` runs the same one
/// inside an append).
pub(crate) async fn record_activity_on<C>(
    conn: &mut C,
    thread: i64,
    last: i64,
    at: Timestamp,
) -> diesel::QueryResult<usize>
where
    C: diesel_async::AsyncConnectionCore<Backend = diesel::pg::Pg> + Send,
{
    diesel::sql_query(
        "WITH t AS ( \
           UPDATE chat_threads \
           SET last_message_id = $2, last_message_at = $3, activity_at = $3 \
           WHERE id = $1 AND (last_message_id IS NULL OR last_message_id < $2) \
           RETURNING id) \
         UPDATE chat_inbox i SET activity_at = $3 FROM t WHERE i.thread_id = t.id",
    )
    .bind::<BigInt, _>(thread)
    .bind::<BigInt, _>(last)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await
}

/// The columns a [`ThreadRow`] reads, in a `RETURNING` or `SELECT` list.
const THREAD_COLUMNS: &str = "id, request_id, admin_id, client_id, status, opened_at, \
    closed_at, staff_ids, hold, record_state";
const THREAD_COLUMNS_OF_C: &str = "c.id, c.request_id, c.admin_id, c.client_id, c.status, \
    c.opened_at, c.closed_at, c.staff_ids, c.hold, c.record_state";

/// The inbox rows of thread `t` (a CTE with the thread's columns and `activity_at`):
/// one per participant, kept when there already.
const INSERT_MEMBERS: &str = "INSERT INTO chat_inbox (user_id, thread_id, status, activity_at) \
     SELECT DISTINCT u, t.id, t.status, t.activity_at \
     FROM t, unnest(array_remove(ARRAY[t.client_id, t.admin_id] || t.staff_ids, NULL)) AS u \
     ON CONFLICT DO NOTHING";

fn ids(users: &[UserId]) -> Vec<i64> {
    users.iter().map(|u| u.get()).collect()
}

#[derive(QueryableByName)]
struct StaffChangeRow {
    #[diesel(embed)]
    thread: ThreadRow,
    #[diesel(sql_type = Array<BigInt>)]
    previous: Vec<i64>,
}

#[async_trait]
impl ThreadKeyStore for PgStore {
    async fn insert_if_absent(&self, thread: ThreadId, key: WrappedKey) -> StoreResult<WrappedKey> {
        self.run(async move |mut conn| {
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
        self.run(async move |mut conn| {
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
        self.run(async move |mut conn| {
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
        self.run(async move |mut conn| {
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
        self.run(async move |mut conn| {
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
