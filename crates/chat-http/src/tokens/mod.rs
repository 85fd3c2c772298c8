//! Bearer tokens (SPEC §2): HS256 with `CHAT_JWT_SECRET` by default, RS256/ES256/EdDSA
//! with a public key file, or the identity provider's keys from its JWKS document.
//! Only the configured algorithm (with a JWKS: the one of the key the token's `kid`
//! names) is accepted, so `alg: none` and a token choosing its own algorithm or key
//! are refused; `exp` is required; `nbf` is checked when present; `iss` and `aud`
//! when configured.

mod jwks;

pub use jwks::{JwksKeys, JwksSource, KeyRefused, MIN_REFETCH};

use chat_core::{User, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Arc;

/// The keys tokens are verified with.
pub enum TokenKeys {
    /// One key and its one algorithm: the HS256 secret or a public key file's key.
    Fixed {
        algorithm: Algorithm,
        key: DecodingKey,
    },
    /// The identity provider's keys; `CHAT_JWT_ISSUER` is then required.
    Jwks(Arc<JwksKeys>),
}

/// How tokens are verified.
pub struct AuthConfig {
    pub keys: TokenKeys,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Tolerated clock skew for `exp` and `nbf`.
    pub leeway_secs: u64,
}

/// Why a token was refused. For logs; the client only ever sees `401`.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("the sub claim is not a positive integer")]
    BadSubject,
    #[error("{0}")]
    Key(#[from] KeyRefused),
    #[error("the algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
}

/// The algorithms an identity provider's keys may verify.
const PROVIDER_ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// A public key file's key (PEM) and the one algorithm it verifies: RS256 for RSA,
/// ES256 for an EC (P-256) key, EdDSA for Ed25519.
pub fn public_key_from_pem(pem: &[u8]) -> Result<(Algorithm, DecodingKey), String> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok((Algorithm::RS256, key));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Ok((Algorithm::ES256, key));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok((Algorithm::EdDSA, key));
    }
    Err("is not a PEM public key of RSA, EC (P-256) or Ed25519".into())
}

/// The claims the service reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    #[serde(deserialize_with = "int_or_string", serialize_with = "as_string")]
    pub sub: i64,
    #[serde(default)]
    pub role: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// JWT's `sub` is a string; tokens this service issues follow that.
fn as_string<S: serde::Serializer>(sub: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(sub)
}

/// `sub` is a decimal integer, as a JSON string or number.
fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Str(String),
    }
    match Raw::deserialize(d)? {
        Raw::Int(n) => Ok(n),
        Raw::Str(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// What a valid token grants: its user, until its `exp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub user: User,
    /// `exp`, Unix seconds.
    pub expires_at: u64,
}

pub struct TokenVerifier {
    keys: TokenKeys,
    /// One validation per algorithm accepted (the key's family must match it).
    validations: Vec<(Algorithm, Validation)>,
}

impl TokenVerifier {
    pub fn new(config: AuthConfig) -> Self {
        let algorithms = match &config.keys {
            TokenKeys::Fixed { algorithm, .. } => vec![*algorithm],
            TokenKeys::Jwks(_) => PROVIDER_ALGORITHMS.to_vec(),
        };
        let validations = algorithms
            .into_iter()
            .map(|algorithm| (algorithm, validation(algorithm, &config)))
            .collect();
        Self {
            keys: config.keys,
            validations,
        }
    }

    /// HS256 with a shared secret, the default, with `CHAT_JWT_LEEWAY_SECS` of clock
    /// skew allowed on `exp` and `nbf`.
    pub fn hs256(
        secret: &[u8],
        issuer: Option<String>,
        audience: Option<String>,
        leeway_secs: u64,
    ) -> Self {
        Self::new(AuthConfig {
            keys: TokenKeys::Fixed {
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
            },
            issuer,
            audience,
            leeway_secs,
        })
    }

    /// The user a token names, if it is valid.
    pub async fn verify(&self, token: &str) -> Result<User, AuthError> {
        self.verify_grant(token).await.map(|grant| grant.user)
    }

    /// The user a token names and until when it is valid (its `exp`, Unix seconds;
    /// the leeway is not added).
    pub async fn verify_grant(&self, token: &str) -> Result<Grant, AuthError> {
        let header = jsonwebtoken::decode_header(token)?;
        let algorithm = header.alg;
        let validation = self
            .validations
            .iter()
            .find(|(accepted, _)| *accepted == algorithm)
            .map(|(_, validation)| validation)
            .ok_or(AuthError::Algorithm(algorithm))?;
        let data = match &self.keys {
            TokenKeys::Fixed { key, .. } => jsonwebtoken::decode::<Claims>(token, key, validation)?,
            TokenKeys::Jwks(provider) => {
                let kid = header.kid.ok_or(KeyRefused::NoKeyId)?;
                let key = provider.key(&kid, algorithm).await?;
                jsonwebtoken::decode::<Claims>(token, &key.key, validation)?
            }
        };
        let id = UserId::new(data.claims.sub).ok_or(AuthError::BadSubject)?;
        Ok(Grant {
            user: User::new(id, data.claims.role),
            expires_at: data.claims.exp,
        })
    }

    /// The grant of an `Authorization: Bearer …` header value.
    pub async fn verify_header_grant(&self, header: Option<&str>) -> Result<Grant, AuthError> {
        let token = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        self.verify_grant(token).await
    }

    /// The user of an `Authorization: Bearer …` header value.
    pub async fn verify_header(&self, header: Option<&str>) -> Result<User, AuthError> {
        self.verify_header_grant(header)
            .await
            .map(|grant| grant.user)
    }
}

/// What every token must satisfy, whatever its key: `exp`, and `iss`/`aud` when set.
fn validation(algorithm: Algorithm, config: &AuthConfig) -> Validation {
    let mut validation = Validation::new(algorithm);
    // `sub` is required by `Claims` itself (it may be a number, which the spec-claim
    // check would not see).
    validation.set_required_spec_claims(&["exp"]);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.leeway = config.leeway_secs;
    match &config.issuer {
        Some(iss) => {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".into());
        }
        None => validation.iss = None,
    }
    match &config.audience {
        Some(aud) => {
            validation.set_audience(&[aud]);
            validation.required_spec_claims.insert("aud".into());
        }
        None => validation.validate_aud = false,
    }
    validation
}

/// Signs a token with an HS256 secret: what `chat-server token` prints.
pub fn sign_hs256(secret: &[u8], claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}
