//! The key ring in AWS KMS (SPEC §4): thread keys are made by `GenerateDataKey` and
//! unwrapped by `Decrypt`, with the thread id in the encryption context, so the master
//! key never enters this process, and a wrapped key moved to another thread does not
//! open. Unwrapped keys are cached in memory for at most the configured time, and
//! dropped at once when their thread is purged, so a post does not wait for KMS and
//! KMS sees a bounded request rate. Rotation re-encrypts every wrapped key
//! (`ReEncrypt`) under the configured key id: its current key material, or a new key.
//!
//! The client is the AWS SDK's, with the standard configuration (`AWS_REGION`,
//! credentials from the environment, profile, web identity or instance role) and the
//! overrides the service's configuration gives (an endpoint, static credentials).
#![forbid(unsafe_code)]

use async_trait::async_trait;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use chat_core::crypto::{
    CryptoError, KeyRing, MediaAad, MessageAad, SealedContent, ThreadKey, WrappedKey,
};
use chat_core::ThreadId;
use chat_crypto::RingThreadKey;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The encryption context's key: its value is the thread id.
const CONTEXT_KEY: &str = "chat_thread_id";
/// Wrapped keys made here carry `kms:<key id>` as their version.
const VERSION_PREFIX: &str = "kms:";

/// How to reach KMS and how long to keep what it unwrapped.
#[derive(Clone)]
pub struct KmsSettings {
    /// `CHAT_KMS_KEY_ID`: a key id, key ARN, alias name or alias ARN.
    pub key_id: String,
    /// `CHAT_KMS_CACHE_SECS`: how long an unwrapped key stays in memory at most.
    pub cache_ttl: Duration,
    /// The deadline of one KMS request, retries included.
    pub timeout: Duration,
    /// `AWS_REGION` / `AWS_DEFAULT_REGION`, when given to the service.
    pub region: Option<String>,
    /// `AWS_ENDPOINT_URL_KMS` or `AWS_ENDPOINT_URL` (a KMS-compatible server).
    pub endpoint: Option<String>,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, when given;
    /// else the SDK's default chain (profile, web identity, instance role).
    pub credentials: Option<(String, String, Option<String>)>,
}

impl std::fmt::Debug for KmsSettings {
    // Credentials are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsSettings")
            .field("key_id", &self.key_id)
            .field("cache_ttl", &self.cache_ttl)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// The KMS key ring. Cheap to share (`Arc`).
pub struct KmsKeyRing {
    client: aws_sdk_kms::Client,
    key_id: String,
    version: String,
    cache_ttl: Duration,
    /// Per thread: the wrapped key it came from, the unwrapped key, and until when.
    cache: Mutex<HashMap<ThreadId, Cached>>,
}

struct Cached {
    wrapped: Vec<u8>,
    key: Arc<RingThreadKey>,
    until: Instant,
}

/// Threads whose keys are cached at most; past it, expired entries go first, then all.
const CAPACITY: usize = 100_000;

impl KmsKeyRing {
    /// Builds the client; does not call KMS (see [`check`](Self::check)).
    pub async fn connect(settings: KmsSettings) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build();
        let mut loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts);
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some((id, secret, token)) = &settings.credentials {
            loader = loader.credentials_provider(aws_sdk_kms::config::Credentials::new(
                id,
                secret,
                token.clone(),
                None,
                "chat-server configuration",
            ));
        }
        let client = aws_sdk_kms::Client::new(&loader.load().await);
        Self {
            client,
            version: format!("{VERSION_PREFIX}{}", settings.key_id),
            key_id: settings.key_id,
            cache_ttl: settings.cache_ttl,
            cache: Mutex::default(),
        }
    }

    /// Whether KMS answers for the key and the key is enabled: for `/readyz`.
    pub async fn check(&self) -> Result<(), CryptoError> {
        let described = self
            .client
            .describe_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|e| failed("DescribeKey", e))?;
        counted("DescribeKey");
        match described.key_metadata().map(|m| m.enabled()) {
            Some(true) => Ok(()),
            _ => Err(CryptoError::KeyServiceUnavailable(format!(
                "KMS key {} is disabled or pending deletion",
                self.key_id
            ))),
        }
    }

    fn cached(&self, thread: ThreadId, wrapped: &[u8]) -> Option<Arc<RingThreadKey>> {
        let mut cache = self.cache.lock();
        match cache.get(&thread) {
            Some(c) if c.wrapped == wrapped && c.until > Instant::now() => Some(c.key.clone()),
            Some(_) => {
                cache.remove(&thread);
                None
            }
            None => None,
        }
    }

    fn remember(&self, thread: ThreadId, wrapped: &[u8], key: Arc<RingThreadKey>) {
        if self.cache_ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut cache = self.cache.lock();
        if cache.len() >= CAPACITY {
            cache.retain(|_, c| c.until > now);
            if cache.len() >= CAPACITY {
                cache.clear();
            }
        }
        cache.insert(
            thread,
            Cached {
                wrapped: wrapped.to_vec(),
                key,
                until: now + self.cache_ttl,
            },
        );
    }

    /// KMS's key id in a version this ring made, or `UnknownKeyVersion`.
    fn kms_key_of(version: &str) -> Result<&str, CryptoError> {
        version
            .strip_prefix(VERSION_PREFIX)
            .ok_or_else(|| CryptoError::UnknownKeyVersion(version.to_owned()))
    }
}

/// The wrapped key KMS returned.
fn ciphertext(blob: Option<&Blob>) -> Result<Vec<u8>, CryptoError> {
    blob.map(|b| b.as_ref().to_vec())
        .ok_or_else(|| CryptoError::KeyServiceUnavailable("KMS returned no ciphertext".into()))
}

/// A data key KMS returned, as the AES-256-GCM key it is.
fn data_key(plaintext: Option<&Blob>) -> Result<Arc<RingThreadKey>, CryptoError> {
    let bytes: [u8; 32] = plaintext
        .map(Blob::as_ref)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            CryptoError::KeyServiceUnavailable("KMS returned no 256-bit data key".into())
        })?;
    Ok(Arc::new(RingThreadKey::from_bytes(&bytes)?))
}

/// A KMS error as the port names it: a ciphertext that does not decrypt (moved to
/// another thread, or made under another key) is `Authentication`; anything else (not
/// reachable, throttled, the key disabled or gone) makes the request `503`. Logged with
/// KMS's code and message, which carry no key material.
fn failed<E: ProvideErrorMetadata + std::fmt::Debug>(
    operation: &'static str,
    error: SdkError<E>,
) -> CryptoError {
    counted(operation);
    let code = error.code().unwrap_or_default().to_owned();
    if matches!(
        code.as_str(),
        "InvalidCiphertextException" | "IncorrectKeyException"
    ) {
        return CryptoError::Authentication;
    }
    let detail = match &error {
        SdkError::ServiceError(_) => format!("{code}: {}", error.message().unwrap_or_default()),
        SdkError::TimeoutError(_) => "no answer in time".to_owned(),
        SdkError::DispatchFailure(_) => "not reachable".to_owned(),
        _ => format!("{error}"),
    };
    tracing::warn!(operation, %detail, "KMS request failed");
    CryptoError::KeyServiceUnavailable(format!("KMS {operation}: {detail}"))
}

/// Counts a KMS request (`chat_kms_requests_total{operation}`).
fn counted(operation: &'static str) {
    metrics::counter!("chat_kms_requests_total", "operation" => operation).increment(1);
}

#[async_trait]
impl KeyRing for KmsKeyRing {
    async fn generate_thread_key(&self, thread: ThreadId) -> Result<WrappedKey, CryptoError> {
        let made = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT_KEY, thread.to_string())
            .send()
            .await
            .map_err(|e| failed("GenerateDataKey", e))?;
        counted("GenerateDataKey");
        let wrapped = ciphertext(made.ciphertext_blob())?;
        // The service unwraps it next: no need to ask KMS for what it just said.
        self.remember(thread, &wrapped, data_key(made.plaintext())?);
        Ok(WrappedKey::new(self.version.clone(), wrapped))
    }

    async fn unwrap(
        &self,
        thread: ThreadId,
        key: &WrappedKey,
    ) -> Result<Box<dyn ThreadKey>, CryptoError> {
        let kms_key = Self::kms_key_of(key.version())?;
        if let Some(cached) = self.cached(thread, key.as_bytes()) {
            return Ok(Box::new(Shared(cached)));
        }
        let opened = self
            .client
            .decrypt()
            .key_id(kms_key)
            .ciphertext_blob(Blob::new(key.as_bytes()))
            .encryption_context(CONTEXT_KEY, thread.to_string())
            .send()
            .await
            .map_err(|e| failed("Decrypt", e))?;
        counted("Decrypt");
        let data = data_key(opened.plaintext())?;
        self.remember(thread, key.as_bytes(), data.clone());
        Ok(Box::new(Shared(data)))
    }

    async fn rewrap(&self, thread: ThreadId, key: &WrappedKey) -> Result<WrappedKey, CryptoError> {
        let source = Self::kms_key_of(key.version())?;
        let context = thread.to_string();
        let moved = self
            .client
            .re_encrypt()
            .source_key_id(source)
            .ciphertext_blob(Blob::new(key.as_bytes()))
            .source_encryption_context(CONTEXT_KEY, &context)
            .destination_key_id(&self.key_id)
            .destination_encryption_context(CONTEXT_KEY, &context)
            .send()
            .await
            .map_err(|e| failed("ReEncrypt", e))?;
        counted("ReEncrypt");
        let wrapped = ciphertext(moved.ciphertext_blob())?;
        Ok(WrappedKey::new(self.version.clone(), wrapped))
    }

    fn active_version(&self) -> &str {
        &self.version
    }

    fn rotation_rewraps_all(&self) -> bool {
        true
    }

    fn forget(&self, thread: ThreadId) {
        self.cache.lock().remove(&thread);
    }

    fn cache_bound(&self) -> Option<Duration> {
        Some(self.cache_ttl)
    }
}

/// A cached data key, handed out for one use.
struct Shared(Arc<RingThreadKey>);

impl ThreadKey for Shared {
    fn seal(&self, aad: &MessageAad, plaintext: &[u8]) -> Result<SealedContent, CryptoError> {
        self.0.seal(aad, plaintext)
    }

    fn open(&self, aad: &MessageAad, sealed: &SealedContent) -> Result<Vec<u8>, CryptoError> {
        self.0.open(aad, sealed)
    }

    fn seal_media(
        &self,
        aad: &MediaAad<'_>,
        plaintext: &[u8],
    ) -> Result<SealedContent, CryptoError> {
        self.0.seal_media(aad, plaintext)
    }

    fn open_media(
        &self,
        aad: &MediaAad<'_>,
        sealed: &SealedContent,
    ) -> Result<Vec<u8>, CryptoError> {
        self.0.open_media(aad, sealed)
    }
}
