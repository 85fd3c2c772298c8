//! Bearer tokens (SPEC §2): HS256 with `CHAT_JWT_SECRET` by default, or RS256/EdDSA with
//! a public key. Only the configured algorithm is accepted, so `alg: none` and a token
//! choosing its own algorithm are refused; `exp` is required; `nbf` is checked when
//! present; `iss` and `aud` when configured.

use chat_core::{User, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Deserializer, Serialize};

/// How tokens are verified.
pub struct AuthConfig {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
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
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    pub fn new(config: AuthConfig) -> Self {
        let mut validation = Validation::new(config.algorithm);
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
        Self {
            key: config.key,
            validation,
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
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
            issuer,
            audience,
            leeway_secs,
        })
    }

    /// The user a token names, if it is valid.
    pub fn verify(&self, token: &str) -> Result<User, AuthError> {
        self.verify_grant(token).map(|grant| grant.user)
    }

    /// The user a token names and until when it is valid (its `exp`, Unix seconds;
    /// the leeway is not added).
    pub fn verify_grant(&self, token: &str) -> Result<Grant, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)?;
        let id = UserId::new(data.claims.sub).ok_or(AuthError::BadSubject)?;
        Ok(Grant {
            user: User::new(id, data.claims.role),
            expires_at: data.claims.exp,
        })
    }

    /// The grant of an `Authorization: Bearer …` header value.
    pub fn verify_header_grant(&self, header: Option<&str>) -> Result<Grant, AuthError> {
        let token = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        self.verify_grant(token)
    }

    /// The user of an `Authorization: Bearer …` header value.
    pub fn verify_header(&self, header: Option<&str>) -> Result<User, AuthError> {
        self.verify_header_grant(header).map(|grant| grant.user)
    }
}

/// Signs a token with an HS256 secret: what `chat-server token` prints.
pub fn sign_hs256(secret: &[u8], claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}
