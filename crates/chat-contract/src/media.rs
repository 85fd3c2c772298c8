//! Object storage for images.

use super::*;
use chat_core::ports::{MediaStore, SignedUpload, Upload};
use chat_core::MediaPath;

/// What a client does with the URLs a media store hands out: an adapter's test says
/// how its URLs are used (an HTTP request to S3, the local gateway's checks).
#[async_trait::async_trait]
pub trait MediaClient: Send + Sync {
    /// Sends `bytes` as the upload says; whether the store accepted them.
    async fn upload(&self, upload: &SignedUpload, bytes: Vec<u8>) -> bool;
    /// The object behind a signed GET URL; `None` when it is refused or gone.
    async fn download(&self, url: &str) -> Option<Vec<u8>>;
}

/// Uploads land under the thread's prefix and are read back whole; an upload URL
/// writes once; checked copies live where no upload URL writes; deletes are
/// idempotent and stay within their thread.
pub async fn media_store(store: &dyn MediaStore, client: &dyn MediaClient) {
    let thread = ThreadId::new(fresh_id()).unwrap();
    let other = ThreadId::new(fresh_id()).unwrap();
    let ttl = Duration::from_secs(300);
    let prefix = MediaPath::thread_prefix(thread);

    // Each upload URL names a new key under the thread, with the extension asked for.
    let upload = store
        .signed_upload(thread, "png", "image/png", ttl)
        .await
        .unwrap();
    let second = store
        .signed_upload(thread, "png", "image/png", ttl)
        .await
        .unwrap();
    assert!(
        upload.path.as_str().starts_with(&prefix),
        "{:?}",
        upload.path
    );
    assert!(upload.path.as_str().ends_with(".png"));
    assert_ne!(upload.path, second.path, "a new key per upload URL");
    assert!(!upload.url.is_empty() && !upload.method.is_empty());

    // Nothing there until the client sends it; then exactly what it sent.
    assert_eq!(
        store.read_upload(&upload.path, 1 << 20).await.unwrap(),
        Upload::Missing
    );
    let bytes: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    assert!(
        client.upload(&upload, bytes.clone()).await,
        "upload accepted"
    );
    assert_eq!(
        store.read_upload(&upload.path, 1 << 20).await.unwrap(),
        Upload::Bytes(bytes.clone())
    );
    assert_eq!(
        store.read_upload(&upload.path, 4999).await.unwrap(),
        Upload::TooLarge { size: 5000 },
        "larger than asked for: not read"
    );
    // The URL writes once: a second body does not replace the first.
    assert!(
        !client.upload(&upload, vec![1, 2, 3]).await,
        "second write refused"
    );
    assert_eq!(
        store.read_upload(&upload.path, 1 << 20).await.unwrap(),
        Upload::Bytes(bytes.clone())
    );

    // A checked copy goes where uploads cannot, and is served by a signed GET URL.
    let checked = store
        .store_checked(thread, "image/png", vec![7; 64])
        .await
        .unwrap();
    assert!(checked
        .as_str()
        .starts_with(&MediaPath::checked_prefix(thread)));
    let url = store.signed_get_url(&checked, ttl).await.unwrap();
    assert_eq!(client.download(&url).await, Some(vec![7; 64]));
    let again = store
        .store_checked(thread, "image/png", vec![8; 64])
        .await
        .unwrap();
    assert_ne!(checked, again, "a new key per checked copy");

    // One delete removes one object, and again is no error.
    store.delete(&again).await.unwrap();
    store.delete(&again).await.unwrap();
    let gone = store.signed_get_url(&again, ttl).await.unwrap();
    assert_eq!(client.download(&gone).await, None);

    // Deleting a thread's prefix takes its objects only, and says how many.
    let elsewhere = store
        .store_checked(other, "image/png", vec![9; 16])
        .await
        .unwrap();
    assert_eq!(store.delete_prefix(&prefix).await.unwrap(), 2);
    assert_eq!(store.delete_prefix(&prefix).await.unwrap(), 0, "idempotent");
    assert_eq!(
        store.read_upload(&upload.path, 1 << 20).await.unwrap(),
        Upload::Missing
    );
    assert_eq!(client.download(&url).await, None);
    let kept = store.signed_get_url(&elsewhere, ttl).await.unwrap();
    assert_eq!(client.download(&kept).await, Some(vec![9; 16]));
    store
        .delete_prefix(&MediaPath::thread_prefix(other))
        .await
        .unwrap();
}
