//! What wraps the thread keys: a master key held here, or AWS KMS (SPEC §4).

use super::env::{ConfigError, Env};
use secrecy::SecretString;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct KeyConfig {
    /// `CHAT_MASTER_KEYS` (`v2:<b64>,v1:<b64>`, first entry active) or `CHAT_MASTER_KEY`
    /// (base64 of 32 bytes, version `v1`). Unset: a random key per process.
    pub master_keys: Option<MasterKeySetting>,
    /// `CHAT_KMS_KEY_ID`: the AWS KMS key (id, ARN or alias) that makes and unwraps
    /// thread keys instead of a master key held here (SPEC §4).
    pub kms_key_id: Option<String>,
    /// `CHAT_KMS_CACHE_SECS`: how long a key KMS unwrapped stays in memory at most.
    /// Default 300 s, at most a day.
    pub kms_cache: Duration,
}

#[derive(Debug, Clone)]
pub enum MasterKeySetting {
    Ring(SecretString),
    Single(SecretString),
}

impl KeyConfig {
    pub(crate) fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let master_keys = match (
            env.secret("CHAT_MASTER_KEYS"),
            env.secret("CHAT_MASTER_KEY"),
        ) {
            (Some(ring), _) => Some(MasterKeySetting::Ring(ring)),
            (None, Some(single)) => Some(MasterKeySetting::Single(single)),
            (None, None) => None,
        };
        Ok(Self {
            master_keys,
            kms_key_id: env.get("CHAT_KMS_KEY_ID").map(str::to_owned),
            kms_cache: env.seconds("CHAT_KMS_CACHE_SECS", Duration::from_secs(300), 0..=86_400)?,
        })
    }
}
