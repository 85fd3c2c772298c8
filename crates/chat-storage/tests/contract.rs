//! The media store contract over each backend this crate opens: the in-memory and
//! local-file ones (their URLs served by the local gateway) and S3 (a real `s3s-fs`,
//! which checks presigned URLs as S3 does).

use chat_contract::{media_store, UrlCheck};
use chat_storage::{open, Gateway, MediaSettings};
use chat_testkit::TestS3;
use std::sync::Arc;

fn settings(url: String, options: Vec<(String, String)>) -> MediaSettings {
    MediaSettings {
        url: Some(url),
        public_base_url: "http://127.0.0.1:9".into(),
        signing_secret: b"contract-signing-secret".to_vec(),
        max_upload_bytes: 1 << 20,
        options,
    }
}

/// Checks `/media/{key}?expires=…&sig=…` URLs as the HTTP routes do: the gateway's
/// signature check.
struct ThroughGateway(Arc<Gateway>);

impl UrlCheck for ThroughGateway {
    fn grants(&self, method: &str, url: &str, content_type: &str) -> Option<String> {
        let rest = url.split_once("/media/")?.1;
        let (key, query) = rest.split_once('?')?;
        let mut expires = 0;
        let mut sig = String::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("expires", v)) => expires = v.parse().ok()?,
                Some(("sig", v)) => sig = v.to_owned(),
                _ => {}
            }
        }
        let (path, _) = self
            .0
            .authorize(method, key, expires, &sig, content_type)
            .ok()?;
        Some(path.as_str().to_owned())
    }
}

#[tokio::test]
async fn in_memory_backend_meets_the_contract() {
    let media = open(&settings("memory://".into(), Vec::new())).unwrap();
    media_store(&*media.store, &ThroughGateway(media.gateway)).await;
}

#[tokio::test]
async fn local_files_meet_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let media = open(&settings(url, Vec::new())).unwrap();
    media_store(&*media.store, &ThroughGateway(media.gateway)).await;
}

#[tokio::test]
async fn s3_meets_the_contract() {
    let s3 = TestS3::start().expect("starting s3s-fs");
    let options = s3
        .client_vars()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let media = open(&settings(s3.url(), options)).unwrap();
    media_store(&*media.store, &ThroughGateway(media.gateway)).await;
}
