//! What the media tests share: the two backends, the scenario macro, and the upload,
//! download and test-image helpers.

use crate::helpers::*;
use chat_testkit::TestS3;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A small real JPEG (8×8, a gradient), made with the `image` crate.
pub(super) fn jpeg() -> Vec<u8> {
    let pixels =
        image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    pixels.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
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

/// A PNG whose header claims 60,000 × 60,000 pixels (3.6 gigapixels) over almost no
/// data, its header's checksum right: a decompression bomb.
pub(super) fn png_bomb() -> Vec<u8> {
    let mut bomb = PNG.to_vec();
    bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    let crc = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    bomb
}

/// A grayscale PNG, one row high, whose pixels are `row`'s bytes, stored without
/// compression (so the bytes appear in the file as they are), with a `tEXt` chunk
/// holding `comment`.
pub(super) fn png_with_pixel_row(row: &[u8], comment: &str) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut ihdr = (row.len() as u32).to_be_bytes().to_vec();
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grayscale, no interlace
                                              // zlib: one stored deflate block holding the filter byte and the row.
    let raw: Vec<u8> = std::iter::once(0u8).chain(row.iter().copied()).collect();
    let mut idat = vec![0x78, 0x01, 0x01];
    idat.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    idat.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    idat.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    idat.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"tEXt", format!("Comment\0{comment}").as_bytes());
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", b"");
    out
}

/// Where the media of a test goes; both keep one plain file per object key, so a test
/// sees exactly what is stored.
pub(super) enum Store {
    Files(tempfile::TempDir),
    S3(TestS3),
}

impl Store {
    pub(super) fn files() -> Self {
        Self::Files(tempfile::tempdir().unwrap())
    }

    pub(super) fn s3() -> Self {
        Self::S3(TestS3::start().expect("starting s3s-fs"))
    }

    /// The directory whose files are the stored objects, named by key.
    pub(super) fn objects(&self) -> PathBuf {
        match self {
            Self::Files(dir) => dir.path().to_path_buf(),
            Self::S3(s3) => s3.bucket_dir(),
        }
    }

    pub(super) fn vars(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Files(dir) => vec![(
                "CHAT_OBJECT_STORE_URL",
                format!("file://{}", dir.path().display()),
            )],
            Self::S3(s3) => {
                let mut vars = s3.client_vars();
                vars.push(("CHAT_OBJECT_STORE_URL", s3.url()));
                vars
            }
        }
    }
}

/// Runs a scenario against each backend.
macro_rules! on_each_backend {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread")]
            async fn local_files() {
                super::$scenario(super::Store::files()).await
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn s3_compatible_server() {
                super::$scenario(super::Store::s3()).await
            }
        }
    };
}

pub(super) async fn spawn(store: &Store, extra: &[(&'static str, &str)]) -> TestApp {
    let vars = store.vars();
    let mut vars = borrowed(&vars);
    vars.extend_from_slice(extra);
    TestApp::spawn_with(&vars).await
}

pub(super) async fn upload_url(
    app: &TestApp,
    token: &str,
    thread: i64,
    content_type: &str,
) -> Value {
    json_of(
        app.client
            .post(app.url(&format!("/api/chat/threads/{thread}/media")))
            .bearer_auth(token)
            .json(&json!({"contentType": content_type}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await
}

/// Sends `bytes` as the upload ticket says; returns the status.
pub(super) async fn upload(app: &TestApp, ticket: &Value, bytes: &[u8]) -> u16 {
    let mut request = app
        .client
        .request(
            ticket["method"].as_str().unwrap().parse().unwrap(),
            ticket["uploadUrl"].as_str().unwrap(),
        )
        .body(bytes.to_vec());
    for (name, value) in ticket["headers"].as_object().unwrap() {
        request = request.header(name, value.as_str().unwrap());
    }
    request.send().await.unwrap().status().as_u16()
}

pub(super) async fn post_image(
    app: &TestApp,
    token: &str,
    thread: i64,
    path: &str,
) -> reqwest::Response {
    app.post(token, thread, json!({"type": "image", "mediaPath": path}))
        .await
}

pub(super) fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                found.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

/// The signature parameter of a signed URL, whichever backend signed it.
pub(super) fn signature_at(url: &str) -> usize {
    ["X-Amz-Signature=", "sig="]
        .iter()
        .find_map(|p| url.find(p).map(|at| at + p.len()))
        .expect("a signed URL")
}

/// Gets an upload URL for `mime`, uploads `bytes` and posts the image message, each
/// step asserted; returns the upload ticket.
pub(super) async fn upload_and_post(
    app: &TestApp,
    token: &str,
    thread: i64,
    mime: &str,
    bytes: &[u8],
) -> Value {
    let ticket = upload_url(app, token, thread, mime).await;
    assert_eq!(upload(app, &ticket, bytes).await, 200);
    let path = ticket["mediaPath"].as_str().unwrap();
    json_of(post_image(app, token, thread, path).await, 200).await;
    ticket
}

/// A `PUT` as a client sends it after reading its ticket.
pub(super) async fn put(app: &TestApp, url: &str, content_type: &str, body: Vec<u8>) -> u16 {
    app.client
        .put(url)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The image messages of `thread`: what each one's `media_url` serves.
pub(super) async fn served(app: &TestApp, thread: i64) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for message in app.all_messages(&token(7, "client"), thread).await {
        let url = message["media_url"].as_str().unwrap();
        let got = app.client.get(url).send().await.unwrap();
        assert_eq!(got.status(), 200);
        let mime = got.headers()["content-type"].to_str().unwrap().to_owned();
        out.push((mime, got.bytes().await.unwrap().to_vec()));
    }
    out
}

/// A TIFF (EXIF) block: a description holding `canary` and a GPS position.
pub(super) fn exif_with_gps(canary: &str) -> Vec<u8> {
    let mut text = canary.as_bytes().to_vec();
    text.push(0);
    // IFD0 at 8: 2 entries (12 bytes each) and the next-IFD offset; then the text;
    // then the GPS IFD: 2 entries (latitude reference 'N', latitude as 3 rationals).
    let text_at = 8 + 2 + 2 * 12 + 4;
    let gps_at = text_at + text.len();
    let lat_at = gps_at + 2 + 2 * 12 + 4;
    let mut tiff = b"II*\0".to_vec();
    tiff.extend_from_slice(&8u32.to_le_bytes());
    let entry = |tiff: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32| {
        tiff.extend_from_slice(&tag.to_le_bytes());
        tiff.extend_from_slice(&kind.to_le_bytes());
        tiff.extend_from_slice(&count.to_le_bytes());
        tiff.extend_from_slice(&value.to_le_bytes());
    };
    tiff.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut tiff, 0x010E, 2, text.len() as u32, text_at as u32); // ImageDescription
    entry(&mut tiff, 0x8825, 4, 1, gps_at as u32); // GPSInfo
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(&text);
    tiff.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut tiff, 0x0001, 2, 2, u32::from(b'N')); // GPSLatitudeRef
    entry(&mut tiff, 0x0002, 5, 3, lat_at as u32); // GPSLatitude
    tiff.extend_from_slice(&0u32.to_le_bytes());
    for (num, den) in [(40u32, 1u32), (42, 1), (4608, 100)] {
        tiff.extend_from_slice(&num.to_le_bytes());
        tiff.extend_from_slice(&den.to_le_bytes());
    }
    tiff
}

pub(super) fn pixels(bytes: &[u8]) -> image::RgbaImage {
    image::load_from_memory(bytes).unwrap().to_rgba8()
}
