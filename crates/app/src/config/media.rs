//! Where photos are kept and what is accepted.

use super::env::{ConfigError, Env};
use chat_core::ChatSettings;
use secrecy::SecretString;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// `CHAT_OBJECT_STORE_URL`: media storage: `file:///path` (default `./data/media`),
    /// `memory://`, `s3://bucket` (with the `AWS_*` variables), `gs://`, `az://`.
    pub object_store_url: Option<String>,
    /// `AWS_*`, `GOOGLE_*`, `AZURE_*`: the object store's own settings (endpoint,
    /// region, credentials), in `object_store`'s names, e.g. `AWS_ENDPOINT`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_ALLOW_HTTP`. Values are kept secret.
    pub object_store_options: Vec<(String, SecretString)>,
    /// `CHAT_PUBLIC_BASE_URL`: where clients reach this service, for the `/media/…`
    /// URLs. Default `http://` + the bound address.
    pub public_base_url: Option<String>,
    /// `CHAT_MAX_UPLOAD_BYTES`: largest image. Default 10485760 (10 MiB).
    pub max_upload_bytes: u64,
    /// `CHAT_MAX_IMAGE_PIXELS`: an image whose width × height is larger is refused
    /// (`422`) before it is decoded. Default 40,000,000.
    pub max_image_pixels: u64,
    /// `CHAT_THUMB_MAX_PX`: the longer side of an image's thumbnail, at most. Default
    /// 320, 16..=4096.
    pub thumb_max_px: u32,
    /// `CHAT_ALLOWED_IMAGE_MIME`: comma-separated image types, judged by content.
    /// Default `image/jpeg,image/png,image/webp`.
    pub allowed_image_mime: Vec<String>,
    /// `CHAT_SIGNED_URL_TTL`: lifetime of signed media URLs. Default 900 s, at most a
    /// week.
    pub signed_url_ttl: Duration,
}

impl MediaConfig {
    pub(crate) fn from_env(env: &Env, defaults: &ChatSettings) -> Result<Self, ConfigError> {
        Ok(Self {
            object_store_url: env.get("CHAT_OBJECT_STORE_URL").map(str::to_owned),
            object_store_options: env.secrets_with_prefix(&["AWS_", "GOOGLE_", "AZURE_"]),
            public_base_url: env.get("CHAT_PUBLIC_BASE_URL").map(str::to_owned),
            max_upload_bytes: env.parse("CHAT_MAX_UPLOAD_BYTES", defaults.max_upload_bytes)?,
            max_image_pixels: env.positive("CHAT_MAX_IMAGE_PIXELS", 40_000_000u64)?,
            thumb_max_px: env.bounded("CHAT_THUMB_MAX_PX", 320u32, 16..=4096)?,
            allowed_image_mime: env
                .list("CHAT_ALLOWED_IMAGE_MIME")
                .map(|types| types.iter().map(|t| t.to_ascii_lowercase()).collect())
                .unwrap_or_else(|| defaults.allowed_image_mime.clone()),
            signed_url_ttl: env.seconds(
                "CHAT_SIGNED_URL_TTL",
                defaults.signed_url_ttl,
                1..=7 * 24 * 3600,
            )?,
        })
    }
}
