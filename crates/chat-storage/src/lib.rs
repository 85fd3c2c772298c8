//! The media-store port over [`object_store`]: `file://` (the embedded default),
//! `memory://`, `s3://`, `gs://` and `az://`.
//!
//! S3, GCS and Azure presign URLs themselves (the upload's `Content-Type` is bound into
//! the signature). Local files and memory cannot, so the service serves them under
//! `/media/…` through [`LocalGateway`], with HMAC-signed, expiring URLs
//! ([`signing`]). Object keys and signed URLs are bearer-like secrets: nothing here logs
//! them, and their `Debug` forms are redacted.
#![forbid(unsafe_code)]

pub mod signing;

use async_trait::async_trait;
use chat_core::ports::{MediaStore, SignedUpload, StoreResult, Upload};
use chat_core::{MediaPath, StoreError, ThreadId};
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::signer::{HeaderValue, Method, SignedUrlOptions, Signer};
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

/// The opened media storage: the port, and the gateway when the service must serve
/// the URLs itself.
pub struct Media {
    pub store: Arc<ObjectMediaStore>,
    pub gateway: Option<Arc<LocalGateway>>,
}

enum Urls {
    Native(Arc<dyn Signer>),
    Local(UrlSigner),
}

/// The media store over any object store.
pub struct ObjectMediaStore {
    objects: Arc<dyn ObjectStore>,
    urls: Urls,
    random: SystemRandom,
}

/// Opens the backend `settings.url` names.
pub fn open(settings: &MediaSettings) -> Result<Media, SetupError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| SetupError(format!("{what}: {e}"));
    let url = settings.url.as_deref().unwrap_or("file://./data/media");
    let local = |objects: Arc<dyn ObjectStore>| {
        let signer = UrlSigner::new(&settings.signing_secret, &settings.public_base_url);
        Media {
            store: Arc::new(ObjectMediaStore {
                objects: objects.clone(),
                urls: Urls::Local(signer.clone()),
                random: SystemRandom::new(),
            }),
            gateway: Some(Arc::new(LocalGateway {
                objects,
                signer,
                max_upload_bytes: settings.max_upload_bytes,
            })),
        }
    };
    let native = |objects: Arc<dyn ObjectStore>, signer: Arc<dyn Signer>| Media {
        store: Arc::new(ObjectMediaStore {
            objects,
            urls: Urls::Native(signer),
            random: SystemRandom::new(),
        }),
        gateway: None,
    };
    if url == "memory://" || url == "memory:///" {
        return Ok(local(Arc::new(object_store::memory::InMemory::new())));
    }
    if let Some(dir) = url.strip_prefix("file://") {
        std::fs::create_dir_all(dir).map_err(|e| setup("creating the media directory", &e))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| setup("the media directory", &e))?;
        return Ok(local(Arc::new(fs)));
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
            let s3 = Arc::new(s3);
            Ok(native(s3.clone(), s3))
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
            let gcs = Arc::new(gcs);
            Ok(native(gcs.clone(), gcs))
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
            let azure = Arc::new(azure);
            Ok(native(azure.clone(), azure))
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
        let path = MediaPath::parse(&key, thread).map_err(StoreError::Corrupt)?;
        let mut headers = vec![("Content-Type".to_owned(), content_type.to_owned())];
        let url = match &self.urls {
            // The gateway writes only keys that do not exist yet.
            Urls::Local(signer) => signer.sign("PUT", &key, ttl, content_type),
            Urls::Native(signer) => {
                let value = HeaderValue::from_str(content_type)
                    .map_err(|_| StoreError::Corrupt("content type".into()))?;
                // Bound into the signature, so the URL writes its key once (S3's
                // conditional write; a provider that ignores it still never serves
                // the upload: recipients get the checked copy).
                let options = SignedUrlOptions::new()
                    .with_signed_header(
                        object_store::signer::HeaderName::from_static("content-type"),
                        value,
                    )
                    .with_signed_header(
                        object_store::signer::HeaderName::from_static("if-none-match"),
                        HeaderValue::from_static("*"),
                    );
                headers.push(("If-None-Match".into(), "*".into()));
                signer
                    .signed_url_opts(Method::PUT, &path_of(&path)?, ttl, &options)
                    .await
                    .map_err(unavailable)?
                    .to_string()
            }
        };
        Ok(SignedUpload {
            path,
            url,
            method: "PUT".into(),
            headers,
        })
    }

    fn upload_urls_revocable(&self) -> bool {
        matches!(self.urls, Urls::Local(_))
    }

    async fn read_upload(&self, media: &MediaPath, max_bytes: u64) -> StoreResult<Upload> {
        let path = path_of(media)?;
        let meta = match self.objects.head(&path).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => return Ok(Upload::Missing),
            Err(e) => return Err(unavailable(e)),
        };
        if meta.size > max_bytes {
            return Ok(Upload::TooLarge { size: meta.size });
        }
        let bytes = match self.objects.get(&path).await {
            Ok(got) => got.bytes().await.map_err(unavailable)?,
            Err(object_store::Error::NotFound { .. }) => return Ok(Upload::Missing),
            Err(e) => return Err(unavailable(e)),
        };
        // Replaced by a larger object between the two requests.
        if bytes.len() as u64 > max_bytes {
            return Ok(Upload::TooLarge {
                size: bytes.len() as u64,
            });
        }
        Ok(Upload::Bytes(bytes.to_vec()))
    }

    async fn store_checked(
        &self,
        thread: ThreadId,
        mime: &str,
        bytes: Vec<u8>,
    ) -> StoreResult<MediaPath> {
        let extension = chat_core::media::extension_for(mime)
            .ok_or_else(|| StoreError::Corrupt("image type".into()))?;
        let name = format!("{}.{extension}", self.random_name()?);
        let media = MediaPath::checked(thread, &name).map_err(StoreError::Corrupt)?;
        // Served with its type by the providers that serve presigned GETs themselves
        // (local files keep no attributes; the gateway serves what the bytes show).
        let typed = match self.urls {
            Urls::Native(_) => PutOptions {
                attributes: object_store::Attributes::from_iter([(
                    object_store::Attribute::ContentType,
                    object_store::AttributeValue::from(mime.to_owned()),
                )]),
                ..PutOptions::default()
            },
            Urls::Local(_) => PutOptions::default(),
        };
        self.objects
            .put_opts(&path_of(&media)?, PutPayload::from(bytes), typed)
            .await
            .map_err(unavailable)?;
        Ok(media)
    }

    async fn delete(&self, media: &MediaPath) -> StoreResult<()> {
        match self.objects.delete(&path_of(media)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn signed_get_url(&self, media: &MediaPath, ttl: Duration) -> StoreResult<String> {
        match &self.urls {
            Urls::Local(signer) => Ok(signer.sign("GET", media.as_str(), ttl, "")),
            Urls::Native(signer) => Ok(signer
                .signed_url(Method::GET, &path_of(media)?, ttl)
                .await
                .map_err(unavailable)?
                .to_string()),
        }
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
    #[error("no such object")]
    NotFound,
    #[error("the upload is larger than allowed")]
    TooLarge,
    /// The key was written already: an upload URL writes once.
    #[error("already uploaded")]
    AlreadyWritten,
    #[error("the media store is unavailable")]
    Unavailable,
}

/// Serves `PUT` and `GET` of signed `/media/…` URLs for the local backends.
pub struct LocalGateway {
    objects: Arc<dyn ObjectStore>,
    signer: UrlSigner,
    max_upload_bytes: u64,
}

impl LocalGateway {
    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_bytes
    }

    /// Checks the signature of a request for `key`; returns the object's path and its
    /// thread. A `PUT` never reaches a checked image's key.
    pub fn authorize(
        &self,
        method: &str,
        key: &str,
        expires: u64,
        sig: &str,
        content_type: &str,
    ) -> Result<(Path, ThreadId), Refusal> {
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
        let path = Path::parse(media.as_str()).map_err(|_| refused)?;
        Ok((path, thread))
    }

    /// Stores the body at `path` unless the key exists already (an upload URL writes
    /// once), refusing it as soon as it grows past the limit: nothing is kept of a
    /// refused upload. The body is held in memory (at most the upload limit) so that
    /// the write is one create-only put.
    pub async fn put<E>(
        &self,
        path: Path,
        body: impl Stream<Item = Result<bytes::Bytes, E>>,
    ) -> Result<u64, Refusal> {
        let mut body = std::pin::pin!(body);
        let mut parts = Vec::new();
        let mut total: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| Refusal::Unavailable)?;
            total += chunk.len() as u64;
            if total > self.max_upload_bytes {
                return Err(Refusal::TooLarge);
            }
            parts.push(chunk);
        }
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .objects
            .put_opts(&path, PutPayload::from_iter(parts), create)
            .await
        {
            Ok(_) => Ok(total),
            Err(object_store::Error::AlreadyExists { .. }) => Err(Refusal::AlreadyWritten),
            Err(_) => Err(Refusal::Unavailable),
        }
    }

    /// The object's bytes and the image type its content shows (`None`: not an image).
    pub async fn get(&self, path: &Path) -> Result<(bytes::Bytes, Option<&'static str>), Refusal> {
        let bytes = match self.objects.get(path).await {
            Ok(got) => got.bytes().await.map_err(|_| Refusal::Unavailable)?,
            Err(object_store::Error::NotFound { .. }) => return Err(Refusal::NotFound),
            Err(_) => return Err(Refusal::Unavailable),
        };
        let mime = chat_core::media::sniff_image(&bytes);
        Ok((bytes, mime))
    }
}
