//! The encryption contract (SPEC §4).
//!
//! Stores only ever see [`SealedContent`] and [`WrappedKey`]; plaintext has its own
//! types ([`crate::MessageContent`]) that no port accepts, so it cannot reach a store by
//! mistake. The implementation (AES-256-GCM with ring) lives in `chat-crypto`.

use crate::ids::{MessageId, ThreadId};
use crate::kind::MessageKind;

/// `nonce (12 bytes) || ciphertext || tag (16 bytes)` of one message.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedContent(Vec<u8>);

impl SealedContent {
    pub const NONCE_LEN: usize = 12;

    /// Wraps bytes read back from a store. No check beyond the minimum length: opening
    /// is what authenticates them.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    pub fn nonce(&self) -> Option<&[u8]> {
        self.0.get(..Self::NONCE_LEN)
    }
}

impl std::fmt::Debug for SealedContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedContent({} bytes)", self.0.len())
    }
}

/// A thread's data key, wrapped (AES-256-GCM) by the master key named `version`.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    version: String,
    bytes: Vec<u8>,
}

impl WrappedKey {
    pub fn new(version: impl Into<String>, bytes: Vec<u8>) -> Self {
        Self {
            version: version.into(),
            bytes,
        }
    }

    /// The master key version that wraps this key.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WrappedKey(version {}, {} bytes)",
            self.version,
            self.bytes.len()
        )
    }
}

/// What a message's ciphertext is bound to: moved to another thread, message id or
/// kind, it no longer opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageAad {
    pub thread: ThreadId,
    pub message: MessageId,
    pub kind: MessageKind,
}

impl MessageAad {
    /// `"chat-msg:v1" || thread (i64 BE) || message (i64 BE) || kind tag`.
    pub fn to_bytes(&self) -> [u8; 28] {
        let mut out = [0u8; 28];
        out[..11].copy_from_slice(b"chat-msg:v1");
        out[11..19].copy_from_slice(&self.thread.get().to_be_bytes());
        out[19..27].copy_from_slice(&self.message.get().to_be_bytes());
        out[27] = self.kind.tag();
        out
    }
}

/// What a sealed media object (an image, its thumbnail) is bound to: its thread and
/// its object key. Copied to another key or thread, it no longer opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaAad<'a> {
    pub thread: ThreadId,
    /// The object's key in the store (`chats/{thread}/…`).
    pub key: &'a str,
}

impl MediaAad<'_> {
    /// `"chat-media:v1" || thread (i64 BE) || key (UTF-8)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(13 + 8 + self.key.len());
        out.extend_from_slice(b"chat-media:v1");
        out.extend_from_slice(&self.thread.get().to_be_bytes());
        out.extend_from_slice(self.key.as_bytes());
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The ciphertext or wrapped key does not authenticate: tampered, moved, or sealed
    /// under another key.
    #[error("ciphertext does not authenticate")]
    Authentication,
    /// The wrapped key names a master key version the ring does not hold.
    #[error("unknown master key version {0:?}")]
    UnknownKeyVersion(String),
    /// The system random generator failed.
    #[error("random generator failed")]
    Random,
    /// The key service that holds the master key (KMS) did not answer, or refused for
    /// a reason of its own (throttled, the key disabled): the request is `503`.
    #[error("key service: {0}")]
    KeyServiceUnavailable(String),
}

/// The master key ring: makes, unwraps and rewraps thread data keys. Async, since a
/// ring may be a key service over the network (KMS); a ring in memory answers at once.
#[async_trait::async_trait]
pub trait KeyRing: Send + Sync {
    /// A fresh random 256-bit data key for `thread`, wrapped under the active master key.
    async fn generate_thread_key(&self, thread: ThreadId) -> Result<WrappedKey, CryptoError>;

    /// Unwraps a thread's data key. Fails with `UnknownKeyVersion` when the ring lacks
    /// the master key, and `Authentication` when the key was wrapped for another thread.
    async fn unwrap(
        &self,
        thread: ThreadId,
        key: &WrappedKey,
    ) -> Result<Box<dyn ThreadKey>, CryptoError>;

    /// The same data key, wrapped under the active master key.
    async fn rewrap(&self, thread: ThreadId, key: &WrappedKey) -> Result<WrappedKey, CryptoError>;

    /// The version that wraps new keys.
    fn active_version(&self) -> &str;

    /// Whether `rotate-master-key` rewraps every key, not only those under another
    /// version: a key service rotates its key material behind one key id, so only
    /// re-encrypting them all moves them to the current material.
    fn rotation_rewraps_all(&self) -> bool {
        false
    }

    /// The thread's key is destroyed (purge): a ring that caches unwrapped keys drops
    /// its copy now.
    fn forget(&self, _thread: ThreadId) {}

    /// How long a key this ring unwrapped may stay in memory at most, if the ring bounds
    /// it (`CHAT_KMS_CACHE_SECS`): the service's own cache keeps keys no longer.
    fn cache_bound(&self) -> Option<std::time::Duration> {
        None
    }
}

/// An unwrapped thread data key. Lives in memory only for the request that needs it.
pub trait ThreadKey: Send + Sync {
    /// Seals with a fresh random 96-bit nonce.
    fn seal(&self, aad: &MessageAad, plaintext: &[u8]) -> Result<SealedContent, CryptoError>;

    fn open(&self, aad: &MessageAad, sealed: &SealedContent) -> Result<Vec<u8>, CryptoError>;

    /// Seals a media object (same format: `nonce || ciphertext || tag`).
    fn seal_media(
        &self,
        aad: &MediaAad<'_>,
        plaintext: &[u8],
    ) -> Result<SealedContent, CryptoError>;

    fn open_media(
        &self,
        aad: &MediaAad<'_>,
        sealed: &SealedContent,
    ) -> Result<Vec<u8>, CryptoError>;
}
