//! Sealing and opening a 256-byte message with an unwrapped thread key, and a 2 MB
//! image (what sealing adds to an image post, issue 30).
//! `cargo bench -p chat-crypto --bench seal`

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on what it does not expect"
)]

use chat_core::crypto::{MediaAad, MessageAad};
use chat_core::{MessageId, MessageKind, ThreadId};
use chat_crypto::MasterKeyRing;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn seal_open(c: &mut Criterion) {
    let thread = ThreadId::new(1).unwrap();
    let ring = MasterKeyRing::new(vec![("v1".into(), [7; 32])]).unwrap();
    let key = ring
        .unwrap(thread, &ring.generate_thread_key(thread).unwrap())
        .unwrap();
    let aad = MessageAad {
        thread,
        message: MessageId::new(42).unwrap(),
        kind: MessageKind::Text,
    };
    let plain = [0x61u8; 256];
    let sealed = key.seal(&aad, &plain).unwrap();

    let mut group = c.benchmark_group("message_256B");
    group.throughput(Throughput::Elements(1));
    group.bench_function("seal", |b| {
        b.iter(|| key.seal(black_box(&aad), black_box(&plain)).unwrap())
    });
    group.bench_function("open", |b| {
        b.iter(|| key.open(black_box(&aad), black_box(&sealed)).unwrap())
    });
    group.bench_function("unwrap_thread_key", |b| {
        let wrapped = ring.generate_thread_key(thread).unwrap();
        b.iter(|| ring.unwrap(black_box(thread), black_box(&wrapped)).unwrap())
    });
    group.finish();

    let image = vec![0x5au8; 2 << 20];
    let at = MediaAad {
        thread,
        key: "chats/1/0123456789abcdef0123456789abcdef.jpg",
    };
    let sealed_image = key.seal_media(&at, &image).unwrap();
    let mut group = c.benchmark_group("image_2MiB");
    group.throughput(Throughput::Bytes(image.len() as u64));
    group.sample_size(20);
    group.bench_function("seal", |b| {
        b.iter(|| key.seal_media(black_box(&at), black_box(&image)).unwrap())
    });
    group.bench_function("open", |b| {
        b.iter(|| {
            key.open_media(black_box(&at), black_box(&sealed_image))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, seal_open);
criterion_main!(benches);
