//! The KMS key ring against a real KMS-compatible server (moto, started by
//! chat-testkit): round trip, a key moved to another thread, the cache and its expiry,
//! an unreachable KMS and the recovery, rotation to a new key, and a disabled key.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on what it does not expect"
)]

use chat_core::crypto::{CryptoError, KeyRing, MessageAad};
use chat_core::{MessageId, MessageKind, ThreadId};
use chat_kms::{KmsKeyRing, KmsSettings};
use chat_testkit::{TestKms, TEST_AWS_REGION};
use std::time::Duration;

async fn ring(kms: &TestKms, key_id: &str, cache: Duration) -> KmsKeyRing {
    KmsKeyRing::connect(KmsSettings {
        key_id: key_id.to_owned(),
        cache_ttl: cache,
        timeout: Duration::from_secs(1),
        region: Some(TEST_AWS_REGION.into()),
        endpoint: Some(kms.url()),
        credentials: Some(("test".into(), "test".into(), None)),
    })
    .await
}

fn tid(n: i64) -> ThreadId {
    ThreadId::new(n).unwrap()
}

fn aad(thread: ThreadId) -> MessageAad {
    MessageAad {
        thread,
        message: MessageId::new(1).unwrap(),
        kind: MessageKind::Text,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_key_made_by_kms_opens_only_for_its_thread() {
    let kms = TestKms::start().unwrap();
    let key_id = kms.create_key().unwrap();
    let maker = ring(&kms, &key_id, Duration::from_secs(300)).await;
    maker.check().await.unwrap();
    let wrapped = maker.generate_thread_key(tid(1)).await.unwrap();
    assert_eq!(wrapped.version(), format!("kms:{key_id}"));
    let sealed = maker
        .unwrap(tid(1), &wrapped)
        .await
        .unwrap()
        .seal(&aad(tid(1)), b"canary")
        .unwrap();

    // Another instance (nothing cached) opens it through KMS's Decrypt.
    let other = ring(&kms, &key_id, Duration::from_secs(300)).await;
    let key = other.unwrap(tid(1), &wrapped).await.unwrap();
    assert_eq!(key.open(&aad(tid(1)), &sealed).unwrap(), b"canary");
    // The same wrapped key presented as another thread's: the encryption context differs.
    let moved = other.unwrap(tid(2), &wrapped).await.err();
    assert!(
        matches!(moved, Some(CryptoError::Authentication)),
        "{moved:?}"
    );
    // A version this ring did not make is a configuration error, not a crash.
    let foreign = chat_core::crypto::WrappedKey::new("v1", wrapped.as_bytes().to_vec());
    let refused = other.unwrap(tid(1), &foreign).await.err();
    assert!(matches!(refused, Some(CryptoError::UnknownKeyVersion(v)) if v == "v1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwrapped_keys_are_cached_for_the_ttl_dropped_on_purge_and_kms_recovers() {
    let kms = TestKms::start().unwrap();
    let key_id = kms.create_key().unwrap();
    let maker = ring(&kms, &key_id, Duration::ZERO).await;
    let (a, b) = (
        maker.generate_thread_key(tid(1)).await.unwrap(),
        maker.generate_thread_key(tid(2)).await.unwrap(),
    );
    let cached = ring(&kms, &key_id, Duration::from_secs(2)).await;
    cached.unwrap(tid(1), &a).await.unwrap();
    cached.unwrap(tid(2), &b).await.unwrap();

    kms.pause().unwrap();
    // Within the TTL: no KMS needed.
    cached.unwrap(tid(1), &a).await.unwrap();
    // Purged: dropped at once, and KMS is needed again.
    cached.forget(tid(2));
    let gone = cached.unwrap(tid(2), &b).await.err();
    assert!(
        matches!(gone, Some(CryptoError::KeyServiceUnavailable(_))),
        "{gone:?}"
    );
    assert!(cached.check().await.is_err(), "readiness fails");
    // Past the TTL: dropped too.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = cached.unwrap(tid(1), &a).await.err();
    assert!(
        matches!(expired, Some(CryptoError::KeyServiceUnavailable(_))),
        "{expired:?}"
    );

    // Back: the same ring recovers, no restart.
    kms.resume().unwrap();
    cached.check().await.unwrap();
    cached.unwrap(tid(1), &a).await.unwrap();
    cached.unwrap(tid(2), &b).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_moves_keys_to_a_new_kms_key_and_the_old_one_can_then_be_disabled() {
    let kms = TestKms::start().unwrap();
    let (old_key, new_key) = (kms.create_key().unwrap(), kms.create_key().unwrap());
    let before = ring(&kms, &old_key, Duration::ZERO).await;
    let wrapped = before.generate_thread_key(tid(7)).await.unwrap();
    let sealed = before
        .unwrap(tid(7), &wrapped)
        .await
        .unwrap()
        .seal(&aad(tid(7)), b"kept")
        .unwrap();

    let after = ring(&kms, &new_key, Duration::ZERO).await;
    assert!(after.rotation_rewraps_all());
    // Before the rewrap, the new ring still reads what the old key wrapped.
    let during = after.unwrap(tid(7), &wrapped).await.unwrap();
    assert_eq!(during.open(&aad(tid(7)), &sealed).unwrap(), b"kept");
    let rewrapped = after.rewrap(tid(7), &wrapped).await.unwrap();
    assert_eq!(rewrapped.version(), format!("kms:{new_key}"));
    assert_ne!(rewrapped.as_bytes(), wrapped.as_bytes());
    // Rewrapping checks the thread too.
    assert!(after.rewrap(tid(8), &wrapped).await.is_err());

    kms.disable_key(&old_key).unwrap();
    let key = after.unwrap(tid(7), &rewrapped).await.unwrap();
    assert_eq!(key.open(&aad(tid(7)), &sealed).unwrap(), b"kept");
    // Real KMS then refuses to decrypt what the disabled key wrapped (DisabledException,
    // a 503 here): crypto-shredding. moto 5.2 still decrypts it, so that is not asserted
    // here; what moto does report is the key's state, which readiness reads.
    assert!(before.check().await.is_err(), "a disabled key is not ready");
}
