//! The keys of the host's identity provider, from its JWKS document (SPEC §2).
//!
//! A token's `kid` picks the key; the key's type (and its `alg`, when it states one)
//! must match the token's header. The cache belongs to one JWKS URL, so a `kid` is
//! only ever looked up among the keys of the issuer this instance trusts. A fresh
//! cache answers without a fetch; an unknown `kid` or an expired cache refetches the
//! document, one fetch at a time and at most once per [`MIN_REFETCH`], so a flood of
//! forged `kid`s costs the provider nothing; a fetch that fails keeps the keys already
//! cached, so a provider that is down does not log anyone out.

use futures::future::BoxFuture;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The least time between two fetches of the document.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);

/// Where the JWKS document comes from: the app fetches it over HTTP; a test may hand
/// it over directly. The answer is the document's body.
pub trait JwksSource: Send + Sync {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<u8>, String>>;
}

/// A verification key of the provider and the one algorithm it verifies.
pub(super) struct ProviderKey {
    pub(super) key: DecodingKey,
    pub(super) algorithm: Algorithm,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, Arc<ProviderKey>>,
    /// When the keys were fetched; `None` before the first successful fetch.
    fetched_at: Option<Instant>,
    /// When a fetch was last tried, successful or not.
    tried_at: Option<Instant>,
}

/// Why no key verifies a token. For logs; the client only ever sees `401`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyRefused {
    #[error("the token names no key (kid)")]
    NoKeyId,
    #[error("no key {0:?} in the identity provider's JWKS")]
    UnknownKey(String),
    #[error("key {kid:?} verifies {key:?}, not the token's {token:?}")]
    WrongAlgorithm {
        kid: String,
        key: Algorithm,
        token: Algorithm,
    },
}

/// The provider's keys behind one JWKS URL, cached.
pub struct JwksKeys {
    url: String,
    source: Arc<dyn JwksSource>,
    ttl: Duration,
    cache: Mutex<Cache>,
    /// Held while fetching: one fetch at a time, the others wait for its keys.
    fetching: tokio::sync::Mutex<()>,
}

impl JwksKeys {
    /// Keys of the document at `url` (named in logs), kept `ttl` after each fetch.
    pub fn new(url: impl Into<String>, source: Arc<dyn JwksSource>, ttl: Duration) -> Self {
        Self {
            url: url.into(),
            source,
            ttl,
            cache: Mutex::default(),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The key `kid` names, if it verifies `algorithm`.
    pub(super) async fn key(
        &self,
        kid: &str,
        algorithm: Algorithm,
    ) -> Result<Arc<ProviderKey>, KeyRefused> {
        let key = match self.cached(kid, true) {
            Some(key) => key,
            None => {
                let _single_flight = self.fetching.lock().await;
                // Another request may have fetched while this one waited.
                if self.cached(kid, true).is_none() && self.may_fetch() {
                    self.refresh().await;
                }
                // Fresh, or else what the last good fetch had: a provider that is
                // down does not refuse keys it published.
                self.cached(kid, false)
                    .ok_or_else(|| KeyRefused::UnknownKey(kid.to_owned()))?
            }
        };
        if key.algorithm != algorithm {
            return Err(KeyRefused::WrongAlgorithm {
                kid: kid.to_owned(),
                key: key.algorithm,
                token: algorithm,
            });
        }
        Ok(key)
    }

    /// Fetches the document now (at start, so the first request does not wait),
    /// unless a request just did.
    pub async fn prefetch(&self) {
        let _single_flight = self.fetching.lock().await;
        if self.may_fetch() {
            self.refresh().await;
        }
    }

    fn cached(&self, kid: &str, fresh_only: bool) -> Option<Arc<ProviderKey>> {
        let cache = self.cache.lock();
        let fresh = cache.fetched_at.is_some_and(|at| at.elapsed() < self.ttl);
        if fresh_only && !fresh {
            return None;
        }
        cache.keys.get(kid).cloned()
    }

    fn may_fetch(&self) -> bool {
        self.cache
            .lock()
            .tried_at
            .is_none_or(|at| at.elapsed() >= MIN_REFETCH)
    }

    async fn refresh(&self) {
        self.cache.lock().tried_at = Some(Instant::now());
        metrics::counter!(crate::metric_names::names::JWKS_FETCHES).increment(1);
        let fetched = self.source.fetch().await.and_then(|body| parse(&body));
        match fetched {
            Ok(keys) => {
                tracing::debug!(url = %self.url, keys = keys.len(), "fetched the identity provider's keys");
                let mut cache = self.cache.lock();
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
            }
            Err(reason) => {
                metrics::counter!(crate::metric_names::names::JWKS_FETCH_FAILURES).increment(1);
                tracing::warn!(url = %self.url, %reason, "could not fetch the identity provider's keys; the cached ones still verify");
            }
        }
    }
}

/// The signing keys of a JWKS document, by `kid`. Keys this service cannot use (for
/// encryption, of another type or algorithm, without a `kid`, malformed) are skipped,
/// so one odd key does not cost the others.
fn parse(body: &[u8]) -> Result<HashMap<String, Arc<ProviderKey>>, String> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = HashMap::new();
    for raw in document.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
            continue;
        };
        let (Some(kid), Some(algorithm)) = (jwk.common.key_id.clone(), signing_algorithm(&jwk))
        else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.insert(kid, Arc::new(ProviderKey { key, algorithm }));
        }
    }
    Ok(keys)
}

/// The one algorithm a JWK verifies here: RS256 for RSA, ES256 for P-256, EdDSA for
/// Ed25519; `None` for any other key, or one whose own `alg` says otherwise.
fn signing_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let (algorithm, named) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            (Algorithm::EdDSA, KeyAlgorithm::EdDSA)
        }
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(algorithm),
        Some(stated) if stated == named => Some(algorithm),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signing_keys_of_the_three_algorithms_are_kept() {
        let body = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed-enc", "use": "enc", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed-as-rs", "alg": "RS256", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "XYZ", "kid": "odd"},
        ]});
        let keys = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ed"]);
        assert_eq!(keys["ed"].algorithm, Algorithm::EdDSA);
        assert!(parse(b"[1, 2]").is_err());
    }
}
