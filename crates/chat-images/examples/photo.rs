//! Writes a photo-like JPEG for the benchmarks: `cargo run --release -p chat-images
//! --example photo -- <width> <height> <out.jpg>` (textured gradients, so that it
//! compresses like a photo, not like a flat colour).

use image::{ImageBuffer, ImageFormat, Rgb};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, width, height, out] = args.as_slice() else {
        return Err("usage: photo <width> <height> <out.jpg>".into());
    };
    let (width, height): (u32, u32) = (width.parse()?, height.parse()?);
    let image = ImageBuffer::from_fn(width, height, |x, y| {
        let n = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) % 64;
        Rgb([
            (x / 9) as u8 ^ n as u8,
            (y / 7) as u8 ^ (n as u8 >> 1),
            ((x + y) / 13) as u8,
        ])
    });
    image.save_with_format(out, ImageFormat::Jpeg)?;
    println!("{} bytes", std::fs::metadata(out)?.len());
    Ok(())
}
