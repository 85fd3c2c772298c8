//! The host's webhooks over HTTP (SPEC §9.1), in Pusher's format so that Pusher's own
//! server libraries verify them: `POST` of the body with `X-Pusher-Key`,
//! `X-Pusher-Signature` (hex HMAC-SHA256 of the body under the app secret) and
//! `X-Chat-Delivery`. Only the host's answer decides: a `2xx` within 5 s is delivered.

use async_trait::async_trait;
use chat_core::ports::{WebhookDelivery, WebhookSender};
use std::time::Duration;

/// How long the host has to answer one attempt.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

pub struct HttpWebhooks {
    client: reqwest::Client,
    url: String,
    app_key: String,
    signing_key: ring::hmac::Key,
}

impl HttpWebhooks {
    /// `link_check` sets TCP keepalive on the pooled connections to the host, so one
    /// whose peer vanished is dropped by the kernel rather than tried again.
    pub fn new(
        url: String,
        app_key: String,
        app_secret: &[u8],
        link_check: Duration,
    ) -> anyhow::Result<Self> {
        let client = crate::outbound::client(ANSWER_WITHIN, link_check)?;
        Ok(Self {
            client,
            url,
            app_key,
            signing_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, app_secret),
        })
    }
}

#[async_trait]
impl WebhookSender for HttpWebhooks {
    async fn deliver(&self, delivery: &WebhookDelivery) -> Result<(), String> {
        let signature = hex::encode(ring::hmac::sign(
            &self.signing_key,
            delivery.body.as_bytes(),
        ));
        let answer = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Pusher-Key", &self.app_key)
            .header("X-Pusher-Signature", signature)
            .header("X-Chat-Delivery", &delivery.id)
            .body(delivery.body.clone())
            .send()
            .await
            // The error names the host and what failed, never the body.
            .map_err(|e| format!("webhook: {}", e.without_url()))?;
        match answer.status() {
            status if status.is_success() => Ok(()),
            status => Err(format!("webhook: the host answered {status}")),
        }
    }
}
