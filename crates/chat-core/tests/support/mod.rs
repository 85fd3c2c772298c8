//! What the core's integration tests share.

use async_trait::async_trait;
use chat_core::ports::{WebhookDelivery, WebhookSender};
use std::sync::Mutex;

/// The host: takes and keeps every webhook delivery.
#[derive(Default)]
pub struct Host(pub Mutex<Vec<WebhookDelivery>>);

#[async_trait]
impl WebhookSender for Host {
    async fn deliver(&self, delivery: &WebhookDelivery) -> Result<(), String> {
        self.0
            .lock()
            .map_err(|e| e.to_string())?
            .push(delivery.clone());
        Ok(())
    }
}
