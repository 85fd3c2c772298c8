//! Images: upload URLs, and the checked, cleaned copy an image message serves.

use super::*;

impl ChatService {
    /// Signs an upload of an image of `content_type` to a new key under the thread's
    /// prefix (SPEC §3.6). Same access rules as posting; the type must be allowed.
    pub async fn upload_url(
        &self,
        user: &User,
        thread: ThreadId,
        content_type: impl FnOnce() -> Result<String, ValidationErrors> + Send,
    ) -> Result<(SignedUpload, crate::Timestamp), ChatError> {
        let result = async {
            let thread = self
                .authorized_thread(user, thread, ThreadAction::Post)
                .await?;
            let content_type = content_type()?;
            let extension = crate::media::extension_for(&content_type)
                .filter(|_| self.settings.allowed_image_mime.contains(&content_type))
                .ok_or_else(|| {
                    ChatError::Invalid(ValidationErrors::single(
                        "contentType",
                        format!(
                            "The content type must be one of: {}.",
                            self.settings.allowed_image_mime.join(", ")
                        ),
                    ))
                })?;
            let media = self.media()?;
            let ttl = self.settings.signed_url_ttl;
            let upload = media
                .signed_upload(thread.id, extension, &content_type, ttl)
                .await?;
            let expires_at = self.ports.clock.now()
                + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
            Ok((upload, expires_at))
        }
        .await;
        self.audit(self.audit_event(Some(user), AuditAction::UploadUrl, Some(thread), &result));
        result
    }

    /// Reads the upload, judges it by its bytes, removes its metadata and stores the
    /// result where no upload URL can write (SPEC §3.6): so what a recipient downloads
    /// is what was checked, and carries no location. The upload itself is never served
    /// (no URL is signed for it) and goes with the thread's media at the purge.
    pub(super) async fn checked_image(
        &self,
        thread: ThreadId,
        upload: &MediaPath,
    ) -> Result<MediaPath, ChatError> {
        let invalid = |msg: &str| ChatError::Invalid(ValidationErrors::single("mediaPath", msg));
        let media = self.media()?;
        let max = self.settings.max_upload_bytes;
        let bytes = match media.read_upload(upload, max).await? {
            Upload::Bytes(bytes) => bytes,
            Upload::Missing => {
                return Err(invalid("The media path does not name an uploaded file."))
            }
            Upload::TooLarge { .. } => {
                return Err(invalid(&format!(
                    "The image must not be larger than {max} bytes."
                )))
            }
        };
        // Judged by content, and it must be what was declared for the upload (the key's
        // extension), so that the type a URL serves is the type it holds.
        let mime = match sniff_image(&bytes) {
            Some(mime)
                if self.settings.allowed_image_mime.iter().any(|m| m == mime)
                    && crate::media::mime_for_key(upload.as_str()) == Some(mime) =>
            {
                mime
            }
            Some(_) => {
                return Err(invalid(
                    "The uploaded file is not an allowed image type, or not the declared one.",
                ))
            }
            None => return Err(invalid("The uploaded file is not an allowed image type.")),
        };
        let clean = crate::media::without_metadata(mime, &bytes)
            .ok_or_else(|| invalid("The uploaded image could not be read."))?;
        drop(bytes);
        Ok(media.store_checked(thread, mime, clean).await?)
    }

    /// Deletes the checked copy made by a post that turned out to be a repeat. Best
    /// effort: a copy left behind goes with the thread's media at the purge.
    pub(super) async fn delete_unused_copy(&self, copy: &MediaPath) {
        if let Ok(media) = self.media() {
            if let Err(error) = media.delete(copy).await {
                tracing::warn!(%error, "could not delete an unused checked image");
            }
        }
    }
}
