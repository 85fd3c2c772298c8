//! Who may call: bearer tokens (SPEC §2).

use super::env::{err, ConfigError, Env};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// The JWT secret used when `CHAT_JWT_SECRET` is unset: fine on a laptop, refused on
/// any non-loopback bind.
pub const DEV_JWT_SECRET: &str = "chat-server-development-secret-not-for-production";

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `CHAT_JWT_SECRET`: HS256 secret of bearer tokens (unless a public key or a JWKS
    /// verifies them), and the key that signs media URLs and derives the Pusher
    /// secret. Default: a built-in development secret, accepted only on a loopback bind.
    pub jwt_secret: SecretString,
    pub jwt_secret_is_builtin: bool,
    /// `CHAT_JWT_PUBLIC_KEY_FILE` or `CHAT_JWT_JWKS_URL`, else the secret.
    pub token_verification: TokenVerification,
    /// `CHAT_JWT_ISSUER`: required `iss` claim, when set (always with a JWKS).
    pub issuer: Option<String>,
    /// `CHAT_JWT_AUDIENCE`: required `aud` claim, when set.
    pub audience: Option<String>,
    /// `CHAT_JWT_LEEWAY_SECS`: clock skew allowed on `exp` and `nbf`, and how long past
    /// its token's `exp` a real-time subscription lasts. Default 30 s, at most 3600.
    pub leeway: Duration,
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

impl AuthConfig {
    pub(crate) fn from_env(env: &Env, default_leeway: Duration) -> Result<Self, ConfigError> {
        let (jwt_secret, jwt_secret_is_builtin) = match env.secret("CHAT_JWT_SECRET") {
            Some(s) if s.expose_secret().len() < 32 => {
                return Err(err("CHAT_JWT_SECRET", "must be at least 32 characters"))
            }
            Some(s) => (s, false),
            None => (SecretString::from(DEV_JWT_SECRET), true),
        };
        Ok(Self {
            jwt_secret,
            jwt_secret_is_builtin,
            token_verification: token_verification(env)?,
            issuer: env.get("CHAT_JWT_ISSUER").map(str::to_owned),
            audience: env.get("CHAT_JWT_AUDIENCE").map(str::to_owned),
            leeway: env.seconds("CHAT_JWT_LEEWAY_SECS", default_leeway, 0..=3600)?,
        })
    }
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
            Ok(TokenVerification::Jwks {
                url: url.to_owned(),
                cache: env.seconds(
                    "CHAT_JWT_JWKS_CACHE_SECS",
                    Duration::from_secs(300),
                    1..=86_400,
                )?,
            })
        }
        (None, None) => Ok(TokenVerification::Secret),
    }
}
