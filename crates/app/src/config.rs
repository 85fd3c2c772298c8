//! Configuration, read once from the environment at start and passed down. Every
//! variable is documented beside its field; secrets are `SecretString`, so `Debug`
//! never shows them. Nothing reads the environment after this.

use chat_core::ChatSettings;
use chat_http::pusher::PusherSettings;
use chat_redis::RedisMode;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The JWT secret used when `CHAT_JWT_SECRET` is unset: fine on a laptop, refused on
/// any non-loopback bind.
pub const DEV_JWT_SECRET: &str = "chat-server-development-secret-not-for-production";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStoreKind {
    Memory,
    Postgres,
    Redis,
}

/// How bearer tokens are verified (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenVerification {
    /// HS256 with `CHAT_JWT_SECRET`.
    Secret,
    /// `CHAT_JWT_PUBLIC_KEY_FILE`: its PEM, and the one algorithm its key verifies.
    PublicKey {
        path: std::path::PathBuf,
        algorithm: jsonwebtoken::Algorithm,
        pem: Vec<u8>,
    },
    /// `CHAT_JWT_JWKS_URL`: the identity provider's keys, cached
    /// `CHAT_JWT_JWKS_CACHE_SECS` (default 300).
    Jwks { url: String, cache: Duration },
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `CHAT_BIND`: listen address. Default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// `CHAT_WS_BIND`: a second listen address serving only the Pusher WebSocket
    /// (`/app/{key}`), on tokio-tungstenite: a fraction of the memory per idle socket
    /// of `/app/{key}` on `CHAT_BIND`, which keeps working. Unset by default.
    pub ws_bind: Option<SocketAddr>,
    /// `CHAT_JWT_SECRET`: HS256 secret of bearer tokens (unless a public key or a JWKS
    /// verifies them), and the key that signs media URLs and derives the Pusher
    /// secret. Default: a built-in development secret, accepted only on a loopback bind.
    pub jwt_secret: SecretString,
    pub jwt_secret_is_builtin: bool,
    /// `CHAT_JWT_PUBLIC_KEY_FILE` or `CHAT_JWT_JWKS_URL`, else the secret.
    pub token_verification: TokenVerification,
    /// `CHAT_JWT_ISSUER`: required `iss` claim, when set (always with a JWKS).
    pub jwt_issuer: Option<String>,
    /// `CHAT_JWT_AUDIENCE`: required `aud` claim, when set.
    pub jwt_audience: Option<String>,
    /// `CHAT_JWT_LEEWAY_SECS`: clock skew allowed on `exp` and `nbf`, and how long past
    /// its token's `exp` a real-time subscription lasts. Default 30.
    pub jwt_leeway_secs: u64,
    /// `CHAT_ENABLED`: the feature flag; `false` answers `501` on every chat route.
    /// Default `true`.
    pub enabled: bool,
    /// `CHAT_MESSAGE_TTL_SECS`: message lifetime; `0` keeps messages forever. Default 86400.
    pub message_ttl_secs: u64,
    /// `CHAT_MAX_MESSAGES_PER_THREAD`: only the newest are kept; `0` keeps all. Default 100.
    pub max_messages_per_thread: u32,
    /// `CHAT_MAX_TEXT_CHARS`: longest text message, in characters. Default 4000.
    pub max_text_chars: usize,
    /// `CHAT_MAX_BODY_BYTES`: largest JSON request body; larger is `413`. Default 65536.
    pub max_body_bytes: usize,
    /// `CHAT_MAX_UPLOAD_BYTES`: largest image. Default 10485760 (10 MiB).
    pub max_upload_bytes: u64,
    /// `CHAT_FHIR_BASE_URL`: the provider's FHIR server (its base URL); a thread whose
    /// request asked for it (`record: true`) sends its transcript there at close, as a
    /// `transaction` Bundle, before it is purged. Unset: nothing is recorded.
    pub fhir_base_url: Option<String>,
    /// `CHAT_FHIR_TOKEN`: a bearer token for the FHIR server, when it needs one.
    pub fhir_token: Option<SecretString>,
    /// `CHAT_FHIR_USER_SYSTEM`: the identifier system of users in the FHIR record
    /// (senders, recipients). Default `urn:chat:user`.
    pub fhir_user_system: String,
    /// `CHAT_FHIR_REQUEST_SYSTEM`: the identifier system of service requests in the
    /// FHIR record (`Communication.about`). Default `urn:chat:request`.
    pub fhir_request_system: String,
    /// `CHAT_MAX_IMAGE_PIXELS`: an image whose width × height is larger is refused
    /// (`422`) before it is decoded. Default 40,000,000.
    pub max_image_pixels: u64,
    /// `CHAT_THUMB_MAX_PX`: the longer side of an image's thumbnail, at most. Default
    /// 320.
    pub thumb_max_px: u32,
    /// `CHAT_ALLOWED_IMAGE_MIME`: comma-separated image types, judged by content.
    /// Default `image/jpeg,image/png,image/webp`.
    pub allowed_image_mime: Vec<String>,
    /// `CHAT_SIGNED_URL_TTL`: lifetime of signed media URLs, seconds. Default 900.
    pub signed_url_ttl_secs: u64,
    /// `CHAT_SWEEP_INTERVAL_SECS`: how often the sweep runs (one instance at a time);
    /// `0` runs it only through `chat-server cleanup`. Default 3600.
    pub sweep_interval_secs: u64,
    /// `CHAT_JOB_LEASE_SECS`: how long a job may run before another worker takes it
    /// over, and so how long a job interrupted by a crash waits to resume. Default 120.
    pub job_lease_secs: u64,
    /// `CHAT_RATE_LIMIT_POSTS`: messages a user may post per minute (every instance
    /// together when Redis is configured); `0` is no limit. Default 120.
    pub rate_limit_posts: u32,
    /// `CHAT_RATE_LIMIT_UPLOADS`: upload URLs a user may get per minute. Default 30.
    pub rate_limit_uploads: u32,
    /// `CHAT_RATE_LIMIT_AUTH`: channel authorizations (`/broadcasting/auth`) a user may
    /// get per minute. Default 60.
    pub rate_limit_auth: u32,
    /// `CHAT_REDACT_MESSAGES`: the purge after a close destroys the thread key and the
    /// message ciphertext. Default `true`.
    pub redact_messages: bool,
    /// `CHAT_MASTER_KEYS` (`v2:<b64>,v1:<b64>`, first entry active) or `CHAT_MASTER_KEY`
    /// (base64 of 32 bytes, version `v1`). Unset: a random key per process.
    pub master_keys: Option<MasterKeySetting>,
    /// `CHAT_KMS_KEY_ID`: the AWS KMS key (id, ARN or alias) that makes and unwraps
    /// thread keys instead of a master key held here (SPEC §4).
    pub kms_key_id: Option<String>,
    /// `CHAT_KMS_CACHE_SECS`: how long a key KMS unwrapped stays in memory at most.
    /// Default 300.
    pub kms_cache_secs: u64,
    /// `CHAT_LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
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
    /// is `503`. Default 5000.
    pub store_timeout_ms: u64,
    /// `CHAT_LINK_CHECK_SECS`: a link to Redis or PostgreSQL that stops carrying
    /// anything without closing is found dead within this and replaced (SPEC §6): the
    /// event bus's subscribed connection is pinged every half of it, every connection
    /// sets TCP keepalive from it, and `/readyz` fails while the event link has not
    /// been alive for that long. Default 10 s, 2..=300.
    pub link_check: Duration,
    /// `CHAT_SUBSCRIPTION_LAPSE_SECS`: how long the channel registry holds a socket's
    /// subscription before its instance must renew it (every third of it). An instance
    /// that dies stops renewing: its sockets leave the counts this long after, at
    /// most, and one instance then sends the `member_removed` and `channel_vacated`
    /// they never sent (SPEC §6, §9.1). Default 60 s, 3..=3600.
    pub subscription_lapse: Duration,
    /// `CHAT_EVENT_BUFFER`: events the bus holds for this instance's delivery while it
    /// catches up; an instance further behind than that (or that lost the Redis bus)
    /// closes its subscribed sockets with 4200 so that clients reconnect and list what
    /// they missed. Default 16384.
    pub event_buffer: usize,
    /// `CHAT_REDIS_URL`: Redis (`redis://[:password@]host:6379[/db]`, `rediss://` for
    /// TLS, the certificate verified against the system's roots or `SSL_CERT_FILE`) for the cross-instance event bus and locks, and the message store with
    /// `CHAT_MESSAGE_STORE=redis`.
    pub redis_url: Option<SecretString>,
    /// `CHAT_REDIS_MODE`: `single` (default) | `cluster` (`CHAT_REDIS_URL` lists seed
    /// nodes, comma-separated) | `sentinel` (`CHAT_REDIS_URL` lists the sentinels,
    /// `CHAT_REDIS_SENTINEL_MASTER` names the master).
    pub redis_mode: RedisMode,
    /// `CHAT_MESSAGE_STORE`: `memory` | `postgres` | `redis`; default `postgres` when a
    /// database is set, else `memory`.
    pub message_store: MessageStoreKind,
    /// `CHAT_OBJECT_STORE_URL`: media storage: `file:///path` (default `./data/media`),
    /// `memory://`, `s3://bucket` (with the `AWS_*` variables), `gs://`, `az://`.
    pub object_store_url: Option<String>,
    /// `AWS_*`, `GOOGLE_*`, `AZURE_*`: the object store's own settings (endpoint,
    /// region, credentials), in `object_store`'s names, e.g. `AWS_ENDPOINT`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_ALLOW_HTTP`. Values are kept secret.
    pub object_store_options: Vec<(String, SecretString)>,
    /// `CHAT_PUSHER_APP_ID`: the Pusher app id. Default `chat`.
    pub pusher_app_id: String,
    /// `CHAT_PUSHER_APP_KEY`: the public key clients connect with (`/app/{key}`).
    /// Default `chat-key`.
    pub pusher_app_key: String,
    /// `CHAT_PUSHER_APP_SECRET`: signs channel subscriptions. Default: derived from
    /// `CHAT_JWT_SECRET`, so every instance with the same secret agrees.
    pub pusher_app_secret: Option<SecretString>,
    /// `CHAT_ALLOWED_ORIGINS`: comma-separated browser origins allowed to open the
    /// WebSocket (`https://app.example.com`) and answered with CORS headers on the
    /// API, the channel authorizer and the media URLs; unset allows any WebSocket
    /// origin and sends no CORS headers.
    pub allowed_origins: Option<Vec<String>>,
    /// `CHAT_SHUTDOWN_GRACE_SECS`: on `SIGTERM`, how long the instance drains before
    /// it exits (SPEC §8). Default 10.
    pub shutdown_grace_secs: u64,
    /// `CHAT_WEBHOOK_URL`: where the host takes webhooks (`https://host.example/pusher/webhooks`);
    /// unset: none are sent.
    pub webhook_url: Option<String>,
    /// `CHAT_UNREAD_ESCALATION_SECS`: a message some recipient has not read this long
    /// after it was posted sends the webhook `message_unread` (SPEC §10). 0 or unset:
    /// off; without `CHAT_WEBHOOK_URL` it has nowhere to go, and stays off.
    pub unread_escalation_secs: Option<u64>,
    /// `CHAT_BROADCAST_EVENT_PREFIX`: prefix of event names. Default `App\Events\`.
    pub broadcast_event_prefix: String,
    /// `CHAT_PUSHER_ACTIVITY_TIMEOUT_SECS`: a WebSocket silent this long is pinged, and
    /// closed (4201) if it stays silent as long again (at most 30 s more). Default 30.
    pub pusher_activity_timeout_secs: u64,
    /// `CHAT_PUBLIC_BASE_URL`: where clients reach this service, for the `/media/…`
    /// URLs of the local backends. Default `http://` + the bound address.
    pub public_base_url: Option<String>,
}

#[derive(Debug, Clone)]
pub enum MasterKeySetting {
    Ring(SecretString),
    Single(SecretString),
}

/// A variable with a value the service cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

/// `CHAT_JWT_PUBLIC_KEY_FILE` (read and parsed now, so a bad key stops the start) or
/// `CHAT_JWT_JWKS_URL` (fetched later: a provider unreachable at start is no error).
fn token_verification(env: &Env) -> Result<TokenVerification, ConfigError> {
    match (
        env.get("CHAT_JWT_PUBLIC_KEY_FILE"),
        env.get("CHAT_JWT_JWKS_URL"),
    ) {
        (Some(_), Some(_)) => Err(err(
            "CHAT_JWT_JWKS_URL",
            "set either CHAT_JWT_PUBLIC_KEY_FILE or CHAT_JWT_JWKS_URL, not both",
        )),
        (Some(path), None) => {
            let pem = std::fs::read(path).map_err(|e| {
                err(
                    "CHAT_JWT_PUBLIC_KEY_FILE",
                    format!("cannot read {path:?}: {e}"),
                )
            })?;
            let (algorithm, _) = chat_http::public_key_from_pem(&pem)
                .map_err(|reason| err("CHAT_JWT_PUBLIC_KEY_FILE", format!("{path:?} {reason}")))?;
            Ok(TokenVerification::PublicKey {
                path: path.into(),
                algorithm,
                pem,
            })
        }
        (None, Some(url)) => {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| err("CHAT_JWT_JWKS_URL", format!("is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() {
                return Err(err(
                    "CHAT_JWT_JWKS_URL",
                    "must be an http(s) URL with a host",
                ));
            }
            if env.get("CHAT_JWT_ISSUER").is_none() {
                return Err(err(
                    "CHAT_JWT_ISSUER",
                    "is required with CHAT_JWT_JWKS_URL: the provider's issuer, checked on every token",
                ));
            }
            let cache_secs = env.parse("CHAT_JWT_JWKS_CACHE_SECS", 300u64)?;
            if !(1..=86_400).contains(&cache_secs) {
                return Err(err(
                    "CHAT_JWT_JWKS_CACHE_SECS",
                    "must be between 1 and 86400",
                ));
            }
            Ok(TokenVerification::Jwks {
                url: url.to_owned(),
                cache: Duration::from_secs(cache_secs),
            })
        }
        (None, None) => Ok(TokenVerification::Secret),
    }
}

fn err(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        reason: reason.into(),
    }
}

struct Env(HashMap<String, String>);

impl Env {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| err(name, format!("cannot parse {raw:?}"))),
        }
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(err(name, format!("expected true or false, got {other:?}"))),
        }
    }

    fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name).map(|v| SecretString::from(v.to_owned()))
    }

    fn object_store_options(&self) -> Vec<(String, SecretString)> {
        let mut options: Vec<_> = self
            .0
            .keys()
            .filter(|k| {
                ["AWS_", "GOOGLE_", "AZURE_"]
                    .iter()
                    .any(|p| k.starts_with(p))
            })
            .filter_map(|k| Some((k.clone(), self.secret(k)?)))
            .collect();
        options.sort_by(|a, b| a.0.cmp(&b.0));
        options
    }
}

impl Config {
    /// The value of one of the `AWS_*` variables given to the service.
    pub fn aws_var(&self, name: &str) -> Option<&SecretString> {
        self.object_store_options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// From the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// From explicit variables: tests build configurations side by side with this.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env = Env(vars.into_iter().collect());
        // The defaults of what the libraries configure are theirs, declared once there.
        let chat = ChatSettings::default();
        let realtime = PusherSettings::new(String::new(), String::new(), Vec::new());
        let (jwt_secret, jwt_secret_is_builtin) = match env.secret("CHAT_JWT_SECRET") {
            Some(s) if s.expose_secret().len() < 32 => {
                return Err(err("CHAT_JWT_SECRET", "must be at least 32 characters"))
            }
            Some(s) => (s, false),
            None => (SecretString::from(DEV_JWT_SECRET), true),
        };
        let master_keys = match (
            env.secret("CHAT_MASTER_KEYS"),
            env.secret("CHAT_MASTER_KEY"),
        ) {
            (Some(ring), _) => Some(MasterKeySetting::Ring(ring)),
            (None, Some(single)) => Some(MasterKeySetting::Single(single)),
            (None, None) => None,
        };
        let database_url = env.secret("CHAT_DATABASE_URL");
        let message_store = match env.get("CHAT_MESSAGE_STORE") {
            None if database_url.is_some() => MessageStoreKind::Postgres,
            None | Some("memory") => MessageStoreKind::Memory,
            Some("postgres") => MessageStoreKind::Postgres,
            Some("redis") => MessageStoreKind::Redis,
            Some(other) => {
                return Err(err(
                    "CHAT_MESSAGE_STORE",
                    format!("expected memory, postgres or redis, got {other:?}"),
                ))
            }
        };
        let redis_mode = match env.get("CHAT_REDIS_MODE") {
            None | Some("single") => RedisMode::Single,
            Some("cluster") => RedisMode::Cluster,
            Some("sentinel") => match env.get("CHAT_REDIS_SENTINEL_MASTER") {
                Some(master) if !master.trim().is_empty() => RedisMode::Sentinel {
                    master: master.trim().to_owned(),
                },
                _ => {
                    return Err(err(
                        "CHAT_REDIS_SENTINEL_MASTER",
                        "sentinel mode needs the name of the master the sentinels watch",
                    ))
                }
            },
            Some(other) => {
                return Err(err(
                    "CHAT_REDIS_MODE",
                    format!("expected single, cluster or sentinel, got {other:?}"),
                ))
            }
        };
        let log_format = match env.get("CHAT_LOG_FORMAT") {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(err(
                    "CHAT_LOG_FORMAT",
                    format!("expected text or json, got {other:?}"),
                ))
            }
        };
        let allowed_image_mime: Vec<String> = env
            .get("CHAT_ALLOWED_IMAGE_MIME")
            .map(|list| {
                list.split(',')
                    .map(|m| m.trim().to_ascii_lowercase())
                    .filter(|m| !m.is_empty())
                    .collect()
            })
            .unwrap_or(chat.allowed_image_mime);
        let max_body_bytes = env.parse("CHAT_MAX_BODY_BYTES", 65_536usize)?;
        if max_body_bytes == 0 {
            return Err(err("CHAT_MAX_BODY_BYTES", "must be positive"));
        }
        let max_text_chars = env.parse("CHAT_MAX_TEXT_CHARS", chat.max_text_chars)?;
        if max_text_chars == 0 {
            return Err(err("CHAT_MAX_TEXT_CHARS", "must be positive"));
        }
        let pusher_activity_timeout_secs = env.parse(
            "CHAT_PUSHER_ACTIVITY_TIMEOUT_SECS",
            realtime.activity_timeout.as_secs(),
        )?;
        if !(1..=3600).contains(&pusher_activity_timeout_secs) {
            return Err(err(
                "CHAT_PUSHER_ACTIVITY_TIMEOUT_SECS",
                "must be between 1 and 3600",
            ));
        }
        let job_lease_secs = env.parse("CHAT_JOB_LEASE_SECS", chat.job_lease.as_secs())?;
        let shutdown_grace_secs = env.parse("CHAT_SHUTDOWN_GRACE_SECS", 10u64)?;
        if !(1..=3600).contains(&shutdown_grace_secs) {
            return Err(err(
                "CHAT_SHUTDOWN_GRACE_SECS",
                "must be between 1 and 3600",
            ));
        }
        let token_verification = token_verification(&env)?;
        let jwt_leeway_secs = env.parse("CHAT_JWT_LEEWAY_SECS", realtime.grant_leeway.as_secs())?;
        if jwt_leeway_secs > 3600 {
            return Err(err("CHAT_JWT_LEEWAY_SECS", "must be at most 3600"));
        }
        let max_image_pixels = env.parse("CHAT_MAX_IMAGE_PIXELS", 40_000_000u64)?;
        if max_image_pixels == 0 {
            return Err(err("CHAT_MAX_IMAGE_PIXELS", "must be positive"));
        }
        let thumb_max_px = env.parse("CHAT_THUMB_MAX_PX", 320u32)?;
        if !(16..=4096).contains(&thumb_max_px) {
            return Err(err("CHAT_THUMB_MAX_PX", "must be between 16 and 4096"));
        }
        let link_check_secs = env.parse("CHAT_LINK_CHECK_SECS", 10u64)?;
        if !(2..=300).contains(&link_check_secs) {
            return Err(err("CHAT_LINK_CHECK_SECS", "must be between 2 and 300"));
        }
        let lapse_secs = env.parse(
            "CHAT_SUBSCRIPTION_LAPSE_SECS",
            realtime.subscription_lapse.as_secs(),
        )?;
        if !(3..=3600).contains(&lapse_secs) {
            return Err(err(
                "CHAT_SUBSCRIPTION_LAPSE_SECS",
                "must be between 3 and 3600",
            ));
        }
        if job_lease_secs == 0 {
            return Err(err("CHAT_JOB_LEASE_SECS", "must be positive"));
        }
        let unread_escalation_secs = env.parse("CHAT_UNREAD_ESCALATION_SECS", 0u64)?;
        // A year: past it, no message is kept to escalate (the TTL's own bound).
        if unread_escalation_secs > 366 * 24 * 3600 {
            return Err(err(
                "CHAT_UNREAD_ESCALATION_SECS",
                "must be at most 31622400 (a year)",
            ));
        }
        Ok(Self {
            bind: env.parse("CHAT_BIND", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            ws_bind: match env.get("CHAT_WS_BIND") {
                None => None,
                Some(raw) => Some(
                    raw.parse()
                        .map_err(|_| err("CHAT_WS_BIND", format!("cannot parse {raw:?}")))?,
                ),
            },
            jwt_secret,
            jwt_secret_is_builtin,
            token_verification,
            jwt_issuer: env.get("CHAT_JWT_ISSUER").map(str::to_owned),
            jwt_audience: env.get("CHAT_JWT_AUDIENCE").map(str::to_owned),
            jwt_leeway_secs,
            enabled: env.flag("CHAT_ENABLED", chat.enabled)?,
            message_ttl_secs: env.parse(
                "CHAT_MESSAGE_TTL_SECS",
                chat.retention.ttl.map_or(0, |ttl| ttl.as_secs()),
            )?,
            max_messages_per_thread: env.parse(
                "CHAT_MAX_MESSAGES_PER_THREAD",
                chat.retention.max_messages.map_or(0, |max| max.get()),
            )?,
            max_text_chars,
            max_body_bytes,
            max_upload_bytes: env.parse("CHAT_MAX_UPLOAD_BYTES", chat.max_upload_bytes)?,
            max_image_pixels,
            thumb_max_px,
            fhir_base_url: match env.get("CHAT_FHIR_BASE_URL").map(str::trim) {
                None | Some("") => None,
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                    Some(url.trim_end_matches('/').to_owned())
                }
                Some(_) => {
                    return Err(err(
                        "CHAT_FHIR_BASE_URL",
                        "must be an http:// or https:// URL",
                    ))
                }
            },
            fhir_token: env.secret("CHAT_FHIR_TOKEN"),
            fhir_user_system: env
                .get("CHAT_FHIR_USER_SYSTEM")
                .unwrap_or("urn:chat:user")
                .to_owned(),
            fhir_request_system: env
                .get("CHAT_FHIR_REQUEST_SYSTEM")
                .unwrap_or("urn:chat:request")
                .to_owned(),
            allowed_image_mime,
            signed_url_ttl_secs: env.parse("CHAT_SIGNED_URL_TTL", chat.signed_url_ttl.as_secs())?,
            redact_messages: env.flag("CHAT_REDACT_MESSAGES", chat.redact_on_close)?,
            sweep_interval_secs: env.parse("CHAT_SWEEP_INTERVAL_SECS", 3600)?,
            job_lease_secs,
            rate_limit_posts: env.parse("CHAT_RATE_LIMIT_POSTS", 120)?,
            rate_limit_uploads: env.parse("CHAT_RATE_LIMIT_UPLOADS", 30)?,
            rate_limit_auth: env.parse("CHAT_RATE_LIMIT_AUTH", 60)?,
            master_keys,
            kms_key_id: env
                .get("CHAT_KMS_KEY_ID")
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned),
            kms_cache_secs: env.parse("CHAT_KMS_CACHE_SECS", 300u64)?,
            log_format,
            database_url,
            auto_migrate: env.flag("CHAT_AUTO_MIGRATE", true)?,
            database_behind_transaction_pooler: match env.get("CHAT_DATABASE_POOLER") {
                None | Some("none") => false,
                Some("transaction") => true,
                Some(other) => {
                    return Err(err(
                        "CHAT_DATABASE_POOLER",
                        format!("expected none or transaction, got {other:?}"),
                    ))
                }
            },
            database_migration_url: env.secret("CHAT_DATABASE_MIGRATION_URL"),
            database_max_connections: env.parse("CHAT_DATABASE_MAX_CONNECTIONS", 16usize)?,
            store_timeout_ms: env.parse("CHAT_STORE_TIMEOUT_MS", 5000u64)?,
            link_check: Duration::from_secs(link_check_secs),
            subscription_lapse: Duration::from_secs(lapse_secs),
            event_buffer: env.parse("CHAT_EVENT_BUFFER", 16_384usize)?,
            redis_url: env.secret("CHAT_REDIS_URL"),
            redis_mode,
            message_store,
            object_store_url: env.get("CHAT_OBJECT_STORE_URL").map(str::to_owned),
            object_store_options: env.object_store_options(),
            public_base_url: env.get("CHAT_PUBLIC_BASE_URL").map(str::to_owned),
            pusher_app_id: env.get("CHAT_PUSHER_APP_ID").unwrap_or("chat").to_owned(),
            pusher_app_key: env
                .get("CHAT_PUSHER_APP_KEY")
                .unwrap_or("chat-key")
                .to_owned(),
            pusher_app_secret: env.secret("CHAT_PUSHER_APP_SECRET"),
            allowed_origins: env.get("CHAT_ALLOWED_ORIGINS").map(|list| {
                list.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            }),
            shutdown_grace_secs,
            webhook_url: match env.get("CHAT_WEBHOOK_URL") {
                None => None,
                Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                    Some(url.to_owned())
                }
                Some(_) => {
                    return Err(err(
                        "CHAT_WEBHOOK_URL",
                        "must be an http:// or https:// URL",
                    ))
                }
            },
            unread_escalation_secs: (unread_escalation_secs > 0).then_some(unread_escalation_secs),
            broadcast_event_prefix: env
                .0
                .get("CHAT_BROADCAST_EVENT_PREFIX")
                .cloned()
                .unwrap_or(realtime.event_prefix),
            pusher_activity_timeout_secs,
        })
    }

    /// Refuses what this build cannot run safely or at all.
    pub fn check_can_serve(&self) -> Result<(), ConfigError> {
        if self.jwt_secret_is_builtin && !self.bind.ip().is_loopback() {
            return Err(err(
                "CHAT_JWT_SECRET",
                format!(
                    "binding to {} beyond loopback needs a secret of your own (at least 32 characters); \
                     the built-in development secret is public",
                    self.bind
                ),
            ));
        }
        if self.message_store == MessageStoreKind::Postgres && self.database_url.is_none() {
            return Err(err(
                "CHAT_MESSAGE_STORE",
                "postgres needs CHAT_DATABASE_URL",
            ));
        }
        if self.kms_key_id.is_some() && self.master_keys.is_some() {
            return Err(err(
                "CHAT_KMS_KEY_ID",
                "choose one: thread keys are wrapped either by KMS (CHAT_KMS_KEY_ID) or by a \
                 master key held here (CHAT_MASTER_KEY / CHAT_MASTER_KEYS); moving existing \
                 keys from one to the other is not supported",
            ));
        }
        if self.database_url.is_some() && self.master_keys.is_none() && self.kms_key_id.is_none() {
            return Err(err(
                "CHAT_MASTER_KEY",
                "a persistent store (CHAT_DATABASE_URL) needs a master key, or its thread keys \
                 are unreadable after a restart; set CHAT_MASTER_KEY to the output of \
                 `head -c 32 /dev/urandom | base64` (or a CHAT_MASTER_KEYS ring) and keep it safe, \
                 or keep the master key in AWS KMS (CHAT_KMS_KEY_ID)",
            ));
        }
        if self.database_behind_transaction_pooler
            && self.auto_migrate
            && self.database_migration_url.is_none()
        {
            return Err(err(
                "CHAT_DATABASE_MIGRATION_URL",
                "behind a transaction pooler, migrations need a direct connection to \
                 PostgreSQL (their lock is a session's): set CHAT_DATABASE_MIGRATION_URL, or \
                 CHAT_AUTO_MIGRATE=false and run `chat-server migrate` against the database",
            ));
        }
        if self.message_store == MessageStoreKind::Redis && self.redis_url.is_none() {
            return Err(err("CHAT_MESSAGE_STORE", "redis needs CHAT_REDIS_URL"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_serve_on_loopback_in_memory() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert!(c.jwt_secret_is_builtin && c.enabled && c.redact_messages);
        assert_eq!(
            (c.message_ttl_secs, c.max_messages_per_thread),
            (86_400, 100)
        );
        assert_eq!(c.message_store, MessageStoreKind::Memory);
        assert!(c.check_can_serve().is_ok());
    }

    #[test]
    fn builtin_secret_is_refused_beyond_loopback() {
        let c = Config::from_vars(vars(&[("CHAT_BIND", "0.0.0.0:8080")])).unwrap();
        assert_eq!(c.check_can_serve().unwrap_err().variable, "CHAT_JWT_SECRET");
        let secret = "s".repeat(40);
        let c = Config::from_vars(vars(&[
            ("CHAT_BIND", "0.0.0.0:8080"),
            ("CHAT_JWT_SECRET", &secret),
        ]))
        .unwrap();
        assert!(c.check_can_serve().is_ok());
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let secret = "a-very-secret-value-that-is-long-enough";
        let c = Config::from_vars(vars(&[
            ("CHAT_JWT_SECRET", secret),
            ("CHAT_MASTER_KEY", "bWFzdGVyLWtleS1tYXRlcmlhbA=="),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret-access-key-value"),
        ]))
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains(secret));
        assert!(!shown.contains("bWFzdGVyLWtleS1tYXRlcmlhbA=="));
        assert!(!shown.contains("aws-secret-access-key-value"));
        assert_eq!(c.object_store_options[0].0, "AWS_SECRET_ACCESS_KEY");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("CHAT_ENABLED", "maybe"),
            ("CHAT_BIND", "nowhere"),
            ("CHAT_MESSAGE_TTL_SECS", "-1"),
            ("CHAT_MESSAGE_STORE", "mongo"),
            ("CHAT_JWT_SECRET", "short"),
            ("CHAT_MAX_BODY_BYTES", "0"),
        ] {
            let e = Config::from_vars(vars(&[(var, value)])).unwrap_err();
            assert_eq!(e.variable, var);
        }
        let c = Config::from_vars(vars(&[("CHAT_DATABASE_URL", "postgres://x")])).unwrap();
        assert_eq!(c.message_store, MessageStoreKind::Postgres);
        assert_eq!(c.check_can_serve().unwrap_err().variable, "CHAT_MASTER_KEY");
        let c = Config::from_vars(vars(&[("CHAT_MESSAGE_STORE", "postgres")])).unwrap();
        assert_eq!(
            c.check_can_serve().unwrap_err().variable,
            "CHAT_MESSAGE_STORE"
        );
        let c = Config::from_vars(vars(&[("CHAT_MESSAGE_STORE", "redis")])).unwrap();
        assert_eq!(
            c.check_can_serve().unwrap_err().variable,
            "CHAT_MESSAGE_STORE",
            "no silent fallback to memory"
        );
        let sentinel = Config::from_vars(vars(&[
            ("CHAT_REDIS_MODE", "sentinel"),
            ("CHAT_REDIS_SENTINEL_MASTER", "chat"),
        ]))
        .unwrap();
        assert_eq!(
            sentinel.redis_mode,
            RedisMode::Sentinel {
                master: "chat".into()
            }
        );
        let nameless = Config::from_vars(vars(&[("CHAT_REDIS_MODE", "sentinel")])).unwrap_err();
        assert_eq!(nameless.variable, "CHAT_REDIS_SENTINEL_MASTER");
        let unknown = Config::from_vars(vars(&[("CHAT_REDIS_MODE", "ring")])).unwrap_err();
        assert_eq!(unknown.variable, "CHAT_REDIS_MODE");
        let c = Config::from_vars(vars(&[("CHAT_REDIS_URL", "redis://x")])).unwrap();
        assert_eq!(c.redis_mode, RedisMode::Single);
        assert_eq!(
            c.message_store,
            MessageStoreKind::Memory,
            "Redis alone: bus and locks"
        );
        assert!(c.check_can_serve().is_ok());
    }
}
