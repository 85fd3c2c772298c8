//! The thumbnail of a 12-megapixel photo (4000 × 3000 JPEG, a phone camera's), and of
//! a 2-megapixel PNG: decode, downscale, encode. Goal (issue 30): under 20 ms for the
//! photo on the benchmark machine.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on what it does not expect"
)]

use chat_images::{thumbnail, ImageLimits};
use criterion::{criterion_group, criterion_main, Criterion};
use image::{ImageBuffer, ImageFormat, Rgb};
use std::io::Cursor;

fn photo(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    // Smooth gradients with some texture, so the encoder's output is photo-sized.
    let image = ImageBuffer::from_fn(width, height, |x, y| {
        let n = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) % 32;
        Rgb([
            (x / 16) as u8 ^ n as u8,
            (y / 12) as u8,
            ((x + y) / 28) as u8,
        ])
    });
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn thumbnails(c: &mut Criterion) {
    let limits = ImageLimits::default();
    let jpeg = photo(4000, 3000, ImageFormat::Jpeg);
    eprintln!("12 MP JPEG: {} bytes", jpeg.len());
    c.bench_function("thumbnail of a 12 MP JPEG", |b| {
        b.iter(|| thumbnail("image/jpeg", &jpeg, limits).unwrap())
    });
    let png = photo(1600, 1200, ImageFormat::Png);
    eprintln!("2 MP PNG: {} bytes", png.len());
    c.bench_function("thumbnail of a 2 MP PNG", |b| {
        b.iter(|| thumbnail("image/png", &png, limits).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = thumbnails
}
criterion_main!(benches);
