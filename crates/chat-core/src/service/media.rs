//! Images (SPEC §3.6): upload URLs, the upload itself (checked, cleaned, thumbnailed
//! and sealed before anything is written), and opening a sealed image for a download.

use super::*;
use crate::crypto::{CryptoError, MediaAad, SealedContent};
use crate::ports::ImageRejected;

/// What a download serves: an image's bytes and their type.
pub struct OpenedMedia {
    pub bytes: Vec<u8>,
    pub mime: &'static str,
}

impl std::fmt::Debug for OpenedMedia {
    // An image is content: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenedMedia({}, {} bytes)", self.mime, self.bytes.len())
    }
}

/// Why an upload is refused: the field is `mediaPath`.
fn invalid(why: Invalid) -> ChatError {
    ChatError::Invalid(ValidationErrors::single("mediaPath", why))
}

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
                        Invalid::ContentTypeNotAllowed {
                            allowed: self.settings.allowed_image_mime.clone(),
                        },
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

    /// Takes the bytes a client sent to an upload URL the service signed for `path`
    /// (SPEC §3.6): judges them by content (an allowed type, the one the key declares),
    /// removes their metadata, decodes them within the limits and makes the thumbnail,
    /// then writes the image and the thumbnail sealed under the thread's key, bound to
    /// their keys. The plaintext is never written. The key is written once: a second
    /// upload to it is `Forbidden`; a thread closed meanwhile is `ThreadClosed`.
    /// Returns how many bytes the stored image has.
    pub async fn store_upload(
        &self,
        thread: ThreadId,
        path: &MediaPath,
        bytes: Vec<u8>,
    ) -> Result<u64, ChatError> {
        self.accepts_upload(thread).await?;
        let media = self.media()?;
        // An upload URL writes once: a second upload is refused whatever it holds (the
        // create-only write below settles a race between two).
        if media.exists(path).await? {
            return Err(ChatError::Forbidden);
        }
        let mime = self.judged_type(path, &bytes)?;
        let clean: Arc<[u8]> = crate::media::without_metadata(mime, &bytes)
            .ok_or_else(|| invalid(Invalid::ImageUnreadable))?
            .into();
        drop(bytes);
        let thumbnail = self.thumbnail(mime, clean.clone()).await?;
        let thumb_path = path
            .thumbnail(thread)
            .ok_or_else(|| invalid(Invalid::NotAnImagePath))?;
        let key = self.key_for_writing(thread).await?;
        let seal = |at: &MediaPath, plain: &[u8]| {
            key.seal_media(
                &MediaAad {
                    thread,
                    key: at.as_str(),
                },
                plain,
            )
        };
        let sealed_image = seal(path, &clean)?;
        let sealed_thumb = seal(&thumb_path, &thumbnail)?;
        let size = clean.len() as u64;
        drop((clean, thumbnail));
        // The image first, written once: a second upload to the URL changes nothing,
        // its thumbnail included.
        if !media.put_sealed(path, sealed_image).await? {
            return Err(ChatError::Forbidden);
        }
        let thumb_written = media.put_sealed(&thumb_path, sealed_thumb).await;
        let closed_meanwhile = matches!(
            self.accepts_upload(thread).await,
            Err(ChatError::ThreadClosed)
        );
        if thumb_written.is_err() || closed_meanwhile {
            // Nothing half-stored: the URL may be used again, or the purge is not
            // outrun by a late write.
            media.delete(&thumb_path).await?;
            media.delete(path).await?;
            thumb_written?;
            return Err(ChatError::ThreadClosed);
        }
        Ok(size)
    }

    /// The image type of an upload, judged by its bytes: an allowed one, the one its
    /// path declares.
    fn judged_type(&self, path: &MediaPath, bytes: &[u8]) -> Result<&'static str, ChatError> {
        let declared = path
            .mime()
            .ok_or_else(|| invalid(Invalid::NotAnImagePath))?;
        match crate::media::sniff_image(bytes) {
            Some(mime)
                if mime == declared
                    && self.settings.allowed_image_mime.iter().any(|m| m == mime) =>
            {
                Ok(mime)
            }
            Some(_) => Err(invalid(Invalid::ImageTypeMismatch)),
            None => Err(invalid(Invalid::ImageTypeNotAllowed)),
        }
    }

    /// The thumbnail of a cleaned image, decoded within the limits by the
    /// `ImageProcessor` port; an image over them or that does not decode is refused.
    async fn thumbnail(&self, mime: &'static str, clean: Arc<[u8]>) -> Result<Vec<u8>, ChatError> {
        let images = self
            .ports
            .images
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("no image decoder is configured".into()))?;
        images
            .thumbnail(mime, clean)
            .await
            .map_err(|rejected| match rejected {
                ImageRejected::TooManyPixels { limit, .. } => {
                    invalid(Invalid::TooManyPixels { limit })
                }
                ImageRejected::Undecodable => invalid(Invalid::ImageUndecodable),
            })
    }

    /// Opens the image (or thumbnail) at `path` of `thread` for a download through a
    /// URL the service signed (SPEC §3.6). `NotFound` when there is no such object, or
    /// its thread's key was destroyed (the purge, crypto-shredding).
    pub async fn open_media(
        &self,
        thread: ThreadId,
        path: &MediaPath,
    ) -> Result<OpenedMedia, ChatError> {
        let media = self.media()?;
        let sealed = media.get_sealed(path).await?.ok_or(ChatError::NotFound)?;
        let mime = path.mime().ok_or(ChatError::NotFound)?;
        let key = self
            .existing_key(thread)
            .await?
            .ok_or(ChatError::NotFound)?;
        let aad = MediaAad {
            thread,
            key: path.as_str(),
        };
        match key.open_media(&aad, &sealed) {
            Ok(bytes) => Ok(OpenedMedia { bytes, mime }),
            Err(CryptoError::Authentication) if is_legacy_clear(thread, path, &sealed) => {
                // Checked by the previous release and stored in the clear: served as
                // it was (it carries no metadata), sealed in place for next time.
                let bytes = sealed.into_bytes();
                let resealed = key.seal_media(&aad, &bytes)?;
                media.delete(path).await?;
                if !media.put_sealed(path, resealed).await? {
                    tracing::warn!(thread_id = %thread, "a legacy image changed while it was sealed");
                }
                Ok(OpenedMedia { bytes, mime })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes every object of an image message's image: the image and its thumbnail.
    pub(super) async fn delete_image(
        &self,
        thread: ThreadId,
        path: &MediaPath,
    ) -> Result<(), ChatError> {
        let media = self.media()?;
        if let Some(thumbnail) = path.thumbnail(thread) {
            media.delete(&thumbnail).await?;
        }
        media.delete(path).await?;
        Ok(())
    }

    /// The signed download URLs of an image message: the image and its thumbnail.
    pub(super) async fn image_urls(
        &self,
        thread: ThreadId,
        path: &MediaPath,
    ) -> Result<(String, Option<String>), ChatError> {
        let media = self.media()?;
        let ttl = self.settings.signed_url_ttl;
        let image = media.signed_get_url(path, ttl).await?;
        let thumbnail = match path.thumbnail(thread) {
            Some(thumbnail) => Some(media.signed_get_url(&thumbnail, ttl).await?),
            None => None,
        };
        Ok((image, thumbnail))
    }
}

/// An object the previous release wrote in the clear: a checked copy (its own prefix)
/// whose bytes are an image.
fn is_legacy_clear(thread: ThreadId, path: &MediaPath, stored: &SealedContent) -> bool {
    path.as_str()
        .starts_with(&MediaPath::legacy_checked_prefix(thread))
        && crate::media::sniff_image(stored.as_bytes()).is_some()
}
