//! PostgreSQL adapters of the chat-core ports, on diesel-async with a deadpool pool, so
//! no query ever blocks an actix worker. One [`PgStore`] implements the request
//! directory, thread repository, thread-key store, message store, job queue and lease
//! lock.
//!
//! Every operation runs under a deadline ([`PgSettings::op_timeout`]): a database that
//! stops answering is `StoreError::Unavailable` within it, never a hung request. Broken
//! connections are dropped by the pool, so the store recovers on its own when the
//! database comes back.
#![forbid(unsafe_code)]

mod audit;
mod jobs;
mod lock;
mod messages;
mod rows;
mod schema;
mod threads;
mod tls;
mod unread;

pub use audit::PgAuditSink;

use chat_core::StoreError;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::sync::Arc;
use std::time::Duration;

/// The SQL migrations of `migrations/`, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

/// The advisory lock key that serialises migrations ("chatmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x6368_6174_6d69_6772;

#[derive(Debug, Clone)]
pub struct PgSettings {
    /// Connections in the pool.
    pub max_connections: usize,
    /// The deadline of one store operation, connection wait included.
    pub op_timeout: Duration,
    /// The URL leads to a pooler in transaction mode (PgBouncer's `pool_mode =
    /// transaction`), which may hand each transaction a different server connection:
    /// then no statement is cached across transactions, every operation runs in a
    /// transaction of its own, and [`PgStore::migrate`] is refused (its advisory lock
    /// belongs to a session; migrate over a direct URL).
    pub behind_transaction_pooler: bool,
    /// `CHAT_LINK_CHECK_SECS`: a connection whose peer vanished without a sound is
    /// found dead within this: TCP keepalive on both ends (the server's through the
    /// session's settings), and the server ends a session left idle inside a
    /// transaction for longer than this or the operation deadline, whichever is
    /// longer, so the locks of a client that went silent mid-transaction are freed.
    pub link_check: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            op_timeout: Duration::from_secs(5),
            behind_transaction_pooler: false,
            link_check: Duration::from_secs(10),
        }
    }
}

/// The pool and the adapters over it. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool<AsyncPgConnection>,
    settings: PgSettings,
    /// Message ids, drawn here rather than from a sequence: one round trip less per post.
    message_ids: Arc<chat_core::ClockIds>,
}

type Conn = Object<AsyncPgConnection>;

impl PgStore {
    /// A pool for `url`. Connects lazily: a database that is down now is reported by the
    /// first operation, and the store recovers when it comes back.
    pub fn new(url: &str, settings: PgSettings) -> Result<Self, StoreError> {
        // No test query on checkout: it would double the round trips of every
        // operation. A connection that broke fails its query (a 503 for that request),
        // is dropped by the pool, and the next checkout connects afresh.
        let mut config = ManagerConfig::default();
        config.recycling_method = RecyclingMethod::Fast;
        let liveness = tls::Liveness {
            link_check: settings.link_check,
            idle_in_transaction: settings.link_check.max(settings.op_timeout),
        };
        config.custom_setup = match settings.behind_transaction_pooler {
            false => Box::new(move |url| tls::establish(url, liveness)),
            true => Box::new(move |url| tls::establish_for_pooler(url, liveness)),
        };
        let manager =
            AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
        let pool = Pool::builder(manager)
            .max_size(settings.max_connections)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("building the pool: {e}")))?;
        Ok(Self {
            pool,
            settings,
            message_ids: Arc::default(),
        })
    }

    /// Applies the pending migrations; returns how many ran. Instances starting together
    /// take turns on a session advisory lock, so only one migrates.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        use diesel_async::RunQueryDsl;
        if self.settings.behind_transaction_pooler {
            return Err(StoreError::Rejected(
                "migrations need a direct connection to PostgreSQL, not a transaction pooler \
                 (their lock is a session's)"
                    .into(),
            ));
        }
        let mut conn = self.conn().await?;
        // Poll rather than block in `pg_advisory_lock`: a waiter blocked in a statement
        // holds a snapshot, and `CREATE INDEX CONCURRENTLY` in the migrator would wait
        // for that snapshot while the waiter waits for the lock.
        loop {
            let got = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
                .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
                .get_result::<Locked>(&mut conn)
                .await
                .map_err(db)?;
            if got.locked {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The harness drives diesel's sync migration runner over the async connection,
        // which blocks: run it on a blocking thread.
        let (applied, mut conn) = tokio::task::spawn_blocking(move || {
            let mut harness = AsyncMigrationHarness::new(conn);
            let applied = harness
                .run_pending_migrations(MIGRATIONS)
                .map(|applied| applied.len())
                .map_err(|e| StoreError::Unavailable(format!("migrating: {e}")));
            (applied, harness.into_inner())
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("migration task: {e}")))?;
        diesel::sql_query("SELECT pg_advisory_unlock($1)")
            .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
            .execute(&mut conn)
            .await
            .map_err(db)?;
        applied
    }

    /// Answers when the database does: for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        use diesel_async::RunQueryDsl;
        self.run(async move |mut conn| {
            diesel::sql_query("SELECT 1")
                .execute(&mut conn)
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn conn(&self) -> Result<Conn, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("no database connection: {e}")))
    }

    /// Runs `op` with a pooled connection under the operation deadline. Behind a
    /// transaction pooler, in a transaction of its own: PgBouncer then keeps one server
    /// connection for `op`'s statements, each prepared and run there.
    async fn run<T>(
        &self,
        op: impl AsyncFnOnce(&AsyncPgConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.settings.behind_transaction_pooler {
            return self.in_transaction(op).await;
        }
        let work = async {
            let conn = Checkout(Some(self.conn().await?));
            let Some(held) = conn.0.as_deref() else {
                return Err(StoreError::Unavailable("no database connection".into()));
            };
            let result = op(held).await;
            conn.finish();
            result
        };
        tokio::time::timeout(self.settings.op_timeout, work)
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!("no answer within {:?}", self.settings.op_timeout))
            })?
    }
}

/// A pooled connection in use: dropped before [`Self::finish`] (its operation missed
/// the deadline), it is closed instead of going back to the pool, since it may be a
/// link that went silent, and a transaction it had open is rolled back by the server.
/// Only an operation that answered in time returns its connection.
struct Checkout(Option<Conn>);

impl Checkout {
    fn finish(mut self) {
        drop(self.0.take()); // back to the pool
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(Object::take(conn));
        }
    }
}

impl PgStore {
    /// Runs `op` in a transaction that commits only if `op` answered `Ok` within the
    /// operation deadline, and otherwise never commits: an error is rolled back; past
    /// the deadline the connection is closed with the transaction open (the server
    /// rolls it back when it notices, however long the statement in flight still takes).
    /// `BEGIN` is pipelined with `op`'s first statement. A `COMMIT` that fails or does
    /// not answer in time is `Unavailable` with the outcome in doubt.
    async fn in_transaction<T>(
        &self,
        op: impl AsyncFnOnce(&AsyncPgConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        use diesel_async::SimpleAsyncConnection;
        let timeout = self.settings.op_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let late =
            || StoreError::Unavailable(format!("no answer within {timeout:?}; not committed"));
        let conn = tokio::time::timeout_at(deadline, self.conn())
            .await
            .map_err(|_| late())??;
        let tx = Checkout(Some(conn));
        let Some(conn) = tx.0.as_deref() else {
            return Err(late());
        };
        // The simple protocol sends `BEGIN` at its first poll, before `op`'s first
        // statement is even parsed, so the server runs it first.
        let mut shared = conn;
        let begin = SimpleAsyncConnection::batch_execute(&mut shared, "BEGIN");
        let work = async { futures::join!(begin, op(conn)) };
        let (begun, result) = tokio::time::timeout_at(deadline, work)
            .await
            .map_err(|_| late())?;
        begun.map_err(db)?;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let mut shared = conn;
        let ended = tokio::time::timeout_at(
            deadline,
            SimpleAsyncConnection::batch_execute(&mut shared, end),
        )
        .await;
        match ended {
            Ok(Ok(_)) => {
                tx.finish();
                result
            }
            Ok(Err(e)) if result.is_ok() => Err(StoreError::Unavailable(format!(
                "COMMIT failed, the outcome is in doubt: {e}"
            ))),
            Err(_) if result.is_ok() => Err(StoreError::Unavailable(format!(
                "COMMIT did not answer within {timeout:?}: the outcome is in doubt"
            ))),
            // The rollback failed: the connection is closed, which rolls back too.
            _ => result,
        }
    }
}

/// A driver error as the ports name it. Query errors carry no bound values, so no
/// content can reach the message.
/// What a diesel error means for the caller: the server busy with the same rows, the
/// statement wrong, the data unreadable, or (anything else) the server unreachable.
fn db(e: diesel::result::Error) -> StoreError {
    use diesel::result::{DatabaseErrorKind as Kind, Error};
    match e {
        Error::DeserializationError(e) => StoreError::Corrupt(e.to_string()),
        Error::DatabaseError(Kind::SerializationFailure, info) => {
            StoreError::Contention(info.message().to_owned())
        }
        Error::DatabaseError(
            kind @ (Kind::UniqueViolation
            | Kind::ForeignKeyViolation
            | Kind::NotNullViolation
            | Kind::CheckViolation
            | Kind::RestrictViolation
            | Kind::ExclusionViolation),
            info,
        ) => StoreError::Rejected(format!("{kind:?}: {}", info.message())),
        Error::DatabaseError(Kind::Unknown, info) if is_contention(info.message()) => {
            StoreError::Contention(info.message().to_owned())
        }
        Error::QueryBuilderError(e) | Error::SerializationError(e) => {
            StoreError::Rejected(e.to_string())
        }
        Error::NotFound | Error::AlreadyInTransaction | Error::NotInTransaction => {
            StoreError::Rejected(e.to_string())
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Deadlocks (`40P01`) and lock waits past `lock_timeout` (`55P03`), which diesel
/// reports as unknown errors: known by PostgreSQL's fixed English messages.
fn is_contention(message: &str) -> bool {
    message.starts_with("deadlock detected")
        || message.starts_with("canceling statement due to lock timeout")
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind as Kind, Error};

    fn database(kind: Kind, message: &str) -> Error {
        Error::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn busy_wrong_and_down_are_told_apart() {
        let busy = [
            database(Kind::SerializationFailure, "could not serialize access"),
            database(Kind::Unknown, "deadlock detected"),
            database(Kind::Unknown, "canceling statement due to lock timeout"),
        ];
        for e in busy {
            assert!(matches!(db(e), StoreError::Contention(_)));
        }
        let wrong = database(Kind::UniqueViolation, "duplicate key value");
        assert!(matches!(db(wrong), StoreError::Rejected(m) if m.contains("UniqueViolation")));
        let down = [
            database(Kind::ClosedConnection, "server closed the connection"),
            database(Kind::Unknown, "the database system is shutting down"),
        ];
        for e in down {
            assert!(db(e).is_outage());
        }
    }
}
