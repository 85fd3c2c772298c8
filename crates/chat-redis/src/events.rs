use crate::{codec, Redis};
use async_trait::async_trait;
use chat_core::ports::{ChatEvent, EventBus, EventSubscription, Received, StoreResult};
use chat_core::StoreError;
use deadpool_redis::redis;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// Events over Redis pub/sub, so that a post on one instance reaches the subscribers of
/// every instance. Each bus keeps one subscribed connection, reconnecting with backoff
/// when it drops, and fans its events out to local subscribers through a bounded
/// channel. Pub/sub is at most once: events published while the connection is down are
/// not replayed; so a subscriber is told ([`Received::Missed`]) when the connection
/// came back after a drop, and when it fell further behind than the channel holds, and
/// its clients catch up by listing the thread.
///
/// Publishing queues the event for one task per bus, which sends the queue in order,
/// as one pipeline of what accumulated while the previous one was in flight: a post
/// does not wait for Redis to acknowledge its event. While the event channel is down,
/// publishing waits for it up to the operation deadline and then fails, so callers
/// still learn that Redis is unreachable (a whisper then falls back to this instance).
#[derive(Clone)]
pub struct RedisEventBus {
    redis: Redis,
    local: broadcast::Sender<Received>,
    connected: watch::Receiver<bool>,
    outbox: mpsc::Sender<Vec<u8>>,
    _tasks: Arc<[AbortOnDrop; 2]>,
}

/// Events queued for publishing, at most; past it `publish` fails (and is logged).
const OUTBOX: usize = 8192;
/// Events sent in one pipeline, at most.
const PIPELINE: usize = 256;

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RedisEventBus {
    /// Starts the listener (needs a Tokio runtime). Subscribing waits for it.
    pub fn start(redis: Redis, capacity: usize) -> Self {
        let channel = redis.key("events");
        let (local, _) = broadcast::channel(capacity.max(1));
        let (connected_tx, connected) = watch::channel(false);
        let listener = tokio::spawn(listen(
            redis.client.clone(),
            channel.clone(),
            local.clone(),
            connected_tx,
        ));
        let (outbox, queued) = mpsc::channel(OUTBOX);
        let publisher = tokio::spawn(publish_queued(redis.clone(), channel, queued));
        Self {
            redis,
            local,
            connected,
            outbox,
            _tasks: Arc::new([AbortOnDrop(listener), AbortOnDrop(publisher)]),
        }
    }
}

/// Sends queued events in order, pipelining the ones that are waiting.
async fn publish_queued(redis: Redis, channel: String, mut queued: mpsc::Receiver<Vec<u8>>) {
    let mut batch = Vec::with_capacity(PIPELINE);
    while queued.recv_many(&mut batch, PIPELINE).await > 0 {
        let events = batch.len();
        let mut pipeline = redis::pipe();
        for payload in batch.drain(..) {
            pipeline.cmd("PUBLISH").arg(&channel).arg(payload).ignore();
        }
        let sent = redis
            .run(|mut c| async move { pipeline.query_async::<()>(&mut c).await })
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, events, "could not publish events");
        }
    }
}

/// Keeps one connection subscribed to `channel`, forwarding what arrives.
async fn listen(
    client: redis::Client,
    channel: String,
    local: broadcast::Sender<Received>,
    connected: watch::Sender<bool>,
) {
    let mut backoff = Duration::from_millis(50);
    // Whether a connection was lost: what was published meanwhile never arrives.
    let mut lost = false;
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(Duration::from_secs(5), subscribed).await {
            Ok(Ok(pubsub)) => {
                backoff = Duration::from_millis(50);
                connected.send_replace(true);
                tracing::info!("subscribed to the Redis event channel");
                if lost {
                    drop(local.send(Received::Missed { skipped: 0 }));
                }
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    match codec::decode_event(msg.get_payload_bytes()) {
                        // No local subscriber is not an error.
                        Ok(event) => drop(local.send(Received::Event(event))),
                        Err(error) => tracing::warn!(%error, "skipped an undecodable event"),
                    }
                }
                connected.send_replace(false);
                lost = true;
                tracing::warn!("lost the Redis event channel; reconnecting");
            }
            Ok(Err(error)) => tracing::warn!(%error, "cannot subscribe to the Redis event channel"),
            Err(_) => tracing::warn!("subscribing to the Redis event channel timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

#[async_trait]
impl EventBus for RedisEventBus {
    async fn publish(&self, event: ChatEvent) -> StoreResult<()> {
        self.wait_connected().await?;
        self.outbox
            .try_send(codec::encode_event(&event))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    StoreError::Unavailable("redis: the event queue is full".into())
                }
                mpsc::error::TrySendError::Closed(_) => {
                    StoreError::Unavailable("redis: the event publisher stopped".into())
                }
            })
    }

    /// Waits (within the operation deadline) until the listener is subscribed, so that
    /// every event published after this returns is delivered.
    async fn subscribe(&self) -> StoreResult<Box<dyn EventSubscription>> {
        let receiver = self.local.subscribe();
        self.wait_connected().await?;
        Ok(Box::new(Subscription(receiver)))
    }
}

impl RedisEventBus {
    /// Until the listener is subscribed, within the operation deadline.
    async fn wait_connected(&self) -> StoreResult<()> {
        let mut connected = self.connected.clone();
        tokio::time::timeout(self.redis.settings.op_timeout, connected.wait_for(|c| *c))
            .await
            .map_err(|_| StoreError::Unavailable("redis: event channel not subscribed".into()))?
            .map_err(|_| StoreError::Unavailable("redis: event listener stopped".into()))?;
        Ok(())
    }
}

struct Subscription(broadcast::Receiver<Received>);

#[async_trait]
impl EventSubscription for Subscription {
    async fn next(&mut self) -> Option<Received> {
        match self.0.recv().await {
            Ok(received) => Some(received),
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                tracing::warn!(skipped, "an event subscriber fell behind");
                Some(Received::Missed { skipped })
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}
