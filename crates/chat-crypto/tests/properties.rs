//! Properties of the encryption contract, on the ring implementation.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on what it does not expect"
)]

use chat_core::crypto::{CryptoError, KeyRing, MessageAad, SealedContent};
use chat_core::{MessageId, MessageKind, ThreadId};
use chat_crypto::MasterKeyRing;
use proptest::prelude::*;
use std::collections::HashSet;

fn ring(version: &str, byte: u8) -> MasterKeyRing {
    MasterKeyRing::new(vec![(version.to_owned(), [byte; 32])]).unwrap()
}

fn tid(n: i64) -> ThreadId {
    ThreadId::new(n).unwrap()
}

fn aad(thread: i64, message: i64) -> MessageAad {
    MessageAad {
        thread: tid(thread),
        message: MessageId::new(message).unwrap(),
        kind: MessageKind::Text,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip(plain in proptest::collection::vec(any::<u8>(), 0..2048), t in 1i64..1_000_000, m in 1i64..1_000_000) {
        let ring = ring("v1", 7);
        let key = ring.unwrap(tid(t), &ring.generate_thread_key(tid(t)).unwrap()).unwrap();
        let sealed = key.seal(&aad(t, m), &plain).unwrap();
        prop_assert_eq!(key.open(&aad(t, m), &sealed).unwrap(), plain);
    }

    #[test]
    fn any_flipped_bit_fails(plain in proptest::collection::vec(any::<u8>(), 1..512), bit in any::<prop::sample::Index>()) {
        let ring = ring("v1", 7);
        let key = ring.unwrap(tid(1), &ring.generate_thread_key(tid(1)).unwrap()).unwrap();
        let mut bytes = key.seal(&aad(1, 1), &plain).unwrap().into_bytes();
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(key.open(&aad(1, 1), &SealedContent::from_bytes(bytes)), Err(CryptoError::Authentication));
    }

    #[test]
    fn moved_ciphertext_fails(plain in proptest::collection::vec(any::<u8>(), 0..256), other in 2i64..1000) {
        let ring = ring("v1", 7);
        let key = ring.unwrap(tid(1), &ring.generate_thread_key(tid(1)).unwrap()).unwrap();
        let sealed = key.seal(&aad(1, 1), &plain).unwrap();
        // Another message of the same thread, the same id in another thread, another kind.
        prop_assert!(key.open(&aad(1, other), &sealed).is_err());
        prop_assert!(key.open(&aad(other, 1), &sealed).is_err());
        let as_image = MessageAad { kind: MessageKind::Image, ..aad(1, 1) };
        prop_assert!(key.open(&as_image, &sealed).is_err());
    }
}

#[test]
fn a_wrapped_key_under_an_unknown_version_fails() {
    let old = ring("v1", 1);
    let wrapped = old.generate_thread_key(tid(1)).unwrap();
    let new = ring("v2", 2);
    assert_eq!(
        new.unwrap(tid(1), &wrapped).err(),
        Some(CryptoError::UnknownKeyVersion("v1".into()))
    );
}

#[test]
fn a_wrapped_key_moved_to_another_thread_fails() {
    let ring = ring("v1", 1);
    let wrapped = ring.generate_thread_key(tid(1)).unwrap();
    assert_eq!(
        ring.unwrap(tid(2), &wrapped).err(),
        Some(CryptoError::Authentication)
    );
}

#[test]
fn rewrap_under_the_new_key_keeps_messages_readable_without_the_old_one() {
    let old = ring("v1", 1);
    let wrapped = old.generate_thread_key(tid(9)).unwrap();
    let sealed = old
        .unwrap(tid(9), &wrapped)
        .unwrap()
        .seal(&aad(9, 3), b"hello")
        .unwrap();

    let both = MasterKeyRing::new(vec![("v2".into(), [2; 32]), ("v1".into(), [1; 32])]).unwrap();
    let rewrapped = both.rewrap(tid(9), &wrapped).unwrap();
    assert_eq!(rewrapped.version(), "v2");

    let only_new = ring("v2", 2);
    let key = only_new.unwrap(tid(9), &rewrapped).unwrap();
    assert_eq!(key.open(&aad(9, 3), &sealed).unwrap(), b"hello");
}

#[test]
fn no_nonce_repeats_in_100_000_seals() {
    let ring = ring("v1", 3);
    let key = ring
        .unwrap(tid(1), &ring.generate_thread_key(tid(1)).unwrap())
        .unwrap();
    let mut seen = HashSet::with_capacity(100_000);
    for _ in 0..100_000 {
        let sealed = key.seal(&aad(1, 1), b"same plaintext").unwrap();
        let nonce: [u8; 12] = sealed.nonce().unwrap().try_into().unwrap();
        assert!(seen.insert(nonce), "a nonce repeated");
    }
}

#[test]
fn each_thread_gets_its_own_key() {
    let ring = ring("v1", 3);
    let a = ring
        .unwrap(tid(1), &ring.generate_thread_key(tid(1)).unwrap())
        .unwrap();
    let b = ring
        .unwrap(tid(1), &ring.generate_thread_key(tid(1)).unwrap())
        .unwrap();
    let sealed = a.seal(&aad(1, 1), b"x").unwrap();
    assert!(b.open(&aad(1, 1), &sealed).is_err());
}

#[test]
fn key_ring_settings_are_parsed_and_checked() {
    let k1 = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let k2 = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    let ring = MasterKeyRing::parse_ring(&format!("v2:{k2}, v1:{k1}")).unwrap();
    assert_eq!(ring.versions().collect::<Vec<_>>(), ["v2", "v1"]);
    assert_eq!(ring.active_version(), "v2");
    assert!(MasterKeyRing::parse_ring("").is_err());
    assert!(MasterKeyRing::parse_ring("v1").is_err());
    assert!(MasterKeyRing::parse_ring("v1:c2hvcnQ=").is_err());
    assert!(MasterKeyRing::parse_ring(&format!("v1:{k1},v1:{k2}")).is_err());
    assert!(MasterKeyRing::parse_single(k1).is_ok());
    assert!(MasterKeyRing::parse_single("not base64!").is_err());
    // The error never carries key material.
    let err = MasterKeyRing::parse_ring(&format!("bad version:{k1}"))
        .unwrap_err()
        .to_string();
    assert!(!err.contains(k1));
}
