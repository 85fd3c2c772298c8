use async_trait::async_trait;
use chat_core::ports::{ChatEvent, EventBus, EventSubscription, Interest, Received, StoreResult};
use chat_core::ThreadId;
use tokio::sync::broadcast;

/// Fan-out within one process. A subscriber more than `capacity` events behind is told
/// what it missed ([`Received::Missed`]) instead of holding memory.
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

    /// One process: every subscriber gets every event already.
    async fn follow(&self, _thread: ThreadId) -> StoreResult<Interest> {
        Ok(Interest::unrouted())
    }
}

struct Subscription(broadcast::Receiver<ChatEvent>);

#[async_trait]
impl EventSubscription for Subscription {
    async fn next(&mut self) -> Option<Received> {
        match self.0.recv().await {
            Ok(event) => Some(Received::Event(event)),
            Err(broadcast::error::RecvError::Lagged(skipped)) => Some(Received::Missed { skipped }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}
