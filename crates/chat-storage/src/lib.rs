//! The media-store port over [`object_store`]: `file://` (the embedded default),
//! `memory://`, `s3://`, `gs://` and `az://`.
//!
//! Every backend holds ciphertext only, which the service writes itself: uploads and
//! downloads go through the service's own `/media/…` routes (SPEC §3.6), with
//! HMAC-signed, expiring URLs ([`signing`]) that [`Gateway`] checks; nothing is ever
//! presigned for the backend, so no client writes or reads an object directly. Object
//! keys and signed URLs are bearer-like secrets: nothing here logs them, and their
//! `Debug` forms are redacted.
#![forbid(unsafe_code)]

pub mod signing;

use async_trait::async_trait;
use chat_core::crypto::SealedContent;
use chat_core::ports::{MediaStore, SignedUpload, StoreResult};
use chat_core::{MediaPath, StoreError, ThreadId};
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use ring::rand::{SecureRandom, SystemRandom};
use signing::{BadSignature, UrlSigner};
use std::sync::Arc;
use std::time::Duration;

/// Where media goes and how its URLs are made.
#[derive(Clone)]
pub struct MediaSettings {
    /// `CHAT_OBJECT_STORE_URL`; `None` is `./data/media`.
    pub url: Option<String>,
    /// `CHAT_PUBLIC_BASE_URL`: where clients reach this service (for `/media/…` URLs).
    pub public_base_url: String,
    /// Signs `/media/…` URLs; every instance must share it.
    pub signing_secret: Vec<u8>,
    /// Largest upload accepted through `/media/…`.
    pub max_upload_bytes: u64,
    /// Backend settings in `object_store`'s variable names (`AWS_ENDPOINT`,
    /// `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, …), applied over what the
    /// builders read from the process environment themselves.
    pub options: Vec<(String, String)>,
}

/// A bad `CHAT_OBJECT_STORE_URL` or a backend that cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(String);

/// The opened media storage: the port, and the gateway that checks the service's own
/// `/media/…` URLs.
pub struct Media {
    pub store: Arc<ObjectMediaStore>,
    pub gateway: Arc<Gateway>,
}

/// The media store over any object store.
pub struct ObjectMediaStore {
    objects: Arc<dyn ObjectStore>,
    signer: UrlSigner,
    random: SystemRandom,
}

/// Opens the backend `settings.url` names.
pub fn open(settings: &MediaSettings) -> Result<Media, SetupError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| SetupError(format!("{what}: {e}"));
    let url = settings.url.as_deref().unwrap_or("file://./data/media");
    let media = |objects: Arc<dyn ObjectStore>| {
        let signer = UrlSigner::new(&settings.signing_secret, &settings.public_base_url);
        Media {
            store: Arc::new(ObjectMediaStore {
                objects,
                signer: signer.clone(),
                random: SystemRandom::new(),
            }),
            gateway: Arc::new(Gateway {
                signer,
                max_upload_bytes: settings.max_upload_bytes,
            }),
        }
    };
    if url == "memory://" || url == "memory:///" {
        return Ok(media(Arc::new(object_store::memory::InMemory::new())));
    }
    if let Some(dir) = url.strip_prefix("file://") {
        std::fs::create_dir_all(dir).map_err(|e| setup("creating the media directory", &e))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| setup("the media directory", &e))?;
        return Ok(media(Arc::new(fs)));
    }
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    match scheme {
        "s3" | "s3a" => {
            let s3 = configured(
                object_store::aws::AmazonS3Builder::from_env(),
                settings,
                "AWS_",
                |b, k, v| b.with_config(k, v),
            )
            .with_url(url)
            .build()
            .map_err(|e| setup("S3", &e))?;
            Ok(media(Arc::new(s3)))
        }
        "gs" => {
            let gcs = configured(
                object_store::gcp::GoogleCloudStorageBuilder::from_env(),
                settings,
                "GOOGLE_",
                |b, k, v| b.with_config(k, v),
            )
            .with_url(url)
            .build()
            .map_err(|e| setup("GCS", &e))?;
            Ok(media(Arc::new(gcs)))
        }
        "az" | "azure" | "abfs" | "abfss" => {
            let azure = configured(
                object_store::azure::MicrosoftAzureBuilder::from_env(),
                settings,
                "AZURE_",
                |b, k, v| b.with_config(k, v),
            )
            .with_url(url)
            .build()
            .map_err(|e| setup("Azure", &e))?;
            Ok(media(Arc::new(azure)))
        }
        _ => Err(SetupError(
            "expected file:///path, memory://, s3://bucket, gs://bucket or az://container".into(),
        )),
    }
}

/// Applies the settings named `<prefix>…` that the builder knows (as its `from_env`
/// does with the process environment); the others are ignored, as there.
fn configured<B, K: std::str::FromStr>(
    builder: B,
    settings: &MediaSettings,
    prefix: &str,
    apply: impl Fn(B, K, &str) -> B,
) -> B {
    settings
        .options
        .iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .filter_map(|(name, value)| Some((name.to_ascii_lowercase().parse::<K>().ok()?, value)))
        .fold(builder, |b, (key, value)| apply(b, key, value))
}

fn unavailable(e: object_store::Error) -> StoreError {
    // object_store errors name the key; keys stay out of errors that may be logged.
    let kind = match e {
        object_store::Error::NotFound { .. } => "not found",
        object_store::Error::Precondition { .. } => "precondition failed",
        object_store::Error::NotSupported { .. } => "not supported",
        object_store::Error::PermissionDenied { .. } => "permission denied",
        object_store::Error::Unauthenticated { .. } => "unauthenticated",
        _ => "request failed",
    };
    StoreError::Unavailable(format!("object store: {kind}"))
}

fn path_of(media: &MediaPath) -> StoreResult<Path> {
    Path::parse(media.as_str()).map_err(|_| StoreError::Corrupt("media path".into()))
}

impl ObjectMediaStore {
    /// For `/readyz`: the backend answers a `HEAD` of a key nobody writes (missing is an
    /// answer; unreachable, refused credentials or a missing bucket are not).
    pub async fn ping(&self) -> StoreResult<()> {
        match self.objects.head(&Path::from("readyz/probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn random_name(&self) -> StoreResult<String> {
        let mut bytes = [0u8; 16];
        self.random
            .fill(&mut bytes)
            .map_err(|_| StoreError::Unavailable("no randomness for a media key".into()))?;
        Ok(hex::encode(bytes))
    }
}

#[async_trait]
impl MediaStore for ObjectMediaStore {
    async fn signed_upload(
        &self,
        thread: ThreadId,
        extension: &str,
        content_type: &str,
        ttl: Duration,
    ) -> StoreResult<SignedUpload> {
        let key = format!(
            "{}{}.{extension}",
            MediaPath::thread_prefix(thread),
            self.random_name()?
        );
        let path =
            MediaPath::parse(&key, thread).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(SignedUpload {
            path,
            url: self.signer.sign("PUT", &key, ttl, content_type),
            method: "PUT".into(),
            headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
        })
    }

    async fn put_sealed(&self, media: &MediaPath, sealed: SealedContent) -> StoreResult<bool> {
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let payload = PutPayload::from(sealed.into_bytes());
        match self
            .objects
            .put_opts(&path_of(media)?, payload, create)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn get_sealed(&self, media: &MediaPath) -> StoreResult<Option<SealedContent>> {
        match self.objects.get(&path_of(media)?).await {
            Ok(got) => Ok(Some(SealedContent::from_bytes(
                got.bytes().await.map_err(unavailable)?.to_vec(),
            ))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn exists(&self, media: &MediaPath) -> StoreResult<bool> {
        match self.objects.head(&path_of(media)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete(&self, media: &MediaPath) -> StoreResult<()> {
        match self.objects.delete(&path_of(media)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn signed_get_url(&self, media: &MediaPath, ttl: Duration) -> StoreResult<String> {
        Ok(self.signer.sign("GET", media.as_str(), ttl, ""))
    }

    async fn delete_prefix(&self, prefix: &str) -> StoreResult<u64> {
        let prefix = Path::parse(prefix).map_err(|_| StoreError::Corrupt("prefix".into()))?;
        let paths: Vec<Path> = self
            .objects
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(unavailable)?;
        let mut deleted = 0;
        for path in paths {
            match self.objects.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(deleted)
    }
}

/// Why the gateway refuses a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Signature(BadSignature),
    #[error("the upload is larger than allowed")]
    TooLarge,
    /// The client's body broke off.
    #[error("the upload broke off")]
    Unavailable,
}

/// Checks the service's own `/media/…` URLs and reads an upload's body within the
/// limit; what is written or read goes through the service, which seals and opens it.
pub struct Gateway {
    signer: UrlSigner,
    max_upload_bytes: u64,
}

impl Gateway {
    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_bytes
    }

    /// Checks the signature of a request for `key`; returns the object's path and its
    /// thread. A `PUT` reaches only an upload's key (never a thumbnail's).
    pub fn authorize(
        &self,
        method: &str,
        key: &str,
        expires: u64,
        sig: &str,
        content_type: &str,
    ) -> Result<(MediaPath, ThreadId), Refusal> {
        self.signer
            .verify(method, key, expires, sig, content_type)
            .map_err(Refusal::Signature)?;
        // Only keys the service signed verify, and it signs only media paths; check
        // anyway, so that even a leaked signing secret reaches nothing but thread media.
        let thread = key
            .strip_prefix("chats/")
            .and_then(|rest| rest.split('/').next())
            .and_then(|id| id.parse::<ThreadId>().ok());
        let refused = Refusal::Signature(BadSignature::Invalid);
        let thread = thread.ok_or(refused)?;
        let media = match method {
            "PUT" => MediaPath::parse_upload(key, thread),
            _ => MediaPath::parse(key, thread),
        }
        .map_err(|_| refused)?;
        Path::parse(media.as_str()).map_err(|_| refused)?;
        Ok((media, thread))
    }

    /// The whole body of an upload, refused as soon as it grows past the limit.
    pub async fn read_body<E>(
        &self,
        body: impl Stream<Item = Result<bytes::Bytes, E>>,
    ) -> Result<Vec<u8>, Refusal> {
        let mut body = std::pin::pin!(body);
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| Refusal::Unavailable)?;
            if (bytes.len() + chunk.len()) as u64 > self.max_upload_bytes {
                return Err(Refusal::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}
