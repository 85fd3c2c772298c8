//! Recognising an image from its first bytes, never from a declared header, and
//! removing what an image carries besides its pixels.

/// Enough leading bytes for every signature below.
pub const SNIFF_LEN: usize = 16;

/// The MIME type of the image whose content starts with `head`, if it is one of the
/// formats the service knows (JPEG, PNG, WebP, GIF).
pub fn sniff_image(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        Some("image/webp")
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some("image/gif")
    } else {
        None
    }
}

/// The image types the service can recognise, with the file extension it gives them.
pub const IMAGE_TYPES: [(&str, &str); 4] = [
    ("image/jpeg", "jpg"),
    ("image/png", "png"),
    ("image/webp", "webp"),
    ("image/gif", "gif"),
];

/// The extension of a recognised image type.
pub fn extension_for(mime: &str) -> Option<&'static str> {
    IMAGE_TYPES
        .iter()
        .find(|(m, _)| *m == mime)
        .map(|(_, e)| *e)
}

/// The type of an image's thumbnail: JPEG for a JPEG, PNG (lossless, alpha kept) for
/// a PNG or a WebP; `None` for types the service does not decode.
pub fn thumbnail_type(mime: &str) -> Option<&'static str> {
    match mime {
        "image/jpeg" => Some("image/jpeg"),
        "image/png" | "image/webp" => Some("image/png"),
        _ => None,
    }
}

/// The image type a key's extension declares.
pub fn mime_for_key(key: &str) -> Option<&'static str> {
    let ext = key.rsplit_once('.')?.1;
    IMAGE_TYPES.iter().find(|(_, e)| *e == ext).map(|(m, _)| *m)
}

/// The image without its metadata (SPEC §3.6): EXIF (GPS position, camera serial, time,
/// the embedded thumbnail), XMP, IPTC and comments, for JPEG, PNG and WebP. The pixels
/// are not decoded or re-encoded: only the containers' metadata segments go, so the
/// image decodes to exactly the same pixels. Colour information that decoding needs
/// stays (JPEG's JFIF, ICC and Adobe segments; PNG's gamma, chromaticity, sRGB, ICC and
/// transparency chunks; WebP's ICC and alpha). `None` when the bytes are not a
/// well-formed image of `mime`, or of a type whose metadata this cannot remove (GIF).
pub fn without_metadata(mime: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    use img_parts::{jpeg, png, webp, Bytes, ImageEXIF};
    let bytes = Bytes::copy_from_slice(bytes);
    let cleaned = match mime {
        "image/jpeg" => {
            let mut image = jpeg::Jpeg::from_bytes(bytes).ok()?;
            image.segments_mut().retain(|segment| {
                let marker = segment.marker();
                let kept_app = match marker {
                    jpeg::markers::APP0 | jpeg::markers::APP14 => true,
                    jpeg::markers::APP2 => segment.contents().starts_with(b"ICC_PROFILE\0"),
                    _ => false,
                };
                let is_app = (jpeg::markers::APP0..=jpeg::markers::APP15).contains(&marker);
                (!is_app || kept_app) && marker != jpeg::markers::COM
            });
            image.encoder().bytes()
        }
        "image/png" => {
            let mut image = png::Png::from_bytes(bytes).ok()?;
            image.chunks_mut().retain(|chunk| {
                !matches!(
                    &chunk.kind(),
                    b"eXIf" | b"tEXt" | b"zTXt" | b"iTXt" | b"tIME"
                )
            });
            image.encoder().bytes()
        }
        "image/webp" => {
            let mut image = webp::WebP::from_bytes(bytes).ok()?;
            image.remove_chunks_by_id(*b"XMP ");
            // Also brings the VP8X header's flags in line with the chunks left.
            image.set_exif(None);
            image.encoder().bytes()
        }
        _ => return None,
    };
    Some(cleaned.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_signatures_and_refuses_html() {
        assert_eq!(
            sniff_image(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some("image/png")
        );
        assert_eq!(sniff_image(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff_image(b"RIFF\x10\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff_image(b"<html><body>"), None);
        assert_eq!(sniff_image(b"RIFF\x10\0\0\0WAVE"), None);
        assert_eq!(sniff_image(b""), None);
    }
}
