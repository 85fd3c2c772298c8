//! Redis adapters for chat-core: the ephemeral [`RedisMessageStore`], the cross-instance
//! [`RedisEventBus`] (pub/sub), the [`RedisLeaseLock`] (`SET NX PX` with a random
//! token) and the [`RedisRateCounter`] (`INCR` in expiring windows). They share one [`Redis`] handle: a deadpool-redis pool in which every
//! operation runs under a deadline, so a Redis that is down, stopped or out of memory is
//! a prompt [`StoreError::Unavailable`], and recovers on its own when Redis is back.
//!
//! Key layout (`{prefix}` defaults to `chat:`; the `{thread}` hash tag keeps a thread's
//! keys in one cluster slot):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}{<thread>}:seq` | string | the thread's newest message id (kept after a purge, so ids keep increasing) |
//! | `{prefix}{<thread>}:ids` | sorted set | message ids, scored by id |
//! | `{prefix}{<thread>}:at` | sorted set | message ids, scored by `created_at` (µs) |
//! | `{prefix}{<thread>}:msg` | hash | id → the encoded message ([`codec`]: metadata + ciphertext) |
//! | `{prefix}lock:<name>` | string | the random token of the lock's holder |
//! | `{prefix}rate:<scope>:<user>` | string | attempts in the current rate-limit window |
//! | channel `{prefix}events` | pub/sub | encoded [`ChatEvent`](chat_core::ports::ChatEvent)s |
//!
//! Every key is written with a time to live, so nothing outlives its purpose if a
//! clean-up never comes.
#![forbid(unsafe_code)]

mod channels;
mod codec;
mod events;
mod lock;
mod messages;
mod rate;

pub use channels::RedisChannelRegistry;
pub use events::RedisEventBus;
pub use lock::RedisLeaseLock;
pub use messages::RedisMessageStore;
pub use rate::RedisRateCounter;

use chat_core::StoreError;
use deadpool::managed::{self, Metrics, RecycleResult, Timeouts};
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{self, RedisError};
use deadpool_redis::Runtime;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// Connections the pool may open. Operations share them (each returns its
    /// connection to the pool as soon as its commands are queued), so one is usually
    /// all that is open; more appear only while many operations start at once.
    pub max_connections: usize,
    /// The deadline of every operation, waiting for a connection included.
    pub op_timeout: Duration,
    /// Prepended to every key and channel, so that deployments can share a Redis.
    pub key_prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            op_timeout: Duration::from_secs(2),
            key_prefix: "chat:".into(),
        }
    }
}

/// A pool of connections to one Redis, shared by the adapters.
#[derive(Clone)]
pub struct Redis {
    pool: managed::Pool<Connections>,
    client: redis::Client,
    settings: RedisSettings,
}

/// A multiplexed connection and whether a command on it failed. redis-rs pipelines the
/// commands of concurrent tasks over one multiplexed connection, so requests share
/// connections rather than queue for one each (measured: 37% more posts per second than a
/// connection held per operation, docs/BENCHMARKS.md).
#[derive(Clone)]
struct Shared {
    connection: MultiplexedConnection,
    broken: Arc<AtomicBool>,
}

/// deadpool-redis's manager with a recycle check that costs nothing: deadpool-redis's own
/// sends a `PING` before every use, as many round trips as the work itself for a post.
/// Instead [`Redis::run`] marks a connection broken when a command on it fails or misses
/// its deadline, and the pool replaces it on its next hand-out.
struct Connections(deadpool_redis::Manager);

impl managed::Manager for Connections {
    type Type = Shared;
    type Error = RedisError;

    async fn create(&self) -> Result<Shared, RedisError> {
        Ok(Shared {
            connection: self.0.create().await?,
            broken: Arc::default(),
        })
    }

    async fn recycle(&self, shared: &mut Shared, _: &Metrics) -> RecycleResult<RedisError> {
        if shared.broken.load(Ordering::Relaxed) {
            return Err(managed::RecycleError::message("a command on it failed"));
        }
        Ok(())
    }
}

impl std::fmt::Debug for Redis {
    // The URL may carry a password: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Redis {
    /// Builds the pool; connects lazily, so a Redis that is down now is not an error
    /// here but `Unavailable` on use (and [`ping`](Self::ping) says so).
    pub fn new(url: &str, settings: RedisSettings) -> Result<Self, StoreError> {
        let invalid =
            |e: &dyn std::fmt::Display| StoreError::Unavailable(format!("redis url: {e}"));
        let client = redis::Client::open(url).map_err(|e| invalid(&e))?;
        let manager = deadpool_redis::Manager::new(url).map_err(|e| invalid(&e))?;
        let pool = managed::Pool::builder(Connections(manager))
            .max_size(settings.max_connections.max(1))
            .timeouts(Timeouts {
                wait: Some(settings.op_timeout),
                create: Some(settings.op_timeout),
                recycle: Some(settings.op_timeout),
            })
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| invalid(&e))?;
        Ok(Self {
            pool,
            client,
            settings,
        })
    }

    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.settings.key_prefix)
    }

    /// Runs `work` on a pooled connection within the deadline. A connection that failed
    /// or timed out is replaced on its next hand-out: this is how the pool recovers once
    /// Redis is back, with no check before each use.
    async fn run<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let deadline = Instant::now() + self.settings.op_timeout;
        let late = || {
            StoreError::Unavailable(format!(
                "redis: no answer within {:?}",
                self.settings.op_timeout
            ))
        };
        let pooled = tokio::time::timeout_at(deadline, self.pool.get())
            .await
            .map_err(|_| late())?
            .map_err(|e| StoreError::Unavailable(format!("redis: {e}")))?;
        // Back in the pool at once: other tasks may send on it meanwhile.
        let Shared { connection, broken } = Shared::clone(&pooled);
        drop(pooled);
        match tokio::time::timeout_at(deadline, work(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_unrecoverable_error() {
                    broken.store(true, Ordering::Relaxed);
                }
                Err(unavailable(e))
            }
            Err(_) => {
                broken.store(true, Ordering::Relaxed);
                Err(late())
            }
        }
    }

    /// Whether Redis answers now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(drop)
    }

    /// Checks `maxmemory-policy`. Every key here has a time to live, so a `volatile-*`
    /// policy evicts live messages first and an `allkeys-*` one may evict them too:
    /// returns a warning to log loudly then. `noeviction` (Redis's default) makes a full
    /// Redis refuse writes, which the service reports as `503` without losing anything.
    pub async fn eviction_warning(&self) -> Result<Option<String>, StoreError> {
        let reply: Vec<String> = self
            .run(|mut c| async move {
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory-policy")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let policy = reply.get(1).cloned().unwrap_or_default();
        Ok(evicts_live_keys(&policy).then(|| {
            format!(
                "Redis maxmemory-policy is {policy}: when Redis fills up it will silently \
                 evict chat messages (every message key carries a TTL). Set \
                 `maxmemory-policy noeviction` so that a full Redis refuses writes (503) instead"
            )
        }))
    }
}

fn evicts_live_keys(policy: &str) -> bool {
    policy.starts_with("volatile-") || policy.starts_with("allkeys-")
}

/// Any Redis failure (connection, timeout, `OOM`, `LOADING`, …) means the operation did
/// not happen: `Unavailable`. Server messages carry no arguments, hence no content.
fn unavailable(e: RedisError) -> StoreError {
    match e.kind() {
        redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType => {
            StoreError::Corrupt(format!("redis reply: {e}"))
        }
        _ => StoreError::Unavailable(format!("redis: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::evicts_live_keys;

    #[test]
    fn policies_that_evict_ttl_keys_are_flagged() {
        for bad in [
            "volatile-lru",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-random",
        ] {
            assert!(evicts_live_keys(bad), "{bad}");
        }
        assert!(!evicts_live_keys("noeviction"));
    }
}
