//! The ring implementation of the chat-core encryption contract (SPEC §4).
//!
//! - Each thread has a random 256-bit data key. It is stored only wrapped: sealed with
//!   AES-256-GCM under a master key of the ring, with associated data naming the master
//!   key version and the thread, so a wrapped key copied to another thread fails to open.
//! - Each message is sealed with AES-256-GCM under its thread's key, with a fresh random
//!   96-bit nonce and the associated data of [`MessageAad`]. The format is
//!   `nonce (12) || ciphertext || tag (16)`.
//! - The ring is ordered: its first key wraps new keys; the others only unwrap, until
//!   `rotate-master-key` has rewrapped everything under the first.
#![forbid(unsafe_code)]

use base64::Engine;
use chat_core::crypto::{
    CryptoError, KeyRing, MediaAad, MessageAad, SealedContent, ThreadKey, WrappedKey,
};
use chat_core::ThreadId;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

const KEY_LEN: usize = 32;

/// Why a master key setting was refused. The key material is never part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyError {
    #[error("the key ring is empty")]
    Empty,
    #[error("entry {0}: expected `version:base64`")]
    Malformed(usize),
    #[error("entry {0}: the version must be 1 to 32 letters, digits, '-' or '_'")]
    BadVersion(usize),
    #[error("entry {0}: not base64 of exactly 32 bytes")]
    BadKey(usize),
    #[error("version {0:?} appears twice")]
    Duplicate(String),
}

/// The master keys, first one active.
pub struct MasterKeyRing {
    keys: Vec<(String, LessSafeKey)>,
    rng: SystemRandom,
}

impl std::fmt::Debug for MasterKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let versions: Vec<&str> = self.keys.iter().map(|(v, _)| v.as_str()).collect();
        f.debug_struct("MasterKeyRing")
            .field("versions", &versions)
            .finish_non_exhaustive()
    }
}

impl MasterKeyRing {
    /// From `(version, 32 key bytes)` pairs, first one active.
    pub fn new(entries: Vec<(String, [u8; KEY_LEN])>) -> Result<Self, MasterKeyError> {
        if entries.is_empty() {
            return Err(MasterKeyError::Empty);
        }
        let mut keys: Vec<(String, LessSafeKey)> = Vec::with_capacity(entries.len());
        for (i, (version, bytes)) in entries.into_iter().enumerate() {
            let valid = !version.is_empty()
                && version.len() <= 32
                && version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(MasterKeyError::BadVersion(i + 1));
            }
            if keys.iter().any(|(v, _)| *v == version) {
                return Err(MasterKeyError::Duplicate(version));
            }
            keys.push((version, aes_key(&bytes)?));
        }
        Ok(Self {
            keys,
            rng: SystemRandom::new(),
        })
    }

    /// `CHAT_MASTER_KEYS`: `"v2:<base64>,v1:<base64>"`, first entry active.
    pub fn parse_ring(setting: &str) -> Result<Self, MasterKeyError> {
        let mut entries = Vec::new();
        for (i, entry) in setting
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (version, b64) = entry
                .split_once(':')
                .ok_or(MasterKeyError::Malformed(i + 1))?;
            entries.push((version.trim().to_owned(), decode_key(b64.trim(), i + 1)?));
        }
        Self::new(entries)
    }

    /// `CHAT_MASTER_KEY`: base64 of 32 bytes, known as version `v1`.
    pub fn parse_single(b64: &str) -> Result<Self, MasterKeyError> {
        Self::new(vec![("v1".to_owned(), decode_key(b64.trim(), 1)?)])
    }

    /// A ring of one random key, for a process whose data dies with it.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| CryptoError::Random)?;
        Self::new(vec![("ephemeral".to_owned(), bytes)]).map_err(|_| CryptoError::Random)
    }

    /// The versions in the ring, active first.
    pub fn versions(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(v, _)| v.as_str())
    }

    fn active(&self) -> &(String, LessSafeKey) {
        // `new` refuses an empty ring.
        &self.keys[0]
    }

    fn wrap_with(&self, thread: ThreadId, dek: &[u8; KEY_LEN]) -> Result<WrappedKey, CryptoError> {
        let (version, master) = self.active();
        let sealed = seal(&self.rng, master, &wrap_aad(version, thread), dek)?;
        Ok(WrappedKey::new(version.clone(), sealed))
    }

    fn unwrap_bytes(
        &self,
        thread: ThreadId,
        key: &WrappedKey,
    ) -> Result<[u8; KEY_LEN], CryptoError> {
        let (_, master) = self
            .keys
            .iter()
            .find(|(v, _)| v == key.version())
            .ok_or_else(|| CryptoError::UnknownKeyVersion(key.version().to_owned()))?;
        let plain = open(master, &wrap_aad(key.version(), thread), key.as_bytes())?;
        plain.try_into().map_err(|_| CryptoError::Authentication)
    }
}

/// The ring's work is in memory and synchronous: these are what [`KeyRing`] calls, and
/// what code that holds a `MasterKeyRing` (tests, benches) calls directly.
impl MasterKeyRing {
    pub fn generate_thread_key(&self, thread: ThreadId) -> Result<WrappedKey, CryptoError> {
        let mut dek = [0u8; KEY_LEN];
        self.rng.fill(&mut dek).map_err(|_| CryptoError::Random)?;
        self.wrap_with(thread, &dek)
    }

    pub fn unwrap(
        &self,
        thread: ThreadId,
        key: &WrappedKey,
    ) -> Result<Box<dyn ThreadKey>, CryptoError> {
        let dek = self.unwrap_bytes(thread, key)?;
        Ok(Box::new(RingThreadKey::from_bytes(&dek)?))
    }

    pub fn rewrap(&self, thread: ThreadId, key: &WrappedKey) -> Result<WrappedKey, CryptoError> {
        let dek = self.unwrap_bytes(thread, key)?;
        self.wrap_with(thread, &dek)
    }
}

#[async_trait::async_trait]
impl KeyRing for MasterKeyRing {
    async fn generate_thread_key(&self, thread: ThreadId) -> Result<WrappedKey, CryptoError> {
        MasterKeyRing::generate_thread_key(self, thread)
    }

    async fn unwrap(
        &self,
        thread: ThreadId,
        key: &WrappedKey,
    ) -> Result<Box<dyn ThreadKey>, CryptoError> {
        MasterKeyRing::unwrap(self, thread, key)
    }

    async fn rewrap(&self, thread: ThreadId, key: &WrappedKey) -> Result<WrappedKey, CryptoError> {
        MasterKeyRing::rewrap(self, thread, key)
    }

    fn active_version(&self) -> &str {
        &self.active().0
    }
}

/// An unwrapped thread data key.
pub struct RingThreadKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl RingThreadKey {
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Result<Self, CryptoError> {
        let key = aes_key(bytes).map_err(|_| CryptoError::Authentication)?;
        Ok(Self {
            key,
            rng: SystemRandom::new(),
        })
    }
}

impl ThreadKey for RingThreadKey {
    fn seal(&self, aad: &MessageAad, plaintext: &[u8]) -> Result<SealedContent, CryptoError> {
        seal(&self.rng, &self.key, &aad.to_bytes(), plaintext).map(SealedContent::from_bytes)
    }

    fn open(&self, aad: &MessageAad, sealed: &SealedContent) -> Result<Vec<u8>, CryptoError> {
        open(&self.key, &aad.to_bytes(), sealed.as_bytes())
    }

    fn seal_media(
        &self,
        aad: &MediaAad<'_>,
        plaintext: &[u8],
    ) -> Result<SealedContent, CryptoError> {
        seal(&self.rng, &self.key, &aad.to_bytes(), plaintext).map(SealedContent::from_bytes)
    }

    fn open_media(
        &self,
        aad: &MediaAad<'_>,
        sealed: &SealedContent,
    ) -> Result<Vec<u8>, CryptoError> {
        open(&self.key, &aad.to_bytes(), sealed.as_bytes())
    }
}

fn aes_key(bytes: &[u8]) -> Result<LessSafeKey, MasterKeyError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| MasterKeyError::BadKey(0))
}

fn decode_key(b64: &str, entry: usize) -> Result<[u8; KEY_LEN], MasterKeyError> {
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()
        .and_then(|v| <[u8; KEY_LEN]>::try_from(v).ok())
        .ok_or(MasterKeyError::BadKey(entry))
}

/// `"chat-key:v1" || len(version) || version || thread (i64 BE)`.
fn wrap_aad(version: &str, thread: ThreadId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(11 + 1 + version.len() + 8);
    aad.extend_from_slice(b"chat-key:v1");
    aad.push(version.len() as u8);
    aad.extend_from_slice(version.as_bytes());
    aad.extend_from_slice(&thread.get().to_be_bytes());
    aad
}

/// `nonce || ciphertext || tag`, with a fresh random nonce.
fn seal(
    rng: &SystemRandom,
    key: &LessSafeKey,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| CryptoError::Random)?;
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[NONCE_LEN..],
        )
        .map_err(|_| CryptoError::Authentication)?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

fn open(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(CryptoError::Authentication);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Authentication)?;
    let mut buf = body.to_vec();
    let plain_len = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| CryptoError::Authentication)?
        .len();
    buf.truncate(plain_len);
    Ok(buf)
}
