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
//! | `{prefix}{<thread>}:dek` | string | the thread's wrapped data key, in the memory-only mode ([`RedisKeyStore`]) |
//! | `{prefix}{<thread>}:hold` | string | present while the thread is under legal hold: then none of the thread's keys has a time to live |
//! | `{prefix}lock:<name>` | string | the random token of the lock's holder |
//! | `{prefix}rate:<scope>:<user>` | string | attempts in the current rate-limit window |
//! | channel `{prefix}{<thread>}:ev` | pub/sub (sharded in a cluster) | the thread's encoded [`ChatEvent`](chat_core::ports::ChatEvent)s, for the instances that follow it |
//!
//! Every key is written with a time to live, so nothing outlives its purpose if a
//! clean-up never comes.
#![forbid(unsafe_code)]

mod channels;
mod codec;
mod events;
mod keys;
mod lock;
mod messages;
mod rate;

pub use channels::RedisChannelRegistry;
pub use events::{EventLinkHealth, RedisEventBus};
pub use keys::RedisKeyStore;
pub use lock::RedisLeaseLock;
pub use messages::RedisMessageStore;
pub use rate::RedisRateCounter;

use chat_core::StoreError;
use deadpool::managed::{self, Metrics, RecycleResult, Timeouts};
use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use deadpool_redis::redis::sentinel::{
    SentinelClient, SentinelNodeConnectionInfo, SentinelServerType,
};
use deadpool_redis::redis::{self, IntoConnectionInfo, RedisError, Value};
use deadpool_redis::Runtime;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Which Redis deployment the URL names (SPEC §7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RedisMode {
    /// One server: `redis://` or `rediss://`.
    #[default]
    Single,
    /// A Redis Cluster: the URL lists seed nodes, comma-separated. Commands go to the
    /// slot's master (redis-rs follows `MOVED`/`ASK` and failovers); events use sharded
    /// pub/sub (`SPUBLISH`/`SSUBSCRIBE`), so the bus spreads over the shards.
    Cluster,
    /// Sentinel: the URL lists the sentinels, comma-separated, which name the master of
    /// `master`. A connection that fails, or finds a demoted master (`READONLY`), is
    /// replaced by one to the master the sentinels name then.
    Sentinel { master: String },
}

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
    pub mode: RedisMode,
    /// `CHAT_LINK_CHECK_SECS`: a link that stops carrying anything while neither end
    /// closes it is found dead within this. The event bus's subscribed connection is
    /// pinged every half of it, with half of it to answer; every connection sets TCP
    /// keepalive from it, so the kernel finds a peer that vanished too.
    pub link_check: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            op_timeout: Duration::from_secs(2),
            key_prefix: "chat:".into(),
            mode: RedisMode::Single,
            link_check: Duration::from_secs(10),
        }
    }
}

/// A pool of connections to one Redis deployment, shared by the adapters.
#[derive(Clone)]
pub struct Redis {
    pool: managed::Pool<Connections>,
    topology: Topology,
    settings: RedisSettings,
}

/// What the event bus needs to open its own subscribed connection.
#[derive(Clone)]
enum Topology {
    Single(Box<redis::Client>),
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
    Cluster(Vec<redis::ConnectionInfo>),
}

/// A connection of the pool: multiplexed to one server (single or sentinel's master),
/// or to every master of a cluster.
#[derive(Clone)]
enum Link {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Self::Node(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// A pooled link and whether a command on it failed. redis-rs pipelines the commands
/// of concurrent tasks over one multiplexed connection, so requests share connections
/// rather than queue for one each (measured: 37% more posts per second than a
/// connection held per operation, docs/BENCHMARKS.md).
#[derive(Clone)]
struct Shared {
    link: Link,
    broken: Arc<AtomicBool>,
}

/// deadpool-redis's managers (one server, sentinel, cluster) with a recycle check that
/// costs nothing: theirs send a `PING` before every use, as many round trips as the
/// work itself for a post. Instead [`Redis::run`] marks a link broken when a command
/// on it fails or misses its deadline, and the pool replaces it on its next hand-out.
enum Connections {
    Single(deadpool_redis::Manager),
    /// As deadpool-redis's sentinel manager does; its own loses the master's credentials.
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
    Cluster(redis::cluster::ClusterClient),
}

impl managed::Manager for Connections {
    type Type = Shared;
    type Error = RedisError;

    async fn create(&self) -> Result<Shared, RedisError> {
        let link = match self {
            Self::Single(m) => Link::Node(m.create().await?),
            Self::Sentinel(sentinel) => {
                Link::Node(sentinel.lock().await.get_async_connection().await?)
            }
            Self::Cluster(client) => Link::Cluster(client.get_async_connection().await?),
        };
        Ok(Shared {
            link,
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
    /// here but `Unavailable` on use (and [`ping`](Self::ping) says so). `url` is one
    /// URL, or a comma-separated list in cluster and sentinel mode.
    pub fn new(url: &str, settings: RedisSettings) -> Result<Self, StoreError> {
        let invalid =
            |e: &dyn std::fmt::Display| StoreError::Unavailable(format!("redis url: {e}"));
        let urls: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let tcp = tcp_settings(settings.link_check);
        let info = |url: &str| {
            url.into_connection_info()
                .map(|info| info.set_tcp_settings(tcp.clone()))
                .map_err(|e| invalid(&e))
        };
        let (manager, topology) = match &settings.mode {
            RedisMode::Single => (
                Connections::Single(
                    deadpool_redis::Manager::new(info(url)?).map_err(|e| invalid(&e))?,
                ),
                Topology::Single(Box::new(
                    redis::Client::open(info(url)?).map_err(|e| invalid(&e))?,
                )),
            ),
            RedisMode::Sentinel { master } => {
                let node = sentinel_node_info(urls.first().copied())
                    .map_err(|e| invalid(&e))?
                    .set_tcp_settings(tcp.clone());
                let sentinels = urls
                    .iter()
                    .map(|u| info(u))
                    .collect::<Result<Vec<_>, _>>()?;
                let sentinel = |sentinels: Vec<redis::ConnectionInfo>| {
                    SentinelClient::build(
                        sentinels,
                        master,
                        Some(node.clone()),
                        SentinelServerType::Master,
                    )
                    .map(|c| Arc::new(tokio::sync::Mutex::new(c)))
                    .map_err(|e| invalid(&e))
                };
                (
                    Connections::Sentinel(sentinel(sentinels.clone())?),
                    Topology::Sentinel(sentinel(sentinels)?),
                )
            }
            RedisMode::Cluster => {
                let seeds = urls
                    .iter()
                    .map(|u| info(u))
                    .collect::<Result<Vec<_>, _>>()?;
                let client = redis::cluster::ClusterClientBuilder::new(seeds.clone())
                    .tcp_settings(tcp.clone())
                    .build()
                    .map_err(|e| invalid(&e))?;
                (Connections::Cluster(client), Topology::Cluster(seeds))
            }
        };
        let pool = managed::Pool::builder(manager)
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
            topology,
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
    /// Redis is back, or follows a failover, with no check before each use.
    async fn run<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(Link) -> Fut,
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
        let Shared { link, broken } = Shared::clone(&pooled);
        drop(pooled);
        match tokio::time::timeout_at(deadline, work(link)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if needs_new_link(&e) {
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

    /// Whether this is a Redis Cluster: commands of one pipeline or script must then
    /// share a hash slot, and events use sharded pub/sub.
    fn is_cluster(&self) -> bool {
        matches!(self.topology, Topology::Cluster(_))
    }

    /// Every key matching `pattern`, with `SCAN` (never `KEYS`, which blocks Redis): on
    /// one server, or on each master of a cluster in turn.
    async fn scan_keys(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let nodes: Vec<Option<(String, u16)>> = match self.is_cluster() {
            false => vec![None],
            true => self.masters().await?.into_iter().map(Some).collect(),
        };
        let mut keys = Vec::new();
        for node in nodes {
            let mut cursor: u64 = 0;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000);
                let node = node.clone();
                let (next, found): (u64, Vec<String>) = self
                    .run(|c| async move {
                        match (c, node) {
                            (Link::Cluster(mut c), Some((host, port))) => {
                                let at = SingleNodeRoutingInfo::ByAddress { host, port };
                                let reply =
                                    c.route_command(scan, RoutingInfo::SingleNode(at)).await?;
                                Ok(redis::from_redis_value(reply)?)
                            }
                            (mut c, _) => scan.query_async(&mut c).await,
                        }
                    })
                    .await?;
                keys.extend(found);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(keys)
    }

    /// The cluster's masters, from `CLUSTER SLOTS`: `[start, end, [host, port, id], …]`.
    async fn masters(&self) -> Result<Vec<(String, u16)>, StoreError> {
        let slots: Vec<Value> = self
            .run(
                |mut c| async move { redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut c).await },
            )
            .await?;
        let mut masters: Vec<(String, u16)> = slots
            .into_iter()
            .filter_map(|range| {
                let Value::Array(range) = range else {
                    return None;
                };
                // [host, port, id, {hostname…}] since Redis 7: the first two.
                let Value::Array(master) = range.into_iter().nth(2)? else {
                    return None;
                };
                let mut master = master.into_iter();
                let host: String = redis::from_redis_value(master.next()?).ok()?;
                let port: u16 = redis::from_redis_value(master.next()?).ok()?;
                Some((host, port))
            })
            .collect();
        masters.sort();
        masters.dedup();
        Ok(masters)
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

/// TCP keepalive from the link check: the first probe after half of it idle, then
/// three more a sixth of it apart (at least a second), and unacknowledged data for
/// longer than the whole of it ends the connection (`TCP_USER_TIMEOUT`). A peer that
/// vanished (a host gone, a partition) is then found by the kernel as well.
fn tcp_settings(link_check: Duration) -> redis::io::tcp::TcpSettings {
    let keepalive = redis::io::tcp::socket2::TcpKeepalive::new()
        .with_time(link_check / 2)
        .with_interval((link_check / 6).max(Duration::from_secs(1)))
        .with_retries(3);
    redis::io::tcp::TcpSettings::default()
        .set_keepalive(keepalive)
        .set_user_timeout(link_check)
}

/// With messages and keys in Redis (the memory-only mode), a Redis that persists them
/// (an RDB `save` schedule, or `appendonly yes`) writes what was meant to be forgotten
/// to disk: a warning naming `CHAT_MESSAGE_STORE` then. `Ok(None)` when it does not,
/// and an error when it cannot be asked (managed Redis often refuses `CONFIG`).
impl Redis {
    pub async fn persistence_warning(&self) -> Result<Option<String>, StoreError> {
        let read = |name: &'static str| async move {
            let reply: Vec<String> = self
                .run(|mut c| async move {
                    redis::cmd("CONFIG")
                        .arg("GET")
                        .arg(name)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            Ok::<_, StoreError>(reply.get(1).cloned().unwrap_or_default())
        };
        let save = read("save").await?;
        let appendonly = read("appendonly").await?;
        let mut kept = Vec::new();
        if !save.trim().is_empty() {
            kept.push(format!("RDB snapshots (save \"{save}\")"));
        }
        if appendonly.trim() == "yes" {
            kept.push("an append-only file (appendonly yes)".to_owned());
        }
        Ok((!kept.is_empty()).then(|| {
            format!(
                "CHAT_MESSAGE_STORE=redis keeps messages and thread keys only in Redis, but this \
                 Redis persists them to disk through {}: its files (and their backups) then \
                 hold what the memory-only mode is meant to forget. Run it with `save \"\"` and \
                 `appendonly no`",
                kept.join(" and ")
            )
        }))
    }
}

/// Sentinel names the master; the master takes the credentials (and TLS) of the first
/// sentinel URL, the usual set-up of one password for the whole group.
fn sentinel_node_info(first: Option<&str>) -> redis::RedisResult<SentinelNodeConnectionInfo> {
    let Some(first) = first else {
        return Err(RedisError::from((
            redis::ErrorKind::EmptySentinelList,
            "no sentinel URL",
        )));
    };
    let info = first.into_connection_info()?;
    let mut node = SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(info.redis_settings().clone());
    if let redis::ConnectionAddr::TcpTls { insecure, .. } = info.addr() {
        node = node.set_tls_mode(if *insecure {
            redis::TlsMode::Insecure
        } else {
            redis::TlsMode::Secure
        });
    }
    Ok(node)
}

/// A link that broke, timed out or reached a master that was demoted by a failover
/// (`READONLY`) is replaced; an error of the command itself (`OOM`) keeps it.
fn needs_new_link(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        )
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
