use crate::{codec, Redis, Topology};
use async_trait::async_trait;
use chat_core::ports::{ChatEvent, EventBus, EventSubscription, Interest, Received, StoreResult};
use chat_core::{StoreError, ThreadId};
use deadpool_redis::redis::aio::{PubSubSink, PubSubStream};
use deadpool_redis::redis::cluster::ClusterClientBuilder;
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{self, PushInfo, PushKind, RedisError};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Events over Redis pub/sub, routed by thread: each thread has its own channel
/// (`{prefix}{<thread>}:ev`), and an instance subscribes to it only while one of its
/// sockets follows the thread ([`EventBus::follow`]), so an instance receives and
/// decodes its own sockets' threads' events, not the whole system's. In a cluster the
/// channels are sharded (`SPUBLISH`/`SSUBSCRIBE`) and live on their thread's shard.
///
/// Each bus keeps one subscribed connection, reconnecting with backoff when it drops
/// and subscribing again to every followed thread, and fans its events out to local
/// subscribers through a bounded channel. Pub/sub is at most once: events published
/// while the connection is down are not replayed; so a subscriber is told
/// ([`Received::Missed`]) when the connection came back after a drop, and when it fell
/// further behind than the channel holds, and its clients catch up by listing the
/// thread.
///
/// Publishing queues the event for one task per bus, which sends the queue in order,
/// as pipelines of what accumulated while the previous ones were in flight: a post
/// does not wait for Redis to acknowledge its event. While the event channel is down,
/// publishing waits for it up to the operation deadline and then fails, so callers
/// still learn that Redis is unreachable (a whisper then falls back to this instance).
#[derive(Clone)]
pub struct RedisEventBus {
    redis: Redis,
    local: broadcast::Sender<Received>,
    connected: watch::Receiver<bool>,
    outbox: mpsc::Sender<ChatEvent>,
    follows: mpsc::UnboundedSender<Follow>,
    _tasks: Arc<[AbortOnDrop; 2]>,
}

/// Events queued for publishing, at most; past it `publish` fails (and is logged).
const OUTBOX: usize = 8192;
/// Events sent in one round of pipelines, at most.
const PIPELINE: usize = 256;
/// Channels in one `SUBSCRIBE` when a connection subscribes again to all of them.
const RESUBSCRIBE_CHUNK: usize = 500;

/// A change of what this instance follows, applied in order by the listener.
enum Follow {
    Add(ThreadId, oneshot::Sender<()>),
    Drop(ThreadId),
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RedisEventBus {
    /// Starts the listener (needs a Tokio runtime). Subscribing waits for it.
    pub fn start(redis: Redis, capacity: usize) -> Self {
        let (local, _) = broadcast::channel(capacity.max(1));
        let (connected_tx, connected) = watch::channel(false);
        let (follows, changes) = mpsc::unbounded_channel();
        let listener = tokio::spawn(listen(redis.clone(), local.clone(), connected_tx, changes));
        let (outbox, queued) = mpsc::channel(OUTBOX);
        let publisher = tokio::spawn(publish_queued(redis.clone(), queued));
        Self {
            redis,
            local,
            connected,
            outbox,
            follows,
            _tasks: Arc::new([AbortOnDrop(listener), AbortOnDrop(publisher)]),
        }
    }
}

impl Redis {
    /// The channel of a thread's events, in the thread's hash slot.
    fn event_channel(&self, thread: ThreadId) -> String {
        self.key(&format!("{{{thread}}}:ev"))
    }
}

/// Sends queued events in order, pipelining the ones that are waiting: one pipeline
/// on one server, one per thread in a cluster (a pipeline may not cross slots), sent
/// together. A thread's events keep their order either way.
async fn publish_queued(redis: Redis, mut queued: mpsc::Receiver<ChatEvent>) {
    let command = if redis.is_cluster() {
        "SPUBLISH"
    } else {
        "PUBLISH"
    };
    let mut batch = Vec::with_capacity(PIPELINE);
    while queued.recv_many(&mut batch, PIPELINE).await > 0 {
        let events = batch.len();
        let mut pipelines: BTreeMap<Option<ThreadId>, redis::Pipeline> = BTreeMap::new();
        for event in batch.drain(..) {
            let thread = event.thread_id();
            let group = redis.is_cluster().then_some(thread);
            pipelines
                .entry(group)
                .or_default()
                .cmd(command)
                .arg(redis.event_channel(thread))
                .arg(codec::encode_event(&event))
                .ignore();
        }
        let sent = futures::future::join_all(pipelines.into_values().map(|pipeline| {
            redis.run(|mut c| async move { pipeline.query_async::<()>(&mut c).await })
        }))
        .await;
        if let Some(Err(error)) = sent.into_iter().find(Result::is_err) {
            tracing::warn!(%error, events, "could not publish events");
        }
    }
}

/// The subscribed connection: classic pub/sub to one server (or sentinel's master),
/// or sharded pub/sub over a cluster connection, whose pushes arrive on a channel.
enum Feed {
    Node {
        sink: PubSubSink,
        stream: PubSubStream,
    },
    Cluster {
        connection: ClusterConnection,
        pushes: mpsc::UnboundedReceiver<PushInfo>,
    },
}

impl Feed {
    async fn connect(redis: &Redis) -> Result<Self, RedisError> {
        let client = match &redis.topology {
            Topology::Single(client) => client.as_ref().clone(),
            Topology::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await?,
            Topology::Cluster(seeds) => {
                let (tx, pushes) = mpsc::unbounded_channel();
                let connection = ClusterClientBuilder::new(seeds.clone())
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(tx)
                    .connection_timeout(redis.settings.op_timeout)
                    .response_timeout(redis.settings.op_timeout)
                    .build()?
                    .get_async_connection()
                    .await?;
                return Ok(Self::Cluster { connection, pushes });
            }
        };
        let (sink, stream) = client.get_async_pubsub().await?.split();
        Ok(Self::Node { sink, stream })
    }

    async fn subscribe(&mut self, channels: Vec<String>) -> Result<(), RedisError> {
        match self {
            Self::Node { sink, .. } => {
                for chunk in channels.chunks(RESUBSCRIBE_CHUNK) {
                    sink.subscribe(chunk).await?;
                }
                Ok(())
            }
            // One by one: the channels live on different shards.
            Self::Cluster { connection, .. } => {
                let each = channels.into_iter().map(|channel| {
                    let mut connection = connection.clone();
                    async move { connection.ssubscribe(channel).await }
                });
                futures::future::try_join_all(each).await.map(drop)
            }
        }
    }

    async fn unsubscribe(&mut self, channel: String) -> Result<(), RedisError> {
        match self {
            Self::Node { sink, .. } => sink.unsubscribe(channel).await,
            Self::Cluster { connection, .. } => connection.sunsubscribe(channel).await,
        }
    }

    /// The next payload; `None` when the connection is gone. In a cluster that is when
    /// any node's connection drops: redis-rs would subscribe again on its own, but only
    /// at the node it knew, which a failover may have replaced; a new connection learns
    /// the slots afresh.
    async fn next(&mut self) -> Option<Vec<u8>> {
        match self {
            Self::Node { stream, .. } => stream
                .next()
                .await
                .map(|msg| msg.get_payload_bytes().to_vec()),
            Self::Cluster { pushes, .. } => loop {
                let push = pushes.recv().await?;
                match push.kind {
                    PushKind::SMessage => {
                        if let Some(redis::Value::BulkString(payload)) =
                            push.data.into_iter().nth(1)
                        {
                            return Some(payload);
                        }
                    }
                    PushKind::Disconnection => return None,
                    // Confirmations of (un)subscribing.
                    _ => {}
                }
            },
        }
    }
}

/// Keeps one connection subscribed to the followed threads' channels, forwarding what
/// arrives, and applies follow changes in the order they were made.
async fn listen(
    redis: Redis,
    local: broadcast::Sender<Received>,
    connected: watch::Sender<bool>,
    mut changes: mpsc::UnboundedReceiver<Follow>,
) {
    // Interests per followed thread: subscribed while above zero.
    let mut followed: HashMap<ThreadId, usize> = HashMap::new();
    let mut backoff = Duration::from_millis(50);
    // Whether a connection was lost: what was published meanwhile never arrives.
    let mut lost = false;
    loop {
        let subscribed = async {
            let mut feed = Feed::connect(&redis).await?;
            let channels = followed.keys().map(|t| redis.event_channel(*t)).collect();
            feed.subscribe(channels).await?;
            Ok::<_, RedisError>(feed)
        };
        match tokio::time::timeout(Duration::from_secs(5), subscribed).await {
            Ok(Ok(mut feed)) => {
                backoff = Duration::from_millis(50);
                connected.send_replace(true);
                tracing::info!(
                    threads = followed.len(),
                    "subscribed to the Redis event channels"
                );
                if lost {
                    drop(local.send(Received::Missed { skipped: 0 }));
                }
                loop {
                    tokio::select! {
                        biased;
                        payload = feed.next() => match payload {
                            Some(payload) => match codec::decode_event(&payload) {
                                // No local subscriber is not an error.
                                Ok(event) => drop(local.send(Received::Event(event))),
                                Err(error) => tracing::warn!(%error, "skipped an undecodable event"),
                            },
                            None => break,
                        },
                        change = changes.recv() => {
                            let Some(change) = change else { return };
                            if apply(&redis, &mut feed, &mut followed, change).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                connected.send_replace(false);
                lost = true;
                tracing::warn!("lost the Redis event channels; reconnecting");
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot subscribe to the Redis event channels")
            }
            Err(_) => tracing::warn!("subscribing to the Redis event channels timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Counts a follow change and (un)subscribes the thread's channel when its count
/// leaves or reaches zero. An error means the connection is gone; the count stands,
/// and the next connection subscribes to what is followed then.
async fn apply(
    redis: &Redis,
    feed: &mut Feed,
    followed: &mut HashMap<ThreadId, usize>,
    change: Follow,
) -> Result<(), RedisError> {
    match change {
        Follow::Add(thread, subscribed) => {
            let count = followed.entry(thread).or_default();
            *count += 1;
            if *count == 1 {
                feed.subscribe(vec![redis.event_channel(thread)]).await?;
            }
            let _ = subscribed.send(());
        }
        Follow::Drop(thread) => {
            if let Some(count) = followed.get_mut(&thread) {
                *count -= 1;
                if *count == 0 {
                    followed.remove(&thread);
                    feed.unsubscribe(redis.event_channel(thread)).await?;
                }
            }
        }
    }
    Ok(())
}

#[async_trait]
impl EventBus for RedisEventBus {
    async fn publish(&self, event: ChatEvent) -> StoreResult<()> {
        self.wait_connected().await?;
        self.outbox.try_send(event).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                StoreError::Unavailable("redis: the event queue is full".into())
            }
            mpsc::error::TrySendError::Closed(_) => {
                StoreError::Unavailable("redis: the event publisher stopped".into())
            }
        })
    }

    /// Waits (within the operation deadline) until the listener is subscribed.
    async fn subscribe(&self) -> StoreResult<Box<dyn EventSubscription>> {
        let receiver = self.local.subscribe();
        self.wait_connected().await?;
        Ok(Box::new(Subscription(receiver)))
    }

    /// Returns once the thread's channel is subscribed (at once when it already was),
    /// within the operation deadline.
    async fn follow(&self, thread: ThreadId) -> StoreResult<Interest> {
        let stopped = || StoreError::Unavailable("redis: event listener stopped".into());
        let (subscribed, confirmed) = oneshot::channel();
        self.follows
            .send(Follow::Add(thread, subscribed))
            .map_err(|_| stopped())?;
        // Counted from here: a caller that gives up still unfollows, in order.
        let follows = self.follows.clone();
        let interest = Interest::on_drop(move || drop(follows.send(Follow::Drop(thread))));
        match tokio::time::timeout(self.redis.settings.op_timeout, confirmed).await {
            Ok(Ok(())) => Ok(interest),
            // The connection broke while subscribing: the next one subscribes to it.
            Ok(Err(_)) => Err(StoreError::Unavailable(
                "redis: the event connection broke while subscribing".into(),
            )),
            Err(_) => Err(StoreError::Unavailable(
                "redis: the thread's event channel was not subscribed in time".into(),
            )),
        }
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
