//! Object storage for images: sealed objects, and the service's own signed URLs.

use super::*;
use chat_core::crypto::SealedContent;
use chat_core::ports::MediaStore;
use chat_core::MediaPath;

/// What the service's `/media/…` routes check of a URL the store signed: the key it
/// grants `method` on (with `content_type`, for an upload), if any. An adapter's test
/// says how (the gateway's own check).
pub trait UrlCheck: Send + Sync {
    fn grants(&self, method: &str, url: &str, content_type: &str) -> Option<String>;
}

fn sealed(byte: u8, len: usize) -> SealedContent {
    SealedContent::from_bytes(vec![byte; len])
}

/// Upload URLs name a new key under the thread, for one method and type; sealed
/// objects are written once and read back whole; download URLs name their object;
/// deletes are idempotent and stay within their thread.
pub async fn media_store(store: &dyn MediaStore, urls: &dyn UrlCheck) {
    let thread = ThreadId::new(fresh_id()).unwrap();
    let other = ThreadId::new(fresh_id()).unwrap();
    let ttl = Duration::from_secs(300);
    let prefix = MediaPath::thread_prefix(thread);

    // Each upload URL names a new key under the thread, with the extension asked for,
    // and grants a PUT of that type to it, nothing else.
    let upload = store
        .signed_upload(thread, "png", "image/png", ttl)
        .await
        .unwrap();
    let second = store
        .signed_upload(thread, "png", "image/png", ttl)
        .await
        .unwrap();
    let key = upload.path.as_str().to_owned();
    assert!(key.starts_with(&prefix) && key.ends_with(".png"), "{key}");
    assert_ne!(upload.path, second.path, "a new key per upload URL");
    assert_eq!(upload.method, "PUT");
    assert_eq!(
        urls.grants("PUT", &upload.url, "image/png"),
        Some(key.clone())
    );
    assert_eq!(
        urls.grants("PUT", &upload.url, "image/jpeg"),
        None,
        "another type"
    );
    assert_eq!(urls.grants("GET", &upload.url, ""), None, "another method");

    // Nothing there until it is written; then exactly what was written, once.
    assert!(!store.exists(&upload.path).await.unwrap());
    assert_eq!(store.get_sealed(&upload.path).await.unwrap(), None);
    assert!(store.put_sealed(&upload.path, sealed(7, 64)).await.unwrap());
    assert!(store.exists(&upload.path).await.unwrap());
    assert_eq!(
        store.get_sealed(&upload.path).await.unwrap(),
        Some(sealed(7, 64))
    );
    assert!(
        !store.put_sealed(&upload.path, sealed(8, 64)).await.unwrap(),
        "written once"
    );
    assert_eq!(
        store.get_sealed(&upload.path).await.unwrap(),
        Some(sealed(7, 64)),
        "the first write stands"
    );

    // A download URL grants a GET of its object only.
    let url = store.signed_get_url(&upload.path, ttl).await.unwrap();
    assert_eq!(urls.grants("GET", &url, ""), Some(key.clone()));
    assert_eq!(urls.grants("PUT", &url, "image/png"), None);

    // One delete removes one object, and again is no error.
    assert!(store.put_sealed(&second.path, sealed(9, 8)).await.unwrap());
    store.delete(&second.path).await.unwrap();
    store.delete(&second.path).await.unwrap();
    assert!(!store.exists(&second.path).await.unwrap());

    // Deleting a thread's prefix takes its objects only, and says how many.
    let thumbnail = upload.path.thumbnail(thread).unwrap();
    assert!(store.put_sealed(&thumbnail, sealed(3, 16)).await.unwrap());
    let elsewhere = store
        .signed_upload(other, "jpg", "image/jpeg", ttl)
        .await
        .unwrap();
    assert!(store
        .put_sealed(&elsewhere.path, sealed(5, 16))
        .await
        .unwrap());
    assert_eq!(store.delete_prefix(&prefix).await.unwrap(), 2);
    assert_eq!(store.delete_prefix(&prefix).await.unwrap(), 0, "idempotent");
    assert_eq!(store.get_sealed(&upload.path).await.unwrap(), None);
    assert_eq!(store.get_sealed(&thumbnail).await.unwrap(), None);
    assert_eq!(
        store.get_sealed(&elsewhere.path).await.unwrap(),
        Some(sealed(5, 16))
    );
    store
        .delete_prefix(&MediaPath::thread_prefix(other))
        .await
        .unwrap();
}
