//! `chat-server`: reads the configuration, wires the adapters into one `ChatService`,
//! and serves it. The binary (`main.rs`) is only the command line over this.
#![forbid(unsafe_code)]

pub mod config;
mod telemetry;

pub use config::{Config, ConfigError};
pub use telemetry::{init_logging, metrics_handle};

use actix_web::dev::Server;
use actix_web::{App, HttpServer};
use anyhow::Context;
use chat_core::crypto::KeyRing;
use chat_core::ports::{Clock, LeaseLock, MediaStore, MessageStore, RateCounter};
use chat_core::{ChatService, ChatSettings, JobOutcome, Ports, Retention, SweepReport};
use chat_crypto::MasterKeyRing;
use chat_http::limits::RateLimits;
use chat_http::ops::{names, Operations, Probe};
use chat_http::pusher::{PusherSettings, Realtime};
use chat_http::{HttpState, TokenVerifier};
use chat_memory::*;
use chat_postgres::{PgSettings, PgStore};
use chat_redis::{
    Redis, RedisEventBus, RedisLeaseLock, RedisMessageStore, RedisRateCounter, RedisSettings,
};
use config::{MasterKeySetting, MessageStoreKind};
use futures::FutureExt;
use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Parts a test may swap in; everything else comes from the configuration.
#[derive(Default, Clone)]
pub struct Overrides {
    pub clock: Option<Arc<dyn Clock>>,
    pub messages: Option<Arc<dyn MessageStore>>,
}

/// The service and the lock that keeps the sweep to one instance at a time.
#[derive(Clone)]
pub struct Wired {
    pub service: ChatService,
    /// Redis when configured, else PostgreSQL, else this process alone.
    pub lock: Arc<dyn LeaseLock>,
    /// The configured database and Redis, for `/readyz`.
    pub probes: Vec<Probe>,
    /// Rate-limit windows: in Redis when configured, else in this process.
    pub rate_counter: Arc<dyn RateCounter>,
}

/// How long each backend has to answer `/readyz`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A running server: its address, and the future that drives it.
pub struct Application {
    pub addr: SocketAddr,
    /// Where the dedicated WebSocket listener (`CHAT_WS_BIND`) listens, if configured.
    pub ws_addr: Option<SocketAddr>,
    ws_listener: Option<tokio::net::TcpListener>,
    pub server: Server,
    pub service: ChatService,
    lock: Arc<dyn LeaseLock>,
    sweep_interval: Option<Duration>,
    realtime: Arc<Realtime>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// Connections a listener keeps waiting for `accept` before the kernel drops new ones
/// (capped by `net.core.somaxconn`). The default of Rust's and tokio's listeners, 128,
/// overflowed when 10,000 WebSocket clients connected 200 at a time: 1,248 dropped
/// handshakes, each a client retrying a second later (docs/BENCHMARKS.md).
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

impl Application {
    /// Binds the configured address (port 0 picks a free one) and wires everything.
    pub async fn build(config: &Config, overrides: Overrides) -> anyhow::Result<Self> {
        config.check_can_serve()?;
        let listener = listen(config.bind)
            .and_then(tokio::net::TcpListener::into_std)
            .with_context(|| format!("cannot listen on {} (CHAT_BIND)", config.bind))?;
        let addr = listener.local_addr()?;
        let ws_listener = match config.ws_bind {
            Some(ws_bind) => Some(
                listen(ws_bind)
                    .with_context(|| format!("cannot listen on {ws_bind} (CHAT_WS_BIND)"))?,
            ),
            None => None,
        };
        let ws_addr = ws_listener
            .as_ref()
            .map(tokio::net::TcpListener::local_addr)
            .transpose()?;
        let media = open_media(config, addr)?;
        let Wired {
            service,
            lock,
            mut probes,
            rate_counter,
        } = build_service(config, overrides, Some(media.store.clone())).await?;
        let objects = media.store.clone();
        probes.push(Probe::new("media", move || {
            let objects = objects.clone();
            async move { objects.ping().await.map_err(|e| e.to_string()) }.boxed()
        }));
        let metrics = metrics_handle();
        let realtime = Realtime::new(pusher_settings(config));
        let state = HttpState {
            service: service.clone(),
            tokens: Arc::new(TokenVerifier::hs256(
                config.jwt_secret.expose_secret().as_bytes(),
                config.jwt_issuer.clone(),
                config.jwt_audience.clone(),
            )),
            max_body_bytes: config.max_body_bytes,
            limits: RateLimits {
                counter: rate_counter,
                window: Duration::from_secs(60),
                posts: config.rate_limit_posts,
                uploads: config.rate_limit_uploads,
                auth: config.rate_limit_auth,
            },
            media: media.gateway,
            realtime: Some(realtime.clone()),
            operations: Operations {
                probes,
                probe_timeout: PROBE_TIMEOUT,
                metrics: metrics.clone().map(|handle| {
                    Arc::new(move || handle.render()) as Arc<dyn Fn() -> String + Send + Sync>
                }),
            },
        };
        let server = HttpServer::new(move || {
            App::new()
                .wrap(chat_http::no_store())
                .wrap(actix_web::middleware::from_fn(telemetry::log_request))
                .configure(chat_http::configure(state.clone()))
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        Ok(Self {
            addr,
            ws_addr,
            ws_listener,
            server,
            service,
            lock,
            sweep_interval: (config.sweep_interval_secs > 0)
                .then(|| Duration::from_secs(config.sweep_interval_secs)),
            realtime,
            metrics,
        })
    }

    /// Serves until the server stops, running background jobs and the sweep beside it.
    pub async fn run(self) -> std::io::Result<()> {
        let worker = tokio::spawn(run_jobs(self.service.clone()));
        let delivery = tokio::spawn(self.realtime.clone().deliver_events(self.service.clone()));
        let websockets = self.ws_listener.map(|listener| {
            tokio::spawn(chat_http::pusher::listener::serve(
                listener,
                self.realtime.clone(),
                self.service.clone(),
            ))
        });
        let sweeper = self
            .sweep_interval
            .map(|every| tokio::spawn(run_sweeps(self.service.clone(), self.lock.clone(), every)));
        // The recorder's histograms need draining now and then (no HTTP exporter does it).
        let upkeep = self.metrics.clone().map(|handle| {
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(Duration::from_secs(5));
                loop {
                    ticks.tick().await;
                    handle.run_upkeep();
                }
            })
        });
        let result = self.server.await;
        flush_audit(&self.service).await;
        if let Some(upkeep) = upkeep {
            upkeep.abort();
        }
        worker.abort();
        delivery.abort();
        if let Some(websockets) = websockets {
            websockets.abort();
        }
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        result
    }
}

/// The WebSocket server's settings. Without `CHAT_PUSHER_APP_SECRET` the secret is
/// derived from the JWT secret (HMAC under a fixed label), never the JWT secret itself.
pub fn pusher_settings(config: &Config) -> PusherSettings {
    let secret = match &config.pusher_app_secret {
        Some(secret) => secret.expose_secret().as_bytes().to_vec(),
        None => {
            let key = ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                config.jwt_secret.expose_secret().as_bytes(),
            );
            ring::hmac::sign(&key, b"chat-server pusher app secret")
                .as_ref()
                .to_vec()
        }
    };
    let mut settings = PusherSettings::new(
        config.pusher_app_id.clone(),
        config.pusher_app_key.clone(),
        secret,
    );
    settings.allowed_origins = config.allowed_origins.clone();
    settings.event_prefix = config.broadcast_event_prefix.clone();
    settings.activity_timeout = Duration::from_secs(config.pusher_activity_timeout_secs);
    settings
}

/// The PostgreSQL store of the configuration, if any, migrated when `CHAT_AUTO_MIGRATE`.
pub async fn connect_postgres(config: &Config, migrate: bool) -> anyhow::Result<Option<PgStore>> {
    let Some(url) = &config.database_url else {
        return Ok(None);
    };
    let store = PgStore::new(
        url.expose_secret(),
        PgSettings {
            max_connections: config.database_max_connections,
            op_timeout: Duration::from_millis(config.store_timeout_ms),
        },
    )?;
    if migrate {
        let applied = store
            .migrate()
            .await
            .context("applying migrations (CHAT_DATABASE_URL)")?;
        tracing::info!(applied, "database migrations up to date");
    }
    Ok(Some(store))
}

/// How long a thread's Redis keys outlive its last post when `CHAT_MESSAGE_TTL_SECS=0`
/// (no message TTL): Redis holds only keys that expire.
const REDIS_QUIET_THREAD_TTL: Duration = Duration::from_secs(7 * 86_400);

/// The Redis of the configuration, if any. A Redis that is down at start is not fatal
/// (requests that need it are `503` until it is back), but an eviction policy that would
/// drop live messages is logged loudly.
pub async fn connect_redis(config: &Config) -> anyhow::Result<Option<Redis>> {
    let Some(url) = &config.redis_url else {
        return Ok(None);
    };
    let redis = Redis::new(
        url.expose_secret(),
        RedisSettings {
            op_timeout: Duration::from_millis(config.store_timeout_ms),
            ..RedisSettings::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("CHAT_REDIS_URL: {e}"))?;
    match redis.eviction_warning().await {
        Ok(None) => tracing::info!("Redis answers; its maxmemory-policy keeps live keys"),
        Ok(Some(warning)) => tracing::error!("{warning}"),
        Err(error) => tracing::warn!(
            %error,
            "could not read Redis's maxmemory-policy (down, or CONFIG disabled); make sure it is noeviction"
        ),
    }
    Ok(Some(redis))
}

/// The media storage of `CHAT_OBJECT_STORE_URL`; `/media/…` URLs point at
/// `CHAT_PUBLIC_BASE_URL`, else at the address the server listens on.
pub fn open_media(config: &Config, addr: SocketAddr) -> anyhow::Result<chat_storage::Media> {
    let settings = chat_storage::MediaSettings {
        url: config.object_store_url.clone(),
        public_base_url: config
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}")),
        signing_secret: config.jwt_secret.expose_secret().as_bytes().to_vec(),
        max_upload_bytes: config.max_upload_bytes,
        options: config
            .object_store_options
            .iter()
            .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
            .collect(),
    };
    chat_storage::open(&settings).map_err(|e| anyhow::anyhow!("CHAT_OBJECT_STORE_URL: {e}"))
}

/// The service over the adapters the configuration selects.
pub async fn build_service(
    config: &Config,
    overrides: Overrides,
    media: Option<Arc<dyn MediaStore>>,
) -> anyhow::Result<Wired> {
    let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let key_ring: Arc<dyn KeyRing> = Arc::new(match &config.master_keys {
        Some(MasterKeySetting::Ring(ring)) => MasterKeyRing::parse_ring(ring.expose_secret())
            .map_err(|e| anyhow::anyhow!("CHAT_MASTER_KEYS: {e}"))?,
        Some(MasterKeySetting::Single(key)) => MasterKeyRing::parse_single(key.expose_secret())
            .map_err(|e| anyhow::anyhow!("CHAT_MASTER_KEY: {e}"))?,
        None => {
            tracing::warn!(
                "no CHAT_MASTER_KEY: generated a random master key for this process; \
                 messages will not be readable after a restart (fine for the in-memory store)"
            );
            MasterKeyRing::generate()
                .map_err(|e| anyhow::anyhow!("generating a master key: {e}"))?
        }
    });
    let postgres = connect_postgres(config, config.auto_migrate)
        .await?
        .map(Arc::new);
    let redis = connect_redis(config).await?;
    let retention =
        Retention::from_settings(config.message_ttl_secs, config.max_messages_per_thread);
    let messages: Arc<dyn MessageStore> =
        match (overrides.messages, config.message_store, &postgres, &redis) {
            (Some(store), ..) => store,
            (None, MessageStoreKind::Postgres, Some(pg), _) => pg.clone(),
            (None, MessageStoreKind::Redis, _, Some(redis)) => Arc::new(RedisMessageStore::new(
                redis.clone(),
                retention.ttl.unwrap_or(REDIS_QUIET_THREAD_TTL),
            )),
            _ => Arc::new(MemoryMessageStore::default()),
        };
    let mut ports = Ports {
        requests: Arc::new(MemoryRequestDirectory::default()),
        threads: Arc::new(MemoryThreadRepository::default()),
        keys: Arc::new(MemoryKeyStore::default()),
        messages,
        media,
        events: Arc::new(MemoryEventBus::new(config.event_buffer)),
        jobs: Arc::new(MemoryJobQueue::default()),
        clock,
        key_ring,
        audit: None,
    };
    // PostgreSQL, when configured, holds everything durable.
    if let Some(pg) = &postgres {
        ports.requests = pg.clone();
        ports.threads = pg.clone();
        ports.keys = pg.clone();
        ports.jobs = pg.clone();
        ports.audit = Some(Arc::new(pg.audit_sink()));
    }
    let mut lock: Arc<dyn LeaseLock> = Arc::new(MemoryLeaseLock::default());
    let mut rate_counter: Arc<dyn RateCounter> = Arc::new(MemoryRateCounter::default());
    if let Some(pg) = &postgres {
        lock = pg.clone();
    }
    // Redis, when configured, carries events between instances and holds the locks.
    if let Some(redis) = &redis {
        ports.events = Arc::new(RedisEventBus::start(redis.clone(), config.event_buffer));
        lock = Arc::new(RedisLeaseLock::new(redis.clone()));
        rate_counter = Arc::new(RedisRateCounter::new(redis.clone()));
    }
    let settings = ChatSettings {
        enabled: config.enabled,
        retention,
        max_text_chars: config.max_text_chars,
        max_upload_bytes: config.max_upload_bytes,
        allowed_image_mime: config.allowed_image_mime.clone(),
        signed_url_ttl: Duration::from_secs(config.signed_url_ttl_secs),
        redact_on_close: config.redact_messages,
        job_lease: Duration::from_secs(config.job_lease_secs),
    };
    let mut probes = Vec::new();
    if let Some(pg) = postgres {
        probes.push(Probe::new("postgres", move || {
            let pg = pg.clone();
            async move { pg.ping().await.map_err(|e| e.to_string()) }.boxed()
        }));
    }
    if let Some(redis) = redis {
        probes.push(Probe::new("redis", move || {
            let redis = redis.clone();
            async move { redis.ping().await.map_err(|e| e.to_string()) }.boxed()
        }));
    }
    Ok(Wired {
        service: ChatService::new(ports, settings),
        lock,
        probes,
        rate_counter,
    })
}

/// How long a process that exits waits for its audit events to be stored.
const AUDIT_FLUSH_DEADLINE: Duration = Duration::from_secs(10);

/// Waits (a bounded time) until the audit events recorded so far are stored: before
/// the process exits. Whatever misses the deadline is in the `chat_audit` log.
pub async fn flush_audit(service: &ChatService) {
    if tokio::time::timeout(AUDIT_FLUSH_DEADLINE, service.flush_audit())
        .await
        .is_err()
    {
        tracing::warn!("audit events not all stored before exit; they are in the log");
    }
}

/// Held by the instance whose sweep is due; never released, so that, whichever instance
/// ticks, nobody sweeps again until (nine tenths of) the interval has passed.
const SWEEP_DUE_LOCK: &str = "chat:sweep:due";
/// Held while a sweep runs, by `serve` and `cleanup` alike, so two never overlap. Its
/// lease bounds how long a crashed sweeper blocks the next one.
const SWEEP_RUNNING_LOCK: &str = "chat:sweep:running";
const SWEEP_RUNNING_LEASE: Duration = Duration::from_secs(15 * 60);

/// Why a sweep did not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("another instance is sweeping right now")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Runs one sweep unless another is running anywhere, and logs what it removed.
pub async fn sweep_once(wired: &Wired) -> Result<SweepReport, SweepError> {
    let lock = &wired.lock;
    let token = lock
        .try_acquire(SWEEP_RUNNING_LOCK, SWEEP_RUNNING_LEASE)
        .await
        .map_err(|e| anyhow::anyhow!("the sweep lock is unavailable: {e}"))?
        .ok_or(SweepError::Busy)?;
    let started = std::time::Instant::now();
    let result = wired.service.sweep().await;
    if let Err(error) = lock.release(SWEEP_RUNNING_LOCK, &token).await {
        tracing::warn!(%error, "could not release the sweep lock; it lapses by itself");
    }
    let report = result.map_err(|e| {
        metrics::counter!(names::JOBS, "job" => "sweep", "outcome" => "failed").increment(1);
        anyhow::anyhow!("sweep failed: {e}")
    })?;
    let outcome = if report.purge_failures == 0 {
        "done"
    } else {
        "partial"
    };
    metrics::counter!(names::JOBS, "job" => "sweep", "outcome" => outcome).increment(1);
    tracing::info!(
        job = "sweep",
        outcome,
        expired_messages = report.expired_messages,
        closed_threads = report.closed_threads,
        purge_failures = report.purge_failures,
        media_deleted = report.media_deleted,
        keys_destroyed = report.keys_destroyed,
        messages_redacted = report.messages_redacted,
        stale_jobs_requeued = report.stale_jobs.requeued,
        stale_jobs_failed = report.stale_jobs.failed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sweep finished"
    );
    Ok(report)
}

/// Every `every`, the instance that takes the due lock sweeps (the first tick is at
/// start). Errors are logged; the next interval tries again.
async fn run_sweeps(service: ChatService, lock: Arc<dyn LeaseLock>, every: Duration) {
    let wired = Wired {
        service,
        lock,
        probes: Vec::new(),
        rate_counter: Arc::new(MemoryRateCounter::default()),
    };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match wired.lock.try_acquire(SWEEP_DUE_LOCK, every * 9 / 10).await {
            Ok(Some(_due)) => match sweep_once(&wired).await {
                Ok(_) => {}
                Err(SweepError::Busy) => tracing::info!("sweep skipped: one is still running"),
                Err(SweepError::Failed(error)) => tracing::warn!("{error:#}"),
            },
            Ok(None) => tracing::debug!("sweep not due here: another instance has run it"),
            Err(error) => tracing::warn!(%error, "the sweep lock is unavailable"),
        }
    }
}

/// Runs due jobs until cancelled: back to back while there is work, else once a second.
async fn run_jobs(service: ChatService) {
    loop {
        match service.run_next_job().await {
            Ok(Some(outcome)) => {
                log_outcome(&outcome);
                continue;
            }
            Ok(None) => {}
            Err(error) => {
                chat_http::ops::count_error(&error);
                tracing::warn!(%error, "the job queue is unavailable");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn log_outcome(outcome: &JobOutcome) {
    let label = match outcome {
        JobOutcome::Done { .. } => "done",
        JobOutcome::Retrying { .. } => "retrying",
        JobOutcome::Failed { .. } => "failed",
    };
    metrics::counter!(names::JOBS, "job" => "purge_thread", "outcome" => label).increment(1);
    match outcome {
        JobOutcome::Done {
            thread,
            attempt,
            report,
        } => tracing::info!(
            job = "purge_thread", thread_id = %thread, attempt, outcome = "done",
            media_deleted = report.media_deleted, messages_redacted = report.messages_redacted,
            key_destroyed = report.key_destroyed, "job finished"
        ),
        JobOutcome::Retrying {
            thread,
            attempt,
            at,
            error,
        } => tracing::warn!(
            job = "purge_thread", thread_id = %thread, attempt, outcome = "retrying",
            retry_at = %at, %error, "job failed, will retry"
        ),
        JobOutcome::Failed {
            thread,
            attempt,
            error,
        } => tracing::error!(
            job = "purge_thread", thread_id = %thread, attempt, outcome = "failed",
            %error, "job failed for good"
        ),
    }
}

/// Signs a token with the configured secret, for `chat-server token`.
pub fn issue_token(config: &Config, sub: i64, role: &str, ttl: Duration) -> anyhow::Result<String> {
    let exp = chrono::Utc::now().timestamp() as u64 + ttl.as_secs();
    let claims = chat_http::Claims {
        sub,
        role: role.to_owned(),
        exp,
        nbf: None,
        iss: config.jwt_issuer.clone(),
        aud: config.jwt_audience.clone(),
    };
    Ok(chat_http::sign_hs256(
        config.jwt_secret.expose_secret().as_bytes(),
        &claims,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of connections that arrives faster than the server accepts waits in the
    /// listen queue instead of being dropped (a dropped handshake costs the client a
    /// one-second SYN retry). Nothing accepts here: every connection must still
    /// complete its TCP handshake.
    #[tokio::test]
    async fn a_burst_of_connections_waits_to_be_accepted() {
        let listener = listen("127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()))
            .unwrap_or_else(|e| panic!("listen: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        // More than the 128 of a default listener, within the kernel's own cap.
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4096);
        let burst = somaxconn.min(600);
        let connects = (0..burst).map(|_| {
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        });
        let connected = futures::future::join_all(connects)
            .await
            .into_iter()
            .filter(|c| matches!(c, Ok(Ok(_))))
            .count();
        assert_eq!(
            connected, burst,
            "connections dropped by a full listen queue"
        );
        drop(listener);
    }
}
