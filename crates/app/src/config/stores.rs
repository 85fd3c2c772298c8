//! PostgreSQL, Redis, and which of them keeps the messages.

use super::env::{err, ConfigError, Env};
use chat_redis::RedisMode;
use secrecy::SecretString;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStoreKind {
    Memory,
    Postgres,
    Redis,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `CHAT_DATABASE_URL`: PostgreSQL (`postgres://user:pass@host:5432/db`) for
    /// requests, threads, keys, jobs, and messages unless another store is chosen.
    pub database_url: Option<SecretString>,
    /// `CHAT_AUTO_MIGRATE`: apply pending migrations at start. Default `true`.
    pub auto_migrate: bool,
    /// `CHAT_DATABASE_POOLER`: `none` (default) or `transaction` when `CHAT_DATABASE_URL`
    /// leads to a pooler in transaction mode (PgBouncer's `pool_mode = transaction`).
    pub database_behind_transaction_pooler: bool,
    /// `CHAT_DATABASE_MIGRATION_URL`: a direct connection for migrations, which take a
    /// session's lock; needed behind a transaction pooler. Default: `CHAT_DATABASE_URL`.
    pub database_migration_url: Option<SecretString>,
    /// `CHAT_DATABASE_MAX_CONNECTIONS`: pool size. Default 16.
    pub database_max_connections: usize,
    /// `CHAT_STORE_TIMEOUT_MS`: deadline of one store operation; past it the request
    /// is `503`. Default 5000 ms.
    pub timeout: Duration,
    /// `CHAT_LINK_CHECK_SECS`: a link to Redis or PostgreSQL that stops carrying
    /// anything without closing is found dead within this and replaced (SPEC §6): the
    /// event bus's subscribed connection is pinged every half of it, every connection
    /// sets TCP keepalive from it, and `/readyz` fails while the event link has not
    /// been alive for that long. Default 10 s, 2..=300.
    pub link_check: Duration,
    /// `CHAT_EVENT_BUFFER`: events the bus holds for this instance's delivery while it
    /// catches up; an instance further behind than that (or that lost the Redis bus)
    /// closes its subscribed sockets with 4200 so that clients reconnect and list what
    /// they missed. Default 16384.
    pub event_buffer: usize,
    /// `CHAT_REDIS_URL`: Redis (`redis://[:password@]host:6379[/db]`, `rediss://` for
    /// TLS, the certificate verified against the system's roots or `SSL_CERT_FILE`)
    /// for the cross-instance event bus and locks, and the message store with
    /// `CHAT_MESSAGE_STORE=redis`.
    pub redis_url: Option<SecretString>,
    /// `CHAT_REDIS_MODE`: `single` (default) | `cluster` (`CHAT_REDIS_URL` lists seed
    /// nodes, comma-separated) | `sentinel` (`CHAT_REDIS_URL` lists the sentinels,
    /// `CHAT_REDIS_SENTINEL_MASTER` names the master).
    pub redis_mode: RedisMode,
    /// `CHAT_MESSAGE_STORE`: `memory` | `postgres` | `redis`; default `postgres` when a
    /// database is set, else `memory`.
    pub message_store: MessageStoreKind,
}

impl StoreConfig {
    pub(crate) fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let database_url = env.secret("CHAT_DATABASE_URL");
        let message_store = env.choice(
            "CHAT_MESSAGE_STORE",
            &[
                ("memory", MessageStoreKind::Memory),
                ("postgres", MessageStoreKind::Postgres),
                ("redis", MessageStoreKind::Redis),
            ],
            if database_url.is_some() {
                MessageStoreKind::Postgres
            } else {
                MessageStoreKind::Memory
            },
        )?;
        Ok(Self {
            database_url,
            auto_migrate: env.flag("CHAT_AUTO_MIGRATE", true)?,
            database_behind_transaction_pooler: env.choice(
                "CHAT_DATABASE_POOLER",
                &[("none", false), ("transaction", true)],
                false,
            )?,
            database_migration_url: env.secret("CHAT_DATABASE_MIGRATION_URL"),
            database_max_connections: env.parse("CHAT_DATABASE_MAX_CONNECTIONS", 16usize)?,
            timeout: Duration::from_millis(env.parse("CHAT_STORE_TIMEOUT_MS", 5000u64)?),
            link_check: env.seconds("CHAT_LINK_CHECK_SECS", Duration::from_secs(10), 2..=300)?,
            event_buffer: env.parse("CHAT_EVENT_BUFFER", 16_384usize)?,
            redis_url: env.secret("CHAT_REDIS_URL"),
            redis_mode: redis_mode(env)?,
            message_store,
        })
    }
}

fn redis_mode(env: &Env) -> Result<RedisMode, ConfigError> {
    let modes = [
        ("single", "single"),
        ("cluster", "cluster"),
        ("sentinel", "sentinel"),
    ];
    Ok(match env.choice("CHAT_REDIS_MODE", &modes, "single")? {
        "cluster" => RedisMode::Cluster,
        "sentinel" => RedisMode::Sentinel {
            master: env
                .get("CHAT_REDIS_SENTINEL_MASTER")
                .ok_or_else(|| {
                    err(
                        "CHAT_REDIS_SENTINEL_MASTER",
                        "sentinel mode needs the name of the master the sentinels watch",
                    )
                })?
                .to_owned(),
        },
        _ => RedisMode::Single,
    })
}
