//! Image decoding for chat-core's [`ImageProcessor`] port (SPEC §3.6), on the `image`
//! crate: JPEG, PNG and WebP are decoded (to check that they are images, and to make
//! their thumbnails); nothing else is. A JPEG is decoded at the smallest of 1/8, 1/4,
//! 1/2 or full scale that still covers the thumbnail (`jpeg-decoder`, which scales in
//! the inverse DCT: every coefficient is still read and checked, but a photo's
//! thumbnail costs a fraction of its full decode). Decoding is bounded before it starts: the
//! header's width and height are read first, an image of more pixels than allowed is
//! refused without decoding it, and the decoder's allocations are capped to what that
//! many pixels need. It runs on tokio's blocking threads, off the async workers.
#![forbid(unsafe_code)]

use async_trait::async_trait;
use chat_core::ports::{ImageProcessor, ImageRejected};
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use std::io::Cursor;
use std::sync::Arc;

/// The limits of `CHAT_MAX_IMAGE_PIXELS` and `CHAT_THUMB_MAX_PX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Width × height above which an image is refused undecoded.
    pub max_pixels: u64,
    /// The thumbnail's longer side, at most.
    pub thumbnail_px: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_pixels: 40_000_000,
            thumbnail_px: 320,
        }
    }
}

/// The image decoder the service uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageDecoder {
    limits: ImageLimits,
}

impl ImageDecoder {
    pub fn new(limits: ImageLimits) -> Self {
        Self { limits }
    }
}

#[async_trait]
impl ImageProcessor for ImageDecoder {
    async fn thumbnail(
        &self,
        mime: &'static str,
        image: Arc<[u8]>,
    ) -> Result<Vec<u8>, ImageRejected> {
        let limits = self.limits;
        tokio::task::spawn_blocking(move || thumbnail(mime, &image, limits))
            .await
            .unwrap_or(Err(ImageRejected::Undecodable))
    }
}

/// Bytes a decoder may allocate per pixel at most (16-bit RGBA), and besides.
const BYTES_PER_PIXEL: u64 = 8;
const ALLOC_SLACK: u64 = 16 << 20;

/// The thumbnail of `bytes`, an image of `mime`: at most `limits.thumbnail_px` on its
/// longer side (never enlarged), as JPEG for a JPEG and PNG for a PNG or WebP.
pub fn thumbnail(mime: &str, bytes: &[u8], limits: ImageLimits) -> Result<Vec<u8>, ImageRejected> {
    let format = match mime {
        "image/jpeg" => ImageFormat::Jpeg,
        "image/png" => ImageFormat::Png,
        "image/webp" => ImageFormat::WebP,
        _ => return Err(ImageRejected::Undecodable),
    };
    if format == ImageFormat::Jpeg {
        return jpeg_thumbnail(bytes, limits);
    }
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|_| ImageRejected::Undecodable)?;
    let pixels = bounded(width, height, limits)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut bounds = Limits::default();
    bounds.max_image_width = Some(width);
    bounds.max_image_height = Some(height);
    bounds.max_alloc = Some(pixels * BYTES_PER_PIXEL + ALLOC_SLACK);
    reader.limits(bounds);
    let image = reader.decode().map_err(|_| ImageRejected::Undecodable)?;
    let side = limits.thumbnail_px.max(1);
    let small = if width > side || height > side {
        image.thumbnail(side, side)
    } else {
        image
    };
    encode(&small, format)
}

/// `width × height`, unless more than the limit allows.
fn bounded(width: u32, height: u32, limits: ImageLimits) -> Result<u64, ImageRejected> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(ImageRejected::TooManyPixels {
            pixels,
            limit: limits.max_pixels,
        });
    }
    Ok(pixels)
}

/// A JPEG's thumbnail, decoded at the smallest scale that covers it.
fn jpeg_thumbnail(bytes: &[u8], limits: ImageLimits) -> Result<Vec<u8>, ImageRejected> {
    use jpeg_decoder::{Decoder, PixelFormat};
    let undecodable = |_| ImageRejected::Undecodable;
    let mut decoder = Decoder::new(Cursor::new(bytes));
    decoder.read_info().map_err(undecodable)?;
    let info = decoder.info().ok_or(ImageRejected::Undecodable)?;
    let pixels = bounded(u32::from(info.width), u32::from(info.height), limits)?;
    let side = limits.thumbnail_px.clamp(1, u32::from(u16::MAX)) as u16;
    let (width, height) = decoder.scale(side, side).map_err(undecodable)?;
    decoder.set_max_decoding_buffer_size(
        usize::try_from(pixels * BYTES_PER_PIXEL + ALLOC_SLACK).unwrap_or(usize::MAX),
    );
    let raw = decoder.decode().map_err(undecodable)?;
    let (w, h) = (u32::from(width), u32::from(height));
    let image = match info.pixel_format {
        PixelFormat::RGB24 => image::RgbImage::from_raw(w, h, raw).map(DynamicImage::ImageRgb8),
        PixelFormat::L8 => image::GrayImage::from_raw(w, h, raw).map(DynamicImage::ImageLuma8),
        PixelFormat::L16 => {
            let wide = raw
                .chunks_exact(2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .collect();
            image::ImageBuffer::from_raw(w, h, wide).map(DynamicImage::ImageLuma16)
        }
        PixelFormat::CMYK32 => {
            let rgb = raw
                .chunks_exact(4)
                .flat_map(|p| {
                    let k = 255 - u16::from(p[3]);
                    [p[0], p[1], p[2]].map(|c| ((255 - u16::from(c)) * k / 255) as u8)
                })
                .collect();
            image::RgbImage::from_raw(w, h, rgb).map(DynamicImage::ImageRgb8)
        }
    }
    .ok_or(ImageRejected::Undecodable)?;
    let side = u32::from(side);
    let small = if w > side || h > side {
        image.thumbnail(side, side)
    } else {
        image
    };
    encode(&small, ImageFormat::Jpeg)
}

fn encode(image: &DynamicImage, source: ImageFormat) -> Result<Vec<u8>, ImageRejected> {
    let mut out = Cursor::new(Vec::new());
    match source {
        ImageFormat::Jpeg => {
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
            DynamicImage::ImageRgb8(image.to_rgb8())
                .write_with_encoder(encoder)
                .map_err(|_| ImageRejected::Undecodable)?;
        }
        _ => {
            DynamicImage::ImageRgba8(image.to_rgba8())
                .write_to(&mut out, ImageFormat::Png)
                .map_err(|_| ImageRejected::Undecodable)?;
        }
    }
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb, Rgba};

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = ImageBuffer::from_fn(width, height, |x, y| Rgba([x as u8, y as u8, 7, 255]));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = ImageBuffer::from_fn(width, height, |x, y| Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    /// PNG's chunk checksum (CRC-32, polynomial 0xEDB88320).
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn dimensions(bytes: &[u8]) -> (u32, u32) {
        image::load_from_memory(bytes)
            .unwrap()
            .to_rgba8()
            .dimensions()
    }

    #[test]
    fn thumbnails_fit_the_longer_side_and_keep_the_type() {
        let limits = ImageLimits {
            max_pixels: 10_000_000,
            thumbnail_px: 64,
        };
        let thumb = thumbnail("image/png", &png(400, 200), limits).unwrap();
        assert!(thumb.starts_with(b"\x89PNG"));
        assert_eq!(dimensions(&thumb), (64, 32));
        let thumb = thumbnail("image/jpeg", &jpeg(100, 300), limits).unwrap();
        assert!(thumb.starts_with(&[0xFF, 0xD8, 0xFF]));
        let (w, h) = dimensions(&thumb);
        assert_eq!(h, 64);
        assert!((20..=22).contains(&w), "{w}");
        // Smaller than the thumbnail: not enlarged.
        assert_eq!(
            dimensions(&thumbnail("image/png", &png(10, 5), limits).unwrap()),
            (10, 5)
        );
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_it_is_decoded() {
        // A PNG whose header claims 60,000 × 60,000 pixels, with almost no data (the
        // header's checksum made right, as a crafted file has it).
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        let crc = crc32(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        let refused = thumbnail("image/png", &bomb, ImageLimits::default());
        assert_eq!(
            refused,
            Err(ImageRejected::TooManyPixels {
                pixels: 3_600_000_000,
                limit: 40_000_000
            })
        );
    }

    #[test]
    fn what_does_not_decode_is_refused() {
        let mut truncated = jpeg(64, 64);
        truncated.truncate(truncated.len() / 3);
        for (mime, bytes) in [
            ("image/jpeg", truncated),
            ("image/png", b"\x89PNG\r\n\x1a\nnot a png".to_vec()),
            ("image/webp", b"RIFF\0\0\0\0WEBPVP8 junk".to_vec()),
            ("image/gif", b"GIF89a".to_vec()),
        ] {
            assert_eq!(
                thumbnail(mime, &bytes, ImageLimits::default()),
                Err(ImageRejected::Undecodable),
                "{mime}"
            );
        }
    }
}
