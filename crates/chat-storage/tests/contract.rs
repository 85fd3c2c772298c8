//! The media store contract over each backend this crate opens: the in-memory and
//! local-file ones (their URLs served by the local gateway) and S3 (a real `s3s-fs`,
//! which checks presigned URLs as S3 does).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use chat_contract::{media_store, MediaClient};
use chat_core::ports::SignedUpload;
use chat_storage::{open, LocalGateway, MediaSettings};
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

/// Uses `/media/{key}?expires=…&sig=…` URLs the way the HTTP gateway does: the same
/// signature check, then the gateway's put or get.
struct ThroughGateway(Arc<LocalGateway>);

impl ThroughGateway {
    fn parts(url: &str) -> (String, u64, String) {
        let rest = url.split_once("/media/").expect("a /media/ URL").1;
        let (key, query) = rest.split_once('?').expect("signed");
        let mut expires = 0;
        let mut sig = String::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("expires", v)) => expires = v.parse().unwrap(),
                Some(("sig", v)) => sig = v.to_owned(),
                _ => {}
            }
        }
        (key.to_owned(), expires, sig)
    }
}

#[async_trait]
impl MediaClient for ThroughGateway {
    async fn upload(&self, upload: &SignedUpload, bytes: Vec<u8>) -> bool {
        let (key, expires, sig) = Self::parts(&upload.url);
        let content_type = upload
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
            .map_or("", |(_, value)| value.as_str());
        let Ok((path, _)) = self.0.authorize("PUT", &key, expires, &sig, content_type) else {
            return false;
        };
        let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))]);
        self.0.put(path, body).await.is_ok()
    }

    async fn download(&self, url: &str) -> Option<Vec<u8>> {
        let (key, expires, sig) = Self::parts(url);
        let (path, _) = self.0.authorize("GET", &key, expires, &sig, "").ok()?;
        self.0
            .get(&path)
            .await
            .ok()
            .map(|(bytes, _)| bytes.to_vec())
    }
}

/// Sends the presigned requests over HTTP, with the headers the upload asks for.
struct OverHttp(reqwest::Client);

#[async_trait]
impl MediaClient for OverHttp {
    async fn upload(&self, upload: &SignedUpload, bytes: Vec<u8>) -> bool {
        let method = reqwest::Method::from_bytes(upload.method.as_bytes()).unwrap();
        let mut request = self.0.request(method, &upload.url).body(bytes);
        for (name, value) in &upload.headers {
            request = request.header(name, value);
        }
        request.send().await.unwrap().status().is_success()
    }

    async fn download(&self, url: &str) -> Option<Vec<u8>> {
        let answer = self.0.get(url).send().await.unwrap();
        match answer.status().is_success() {
            true => Some(answer.bytes().await.unwrap().to_vec()),
            false => None,
        }
    }
}

#[tokio::test]
async fn in_memory_backend_meets_the_contract() {
    let media = open(&settings("memory://".into(), Vec::new())).unwrap();
    let client = ThroughGateway(media.gateway.expect("local URLs are served here"));
    media_store(&*media.store, &client).await;
}

#[tokio::test]
async fn local_files_meet_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let media = open(&settings(url, Vec::new())).unwrap();
    let client = ThroughGateway(media.gateway.expect("local URLs are served here"));
    media_store(&*media.store, &client).await;
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
    assert!(media.gateway.is_none(), "S3 signs its own URLs");
    media_store(&*media.store, &OverHttp(reqwest::Client::new())).await;
}
