use async_trait::async_trait;
use chat_core::ports::{ChatEvent, EventBus, EventSubscription, StoreResult};
use tokio::sync::broadcast;

/// Fan-out within one process. A subscriber more than `capacity` events behind skips
/// what it missed instead of holding memory.
#[derive(Debug, Clone)]
pub struct MemoryEventBus(broadcast::Sender<ChatEvent>);

impl MemoryEventBus {
    pub fn new(capacity: usize) -> Self {
        Self(broadcast::channel(capacity.max(1)).0)
    }
}

impl Default for MemoryEventBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

#[async_trait]
impl EventBus for MemoryEventBus {
    async fn publish(&self, event: ChatEvent) -> StoreResult<()> {
        // No subscriber is not an error: nobody is listening.
        let _ = self.0.send(event);
        Ok(())
    }

    async fn subscribe(&self) -> StoreResult<Box<dyn EventSubscription>> {
        Ok(Box::new(Subscription(self.0.subscribe())))
    }
}

struct Subscription(broadcast::Receiver<ChatEvent>);

#[async_trait]
impl EventSubscription for Subscription {
    async fn next(&mut self) -> Option<ChatEvent> {
        loop {
            match self.0.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
