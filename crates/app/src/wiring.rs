//! Wiring: the configured adapters (PostgreSQL, Redis, object storage, or memory) built
//! into one `ChatService`, and the tokens `chat-server token` signs.

use super::*;

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
    /// The adapters the service was built on: the composition root's, for tests and
    /// operators' tools that inspect a store; request handling goes through `service`.
    pub ports: Ports,
    /// Redis when configured, else PostgreSQL, else this process alone.
    pub lock: Arc<dyn LeaseLock>,
    /// The configured database and Redis, for `/readyz`.
    pub probes: Vec<Probe>,
    /// Rate-limit windows: in Redis when configured, else in this process.
    pub rate_counter: Arc<dyn RateCounter>,
    /// The Redis event bus's subscribed connection, when events go through Redis.
    pub event_link: Option<EventLinkHealth>,
}

/// The PostgreSQL store of the configuration, if any, migrated first when `migrate`:
/// over `CHAT_DATABASE_MIGRATION_URL` when set (a direct connection, for a service
/// behind a transaction pooler), else over `CHAT_DATABASE_URL`.
pub async fn connect_postgres(config: &Config, migrate: bool) -> anyhow::Result<Option<PgStore>> {
    let Some(url) = &config.stores.database_url else {
        return Ok(None);
    };
    let settings = PgSettings {
        max_connections: config.stores.database_max_connections,
        op_timeout: config.stores.timeout,
        behind_transaction_pooler: config.stores.database_behind_transaction_pooler,
        link_check: config.stores.link_check,
    };
    let store = PgStore::new(url.expose_secret(), settings.clone())?;
    if migrate {
        let applied = match &config.stores.database_migration_url {
            Some(direct) => PgStore::new(
                direct.expose_secret(),
                PgSettings {
                    max_connections: 1,
                    behind_transaction_pooler: false,
                    ..settings
                },
            )?
            .migrate()
            .await
            .context("applying migrations (CHAT_DATABASE_MIGRATION_URL)")?,
            None => store.migrate().await.context(
                "applying migrations (CHAT_DATABASE_URL; behind a transaction pooler, set \
                 CHAT_DATABASE_MIGRATION_URL to a direct connection)",
            )?,
        };
        tracing::info!(applied, "database migrations up to date");
    }
    Ok(Some(store))
}

/// The KMS key ring of `CHAT_KMS_KEY_ID`, over the `AWS_*` settings given to the
/// service (region, endpoint, static credentials), else the SDK's default chain. KMS
/// is not called here: a KMS that is down at start makes requests that need a key
/// `503` (and `/readyz` say so) until it is back.
async fn connect_kms(config: &Config, key_id: &str) -> KmsKeyRing {
    let var = |name: &str| config.aws_var(name).map(|v| v.expose_secret().to_owned());
    let credentials = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Some((id, secret, var("AWS_SESSION_TOKEN"))),
        _ => None,
    };
    let settings = KmsSettings {
        key_id: key_id.to_owned(),
        cache_ttl: config.keys.kms_cache,
        timeout: config.stores.timeout,
        region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
        endpoint: var("AWS_ENDPOINT_URL_KMS").or_else(|| var("AWS_ENDPOINT_URL")),
        credentials,
    };
    tracing::info!(
        key_id,
        cache_secs = config.keys.kms_cache.as_secs(),
        "thread keys are wrapped by AWS KMS"
    );
    KmsKeyRing::connect(settings).await
}

/// How long a thread's Redis keys outlive its last post when `CHAT_MESSAGE_TTL_SECS=0`
/// (no message TTL): Redis holds only keys that expire.
const REDIS_QUIET_THREAD_TTL: Duration = Duration::from_secs(7 * 86_400);

/// The Redis of the configuration, if any. A Redis that is down at start is not fatal
/// (requests that need it are `503` until it is back), but an eviction policy that would
/// drop live messages is logged loudly.
pub async fn connect_redis(config: &Config) -> anyhow::Result<Option<Redis>> {
    let Some(url) = &config.stores.redis_url else {
        return Ok(None);
    };
    let redis = Redis::new(
        url.expose_secret(),
        RedisSettings {
            op_timeout: config.stores.timeout,
            mode: config.stores.redis_mode.clone(),
            link_check: config.stores.link_check,
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
        url: config.media.object_store_url.clone(),
        public_base_url: config
            .media
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}")),
        signing_secret: config.auth.jwt_secret.expose_secret().as_bytes().to_vec(),
        max_upload_bytes: config.media.max_upload_bytes,
        options: config
            .media
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
    // One TLS crypto provider for the process (PostgreSQL, Redis, object storage and
    // webhooks): rustls cannot choose between the two compiled in.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let kms = match &config.keys.kms_key_id {
        Some(key_id) => Some(Arc::new(connect_kms(config, key_id).await)),
        None => None,
    };
    let key_ring = key_ring(config, kms.clone())?;
    let postgres = connect_postgres(config, config.stores.auto_migrate)
        .await?
        .map(Arc::new);
    let redis = connect_redis(config).await?;
    let retention = config.chat.retention;
    let mut ports = Ports {
        messages: overrides.messages.unwrap_or_else(|| {
            message_store(
                config.stores.message_store,
                postgres.as_ref(),
                redis.as_ref(),
                &retention,
            )
        }),
        media,
        images: Some(image_decoder(config)),
        events: Arc::new(MemoryEventBus::new(config.stores.event_buffer)),
        clock,
        ..chat_memory::ports(key_ring)
    };
    // PostgreSQL, when configured, holds everything durable.
    if let Some(pg) = &postgres {
        ports.requests = pg.clone();
        ports.threads = pg.clone();
        ports.keys = pg.clone();
        ports.jobs = pg.clone();
        ports.unread = pg.clone();
        ports.audit = Some(Arc::new(pg.audit_sink()));
    }
    // The memory-only mode (SPEC §4): thread keys beside their messages in Redis, never
    // in PostgreSQL; those a previous release left there are moved as they are read.
    if let (MessageStoreKind::Redis, Some(redis)) = (config.stores.message_store, &redis) {
        ports.keys = keys_in_redis(redis, postgres.as_ref(), &retention).await;
    }
    let mut lock: Arc<dyn LeaseLock> = Arc::new(MemoryLeaseLock::default());
    let mut rate_counter: Arc<dyn RateCounter> = Arc::new(MemoryRateCounter::default());
    if let Some(pg) = &postgres {
        lock = pg.clone();
    }
    // Redis, when configured, carries events between instances and holds the locks.
    let mut event_link = None;
    if let Some(redis) = &redis {
        let bus = RedisEventBus::start(redis.clone(), config.stores.event_buffer);
        event_link = Some(bus.health());
        ports.events = Arc::new(bus);
        lock = Arc::new(RedisLeaseLock::new(redis.clone()));
        rate_counter = Arc::new(RedisRateCounter::new(redis.clone()));
        ports.channels = Arc::new(RedisChannelRegistry::new(redis.clone()));
    }
    ports.recorder = fhir_recorder(config)?;
    ports.webhooks = webhook_sender(config)?;
    let settings = chat_settings(config, retention);
    let probes = readiness_probes(postgres, kms, redis, event_link.clone());
    Ok(Wired {
        service: ChatService::new(ports.clone(), settings),
        ports,
        lock,
        probes,
        rate_counter,
        event_link,
    })
}

/// Thumbnails and the pixel limit of images (decoded on tokio's blocking threads).
fn image_decoder(config: &Config) -> Arc<chat_images::ImageDecoder> {
    Arc::new(chat_images::ImageDecoder::new(chat_images::ImageLimits {
        max_pixels: config.media.max_image_pixels,
        thumbnail_px: config.media.thumb_max_px,
    }))
}

/// The master key ring: KMS when configured, else the configured keys, else (for the
/// in-memory store) a key of this process alone.
fn key_ring(config: &Config, kms: Option<Arc<KmsKeyRing>>) -> anyhow::Result<Arc<dyn KeyRing>> {
    if let Some(kms) = kms {
        return Ok(kms);
    }
    let ring = match &config.keys.master_keys {
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
    };
    Ok(Arc::new(ring))
}

/// Where messages are kept: the store `CHAT_MESSAGE_STORE` names, when its backend is
/// configured, else memory.
fn message_store(
    kind: MessageStoreKind,
    postgres: Option<&Arc<PgStore>>,
    redis: Option<&Redis>,
    retention: &Retention,
) -> Arc<dyn MessageStore> {
    match (kind, postgres, redis) {
        (MessageStoreKind::Postgres, Some(pg), _) => pg.clone(),
        (MessageStoreKind::Redis, _, Some(redis)) => Arc::new(RedisMessageStore::new(
            redis.clone(),
            retention.ttl.unwrap_or(REDIS_QUIET_THREAD_TTL),
        )),
        _ => Arc::new(MemoryMessageStore::default()),
    }
}

/// The memory-only mode (SPEC §4): thread keys beside their messages in Redis, never
/// in PostgreSQL; those a previous release left there are moved as they are read. A
/// Redis that persists to disk is named in the log.
async fn keys_in_redis(
    redis: &Redis,
    postgres: Option<&Arc<PgStore>>,
    retention: &Retention,
) -> Arc<dyn ThreadKeyStore> {
    let in_redis = Arc::new(RedisKeyStore::new(
        redis.clone(),
        retention.ttl.unwrap_or(REDIS_QUIET_THREAD_TTL),
    ));
    match redis.persistence_warning().await {
        Ok(Some(warning)) => tracing::warn!("{warning}"),
        Ok(None) => {}
        Err(error) => tracing::debug!(%error, "could not read Redis's persistence settings"),
    }
    match postgres {
        Some(pg) => Arc::new(crate::moving_keys::MovingKeyStore {
            current: in_redis,
            legacy: pg.clone(),
        }),
        None => in_redis,
    }
}

/// The provider's FHIR server, when `CHAT_FHIR_BASE_URL` names one.
fn fhir_recorder(config: &Config) -> anyhow::Result<Option<Arc<dyn ThreadRecorder>>> {
    let Some(base) = &config.record.fhir_base_url else {
        return Ok(None);
    };
    Ok(Some(Arc::new(crate::recorder::FhirRecorder::new(
        base.clone(),
        config.record.fhir_token.clone(),
        chat_fhir::Systems {
            user: config.record.user_system.clone(),
            request: config.record.request_system.clone(),
        },
        config.stores.link_check,
    )?)))
}

/// The host's webhooks, when `CHAT_WEBHOOK_URL` names where they go.
fn webhook_sender(config: &Config) -> anyhow::Result<Option<Arc<dyn WebhookSender>>> {
    let Some(url) = &config.realtime.webhook_url else {
        return Ok(None);
    };
    let app = crate::serving::pusher_settings(config);
    Ok(Some(Arc::new(crate::webhooks::HttpWebhooks::new(
        url.clone(),
        app.key,
        &app.secret,
        config.stores.link_check,
    )?)))
}

/// The settings the use cases obey, from the configuration.
fn chat_settings(config: &Config, retention: Retention) -> ChatSettings {
    if config.chat.unread_escalation.is_some() && config.realtime.webhook_url.is_none() {
        tracing::warn!(
            "CHAT_UNREAD_ESCALATION_SECS is set without CHAT_WEBHOOK_URL: \
             message_unread has nowhere to go, so no message is checked"
        );
    }
    ChatSettings {
        enabled: config.chat.enabled,
        retention,
        max_text_chars: config.chat.max_text_chars,
        max_upload_bytes: config.media.max_upload_bytes,
        allowed_image_mime: config.media.allowed_image_mime.clone(),
        signed_url_ttl: config.media.signed_url_ttl,
        redact_on_close: config.chat.redact_messages,
        job_lease: config.chat.job_lease,
        unread_escalation: config.chat.unread_escalation,
        webhook_batch: webhook_batching(config),
    }
}

/// Webhook batches, when webhooks are sent and `CHAT_WEBHOOK_BATCH_MS` is not 0.
fn webhook_batching(config: &Config) -> Option<chat_core::WebhookBatching> {
    let realtime = &config.realtime;
    realtime.webhook_url.as_ref()?;
    Some(chat_core::WebhookBatching {
        max_events: std::num::NonZeroUsize::new(realtime.webhook_batch_size)?,
        wait: realtime.webhook_batch_wait?,
    })
}

/// What `/readyz` checks: each backend in use, and the event link, which may be a
/// zombie while Redis still answers commands (SPEC §6).
fn readiness_probes(
    postgres: Option<Arc<PgStore>>,
    kms: Option<Arc<KmsKeyRing>>,
    redis: Option<Redis>,
    event_link: Option<EventLinkHealth>,
) -> Vec<Probe> {
    let mut probes = Vec::new();
    if let Some(pg) = postgres {
        probes.push(Probe::new("postgres", move || {
            let pg = pg.clone();
            async move { pg.ping().await.map_err(|e| e.to_string()) }.boxed()
        }));
    }
    if let Some(kms) = kms {
        probes.push(Probe::new("kms", move || {
            let kms = kms.clone();
            async move { kms.check().await.map_err(|e| e.to_string()) }.boxed()
        }));
    }
    if let Some(redis) = redis {
        probes.push(Probe::new("redis", move || {
            let redis = redis.clone();
            async move { redis.ping().await.map_err(|e| e.to_string()) }.boxed()
        }));
    }
    if let Some(link) = event_link {
        probes.push(Probe::new("event_link", move || {
            let link = link.clone();
            async move {
                match link.since_alive() {
                    _ if link.is_up() => Ok(()),
                    Some(ago) => Err(format!("not known alive for {} ms", ago.as_millis())),
                    None => Err("never subscribed".to_owned()),
                }
            }
            .boxed()
        }));
    }
    probes
}

/// Signs a token with the configured secret, for `chat-server token`.
/// With a public key or a JWKS the tokens come from the identity provider: one signed
/// with the secret would be refused, so none is printed.
pub fn issue_token(config: &Config, sub: i64, role: &str, ttl: Duration) -> anyhow::Result<String> {
    if config.auth.token_verification != crate::config::TokenVerification::Secret {
        anyhow::bail!(
            "tokens are verified with CHAT_JWT_PUBLIC_KEY_FILE or CHAT_JWT_JWKS_URL: \
             get one from the identity provider that holds the private key"
        );
    }
    let exp = chrono::Utc::now().timestamp() as u64 + ttl.as_secs();
    let claims = chat_http::Claims {
        sub,
        role: role.to_owned(),
        exp,
        nbf: None,
        iss: config.auth.issuer.clone(),
        aud: config.auth.audience.clone(),
    };
    Ok(chat_http::sign_hs256(
        config.auth.jwt_secret.expose_secret().as_bytes(),
        &claims,
    )?)
}
