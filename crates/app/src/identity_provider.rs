//! The identity provider's JWKS document over HTTP (SPEC §2): what `chat-http`'s key
//! cache fetches when a token names a key it does not know or its keys expired.

use chat_http::JwksSource;
use futures::future::{BoxFuture, FutureExt};
use std::time::Duration;

/// How long the provider has to answer; requests waiting for a key wait at most this.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// A JWKS document holds a handful of keys; anything larger is not one.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

pub struct HttpJwks {
    client: reqwest::Client,
    url: String,
}

impl HttpJwks {
    pub fn new(url: String, link_check: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            client: crate::outbound::client(ANSWER_WITHIN, link_check)?,
            url,
        })
    }

    async fn get(&self) -> Result<Vec<u8>, String> {
        let mut answer = self
            .client
            .get(&self.url)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("unreachable: {e}"))?;
        if !answer.status().is_success() {
            return Err(format!("answered {}", answer.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(|e| format!("cut off: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

impl JwksSource for HttpJwks {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        self.get().boxed()
    }
}
