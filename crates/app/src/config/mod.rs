//! Configuration, read once from the environment at start and passed down, one
//! section per concern. Every variable is documented beside its field; durations are
//! `Duration`s; secrets are `SecretString`, so `Debug` never shows them. Nothing reads
//! the environment after this.

mod auth;
mod chat;
mod env;
mod http;
mod keys;
mod media;
mod realtime;
mod record;
mod stores;

pub use auth::{AuthConfig, TokenVerification, DEV_JWT_SECRET};
pub use chat::ChatConfig;
pub use env::ConfigError;
pub use http::HttpConfig;
pub use keys::{KeyConfig, MasterKeySetting};
pub use media::MediaConfig;
pub use realtime::RealtimeConfig;
pub use record::RecordConfig;
pub use stores::{MessageStoreKind, StoreConfig};

use chat_core::ChatSettings;
use chat_http::pusher::PusherSettings;
use env::{err, Env};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `CHAT_BIND`: listen address. Default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// `CHAT_LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `CHAT_SHUTDOWN_GRACE_SECS`: on `SIGTERM`, how long the instance drains before
    /// it exits (SPEC §8). Default 10 s, 1..=3600.
    pub shutdown_grace: Duration,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub chat: ChatConfig,
    pub media: MediaConfig,
    pub stores: StoreConfig,
    pub keys: KeyConfig,
    pub realtime: RealtimeConfig,
    pub record: RecordConfig,
}

impl Config {
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
        Ok(Self {
            bind: env.parse("CHAT_BIND", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            log_format: env.choice(
                "CHAT_LOG_FORMAT",
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
                LogFormat::Text,
            )?,
            shutdown_grace: env.seconds(
                "CHAT_SHUTDOWN_GRACE_SECS",
                Duration::from_secs(10),
                1..=3600,
            )?,
            http: HttpConfig::from_env(&env)?,
            auth: AuthConfig::from_env(&env, realtime.grant_leeway)?,
            chat: ChatConfig::from_env(&env, &chat)?,
            media: MediaConfig::from_env(&env, &chat)?,
            stores: StoreConfig::from_env(&env)?,
            keys: KeyConfig::from_env(&env)?,
            realtime: RealtimeConfig::from_env(&env, realtime)?,
            record: RecordConfig::from_env(&env)?,
        })
    }

    /// The value of one of the `AWS_*` variables given to the service.
    pub fn aws_var(&self, name: &str) -> Option<&SecretString> {
        self.media
            .object_store_options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Refuses what this build cannot run safely or at all.
    pub fn check_can_serve(&self) -> Result<(), ConfigError> {
        let stores = &self.stores;
        let keys = &self.keys;
        if self.auth.jwt_secret_is_builtin && !self.bind.ip().is_loopback() {
            return Err(err(
                "CHAT_JWT_SECRET",
                format!(
                    "binding to {} beyond loopback needs a secret of your own (at least 32 characters); \
                     the built-in development secret is public",
                    self.bind
                ),
            ));
        }
        if stores.message_store == MessageStoreKind::Postgres && stores.database_url.is_none() {
            return Err(err(
                "CHAT_MESSAGE_STORE",
                "postgres needs CHAT_DATABASE_URL",
            ));
        }
        if keys.kms_key_id.is_some() && keys.master_keys.is_some() {
            return Err(err(
                "CHAT_KMS_KEY_ID",
                "choose one: thread keys are wrapped either by KMS (CHAT_KMS_KEY_ID) or by a \
                 master key held here (CHAT_MASTER_KEY / CHAT_MASTER_KEYS); moving existing \
                 keys from one to the other is not supported",
            ));
        }
        if stores.database_url.is_some() && keys.master_keys.is_none() && keys.kms_key_id.is_none()
        {
            return Err(err(
                "CHAT_MASTER_KEY",
                "a persistent store (CHAT_DATABASE_URL) needs a master key, or its thread keys \
                 are unreadable after a restart; set CHAT_MASTER_KEY to the output of \
                 `head -c 32 /dev/urandom | base64` (or a CHAT_MASTER_KEYS ring) and keep it safe, \
                 or keep the master key in AWS KMS (CHAT_KMS_KEY_ID)",
            ));
        }
        if stores.database_behind_transaction_pooler
            && stores.auto_migrate
            && stores.database_migration_url.is_none()
        {
            return Err(err(
                "CHAT_DATABASE_MIGRATION_URL",
                "behind a transaction pooler, migrations need a direct connection to \
                 PostgreSQL (their lock is a session's): set CHAT_DATABASE_MIGRATION_URL, or \
                 CHAT_AUTO_MIGRATE=false and run `chat-server migrate` against the database",
            ));
        }
        if stores.message_store == MessageStoreKind::Redis && stores.redis_url.is_none() {
            return Err(err("CHAT_MESSAGE_STORE", "redis needs CHAT_REDIS_URL"));
        }
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use chat_redis::RedisMode;

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
        assert!(c.auth.jwt_secret_is_builtin && c.chat.enabled && c.chat.redact_messages);
        assert_eq!(
            c.chat.retention,
            chat_core::Retention::from_settings(86_400, 100)
        );
        assert_eq!(c.stores.message_store, MessageStoreKind::Memory);
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
        assert_eq!(c.media.object_store_options[0].0, "AWS_SECRET_ACCESS_KEY");
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
        assert_eq!(c.stores.message_store, MessageStoreKind::Postgres);
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
            sentinel.stores.redis_mode,
            RedisMode::Sentinel {
                master: "chat".into()
            }
        );
        let nameless = Config::from_vars(vars(&[("CHAT_REDIS_MODE", "sentinel")])).unwrap_err();
        assert_eq!(nameless.variable, "CHAT_REDIS_SENTINEL_MASTER");
        let unknown = Config::from_vars(vars(&[("CHAT_REDIS_MODE", "ring")])).unwrap_err();
        assert_eq!(unknown.variable, "CHAT_REDIS_MODE");
        let c = Config::from_vars(vars(&[("CHAT_REDIS_URL", "redis://x")])).unwrap();
        assert_eq!(c.stores.redis_mode, RedisMode::Single);
        assert_eq!(
            c.stores.message_store,
            MessageStoreKind::Memory,
            "Redis alone: bus and locks"
        );
        assert!(c.check_can_serve().is_ok());
    }
}
