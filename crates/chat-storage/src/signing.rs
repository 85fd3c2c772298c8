//! HMAC-signed, expiring URLs for the backends that cannot presign (`file://`,
//! `memory://`), served by the service itself under `/media/…`.
//!
//! A URL is `{base}/media/{key}?expires={unix seconds}&sig={hex}` where `sig` is
//! HMAC-SHA256 over `method \n key \n expires \n content type` (empty for GET): it binds
//! the method (a download URL cannot upload), the key, the expiry and, for uploads, the
//! `Content-Type` the client must send.

use ring::hmac;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone)]
pub struct UrlSigner {
    key: hmac::Key,
    base: String,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner")
            .field("base", &self.base)
            .finish()
    }
}

/// Why a signed request is refused. Deliberately coarse: the caller learns nothing
/// about which part was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadSignature {
    #[error("the signature is missing, wrong or for another request")]
    Invalid,
    #[error("the URL has expired")]
    Expired,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn message(method: &str, key: &str, expires: u64, content_type: &str) -> String {
    format!("{method}\n{key}\n{expires}\n{content_type}")
}

impl UrlSigner {
    /// `secret` is the service's signing secret; `base` the public URL of the service
    /// (`CHAT_PUBLIC_BASE_URL`), without a trailing slash.
    pub fn new(secret: &[u8], base: &str) -> Self {
        // A key of its own, derived from the secret, so that a media signature can never
        // stand in for anything else signed with the same secret.
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, secret),
            b"chat-server media URL signing v1",
        );
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    pub fn sign(&self, method: &str, key: &str, ttl: Duration, content_type: &str) -> String {
        let expires = now_secs().saturating_add(ttl.as_secs());
        let tag = hmac::sign(
            &self.key,
            message(method, key, expires, content_type).as_bytes(),
        );
        format!(
            "{}/media/{key}?expires={expires}&sig={}",
            self.base,
            hex::encode(tag)
        )
    }

    /// Checks a request (constant-time comparison of the tag).
    pub fn verify(
        &self,
        method: &str,
        key: &str,
        expires: u64,
        sig: &str,
        content_type: &str,
    ) -> Result<(), BadSignature> {
        let tag = hex::decode(sig).map_err(|_| BadSignature::Invalid)?;
        hmac::verify(
            &self.key,
            message(method, key, expires, content_type).as_bytes(),
            &tag,
        )
        .map_err(|_| BadSignature::Invalid)?;
        if expires < now_secs() {
            return Err(BadSignature::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, u64, String) {
        let (path, query) = url.split_once('?').unwrap();
        let key = path.split_once("/media/").unwrap().1.to_owned();
        let mut expires = 0;
        let mut sig = String::new();
        for pair in query.split('&') {
            match pair.split_once('=').unwrap() {
                ("expires", v) => expires = v.parse().unwrap(),
                ("sig", v) => sig = v.to_owned(),
                _ => {}
            }
        }
        (key, expires, sig)
    }

    #[test]
    fn a_url_verifies_only_for_its_method_key_type_and_time() {
        let signer = UrlSigner::new(b"secret-secret-secret-secret-1234", "http://x/");
        let url = signer.sign("PUT", "chats/1/a.png", Duration::from_secs(60), "image/png");
        assert!(url.starts_with("http://x/media/chats/1/a.png?"));
        let (key, expires, sig) = parts(&url);
        assert_eq!(
            signer.verify("PUT", &key, expires, &sig, "image/png"),
            Ok(())
        );
        let invalid = Err(BadSignature::Invalid);
        assert_eq!(
            signer.verify("GET", &key, expires, &sig, "image/png"),
            invalid
        );
        assert_eq!(
            signer.verify("PUT", "chats/1/b.png", expires, &sig, "image/png"),
            invalid
        );
        assert_eq!(
            signer.verify("PUT", &key, expires, &sig, "image/jpeg"),
            invalid
        );
        assert_eq!(
            signer.verify("PUT", &key, expires + 1, &sig, "image/png"),
            invalid
        );
        assert_eq!(
            signer.verify("PUT", &key, expires, "zz", "image/png"),
            invalid
        );
        let mut flipped = sig.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            signer.verify("PUT", &key, expires, &flipped, "image/png"),
            invalid
        );
        let other = UrlSigner::new(b"another-secret-another-secret-12", "http://x");
        assert_eq!(
            other.verify("PUT", &key, expires, &sig, "image/png"),
            invalid
        );

        let old = signer.sign("GET", "chats/1/a.png", Duration::ZERO, "");
        let (key, expires, sig) = parts(&old);
        // Signed for a time already past (a second ago at most): valid signature, expired.
        let past = expires - 1;
        let tag = hmac::sign(&signer.key, message("GET", &key, past, "").as_bytes());
        assert_eq!(
            signer.verify("GET", &key, past, &hex::encode(tag), ""),
            Err(BadSignature::Expired)
        );
        assert_eq!(signer.verify("GET", &key, expires, &sig, ""), Ok(()));
    }
}
