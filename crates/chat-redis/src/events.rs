use crate::{codec, Redis, Topology};
use async_trait::async_trait;
use chat_core::ports::{ChatEvent, EventBus, EventSubscription, Interest, Received, StoreResult};
use chat_core::{StoreError, ThreadId};
use deadpool_redis::redis::aio::{PubSubSink, PubSubStream};
use deadpool_redis::redis::cluster::ClusterClientBuilder;
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo,
};
use deadpool_redis::redis::{self, PushInfo, PushKind, RedisError};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
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
/// A subscribed connection is silent while no event flows, so a link that stops
/// carrying anything without closing (a partition, a load balancer that dropped the
/// flow) would go unnoticed: the listener pings it every half of
/// [`RedisSettings::link_check`](crate::RedisSettings) and gives the answer, and every
/// `SUBSCRIBE`, the other half; a link that misses either is dropped and replaced like
/// one that broke. [`EventLinkHealth`] tells `/readyz` and `/metrics` how it goes.
///
/// Publishing queues the event for one task per bus, which sends the queue in order,
/// as pipelines of what accumulated while the previous ones were in flight: a post
/// does not wait for Redis to acknowledge its event. An event that cannot be published
/// (the link is down, the queue is full, its pipeline failed) is not retried late,
/// out of order: its thread is remembered, and once publishing works again the bus
/// publishes [`ChatEvent::EventsLost`] for it, so every instance tells the thread's
/// subscribers to resync. While the link is down, publishing fails at once (only
/// before the first connection does it wait, up to the operation deadline), so
/// callers learn that Redis is unreachable.
#[derive(Clone)]
pub struct RedisEventBus {
    redis: Redis,
    local: broadcast::Sender<Received>,
    connected: watch::Receiver<bool>,
    outbox: mpsc::Sender<ChatEvent>,
    follows: mpsc::UnboundedSender<Follow>,
    health: EventLinkHealth,
    /// Threads whose events could not be published since the last
    /// [`ChatEvent::EventsLost`] announced them.
    lost: Lost,
    _tasks: Arc<[AbortOnDrop; 2]>,
}

/// Threads some of whose events could not be published, shared by `publish` and the
/// publishing task.
#[derive(Clone, Default)]
struct Lost(Arc<std::sync::Mutex<BTreeSet<ThreadId>>>);

impl Lost {
    fn add(&self, threads: impl IntoIterator<Item = ThreadId>) {
        let mut lost = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lost.extend(threads);
    }

    fn take(&self) -> BTreeSet<ThreadId> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn is_empty(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }
}

/// How the bus's subscribed connection is doing, for `/readyz` and `/metrics`.
#[derive(Clone)]
pub struct EventLinkHealth(Arc<LinkHealth>);

struct LinkHealth {
    started: std::time::Instant,
    /// Milliseconds after `started` at which the link was last known alive, plus one
    /// (0: never).
    alive_at: AtomicU64,
    checks_failed: AtomicU64,
    replaced: AtomicU64,
    link_check: Duration,
}

impl EventLinkHealth {
    fn new(link_check: Duration) -> Self {
        Self(Arc::new(LinkHealth {
            started: std::time::Instant::now(),
            alive_at: AtomicU64::new(0),
            checks_failed: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
            link_check,
        }))
    }

    /// The link answered (a heartbeat, a confirmation) or carried an event.
    fn alive(&self) {
        let ms = self.0.started.elapsed().as_millis() as u64 + 1;
        self.0.alive_at.store(ms, Ordering::Relaxed);
    }

    /// How long ago the subscribed connection was last known alive; `None` before it
    /// ever was.
    pub fn since_alive(&self) -> Option<Duration> {
        match self.0.alive_at.load(Ordering::Relaxed) {
            0 => None,
            at => Some(
                self.0
                    .started
                    .elapsed()
                    .saturating_sub(Duration::from_millis(at - 1)),
            ),
        }
    }

    /// Whether the link was known alive within the link check (a live link answers a
    /// heartbeat every half of it, within the other half).
    pub fn is_up(&self) -> bool {
        self.since_alive()
            .is_some_and(|ago| ago <= self.0.link_check)
    }

    /// Heartbeats and subscriptions that failed or missed their deadline.
    pub fn checks_failed(&self) -> u64 {
        self.0.checks_failed.load(Ordering::Relaxed)
    }

    /// Subscribed connections replaced after one was lost.
    pub fn links_replaced(&self) -> u64 {
        self.0.replaced.load(Ordering::Relaxed)
    }
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
        let health = EventLinkHealth::new(redis.settings.link_check);
        let listener = tokio::spawn(listen(
            redis.clone(),
            local.clone(),
            connected_tx,
            changes,
            health.clone(),
        ));
        let (outbox, queued) = mpsc::channel(OUTBOX);
        let lost = Lost::default();
        let publisher = tokio::spawn(publish_queued(redis.clone(), queued, lost.clone()));
        Self {
            redis,
            local,
            connected,
            outbox,
            follows,
            health,
            lost,
            _tasks: Arc::new([AbortOnDrop(listener), AbortOnDrop(publisher)]),
        }
    }

    /// The subscribed connection's health, for readiness and metrics.
    pub fn health(&self) -> EventLinkHealth {
        self.health.clone()
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
/// together. A thread's events keep their order either way. The threads of events
/// that could not be sent are remembered, and [`ChatEvent::EventsLost`] for them goes
/// first in the next round that can be sent (retried every half second meanwhile).
async fn publish_queued(redis: Redis, mut queued: mpsc::Receiver<ChatEvent>, lost: Lost) {
    let mut batch = Vec::with_capacity(PIPELINE);
    loop {
        tokio::select! {
            received = queued.recv_many(&mut batch, PIPELINE) => if received == 0 {
                return;
            },
            () = tokio::time::sleep(Duration::from_millis(500)), if !lost.is_empty() => {}
        }
        let announced = lost.take();
        let events: Vec<ChatEvent> = announced
            .iter()
            .map(|&thread_id| ChatEvent::EventsLost { thread_id })
            .chain(batch.drain(..))
            .collect();
        if let Err(error) = publish_now(&redis, &events).await {
            lost.add(events.iter().map(ChatEvent::thread_id));
            tracing::warn!(%error, events = events.len(), "could not publish events; their threads' subscribers will be told to resync");
        } else if !announced.is_empty() {
            tracing::info!(
                threads = announced.len(),
                "announced threads whose events were lost"
            );
        }
    }
}

/// Sends `events` in order, as pipelines, within the operation deadline.
async fn publish_now(redis: &Redis, events: &[ChatEvent]) -> Result<(), StoreError> {
    let command = if redis.is_cluster() {
        "SPUBLISH"
    } else {
        "PUBLISH"
    };
    let mut pipelines: BTreeMap<Option<ThreadId>, redis::Pipeline> = BTreeMap::new();
    for event in events {
        let thread = event.thread_id();
        let group = redis.is_cluster().then_some(thread);
        pipelines
            .entry(group)
            .or_default()
            .cmd(command)
            .arg(redis.event_channel(thread))
            .arg(codec::encode_event(event))
            .ignore();
    }
    let sent = futures::future::join_all(pipelines.into_values().map(|pipeline| {
        redis.run(|mut c| async move { pipeline.query_async::<()>(&mut c).await })
    }))
    .await;
    sent.into_iter().collect::<Result<Vec<()>, _>>().map(drop)
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

    /// A heartbeat: `PING` on the subscribed connection (allowed in subscribed mode),
    /// or on every master's connection of a cluster.
    async fn ping(&mut self) -> Result<(), RedisError> {
        match self {
            Self::Node { sink, .. } => sink.ping::<redis::Value>().await.map(drop),
            Self::Cluster { connection, .. } => {
                let every_master = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::AllSucceeded),
                ));
                connection
                    .route_command(redis::cmd("PING"), every_master)
                    .await
                    .map(drop)
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
/// arrives, and applies follow changes in the order they were made. The connection is
/// pinged every half of the link check; a heartbeat or a (un)subscription that does
/// not answer within the other half counts as a lost connection.
async fn listen(
    redis: Redis,
    local: broadcast::Sender<Received>,
    connected: watch::Sender<bool>,
    mut changes: mpsc::UnboundedReceiver<Follow>,
    health: EventLinkHealth,
) {
    // Interests per followed thread: subscribed while above zero.
    let mut followed: HashMap<ThreadId, usize> = HashMap::new();
    let mut backoff = Duration::from_millis(50);
    let deadline = (redis.settings.link_check / 2).max(Duration::from_millis(100));
    // Whether a connection was lost: what was published meanwhile never arrives.
    let mut lost = false;
    loop {
        let subscribed = async {
            let mut feed = Feed::connect(&redis).await?;
            let channels = followed.keys().map(|t| redis.event_channel(*t)).collect();
            feed.subscribe(channels).await?;
            Ok::<_, RedisError>(feed)
        };
        match tokio::time::timeout(deadline, subscribed).await {
            Ok(Ok(mut feed)) => {
                backoff = Duration::from_millis(50);
                health.alive();
                connected.send_replace(true);
                tracing::info!(
                    threads = followed.len(),
                    "subscribed to the Redis event channels"
                );
                if lost {
                    health.0.replaced.fetch_add(1, Ordering::Relaxed);
                    drop(local.send(Received::Missed { skipped: 0 }));
                }
                let why = forward(
                    &redis,
                    &mut feed,
                    &local,
                    &mut changes,
                    &mut followed,
                    &health,
                    deadline,
                )
                .await;
                let Some(why) = why else { return };
                connected.send_replace(false);
                lost = true;
                tracing::warn!(why, "lost the Redis event channels; reconnecting");
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot subscribe to the Redis event channels")
            }
            Err(_) => {
                health.0.checks_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("subscribing to the Redis event channels timed out")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Forwards what a subscribed connection receives, applies follow changes and sends
/// the heartbeats, until the connection is lost (why, for the log) or the bus is gone
/// (`None`).
async fn forward(
    redis: &Redis,
    feed: &mut Feed,
    local: &broadcast::Sender<Received>,
    changes: &mut mpsc::UnboundedReceiver<Follow>,
    followed: &mut HashMap<ThreadId, usize>,
    health: &EventLinkHealth,
    deadline: Duration,
) -> Option<&'static str> {
    let every = redis.settings.link_check / 2;
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let failed = || {
        health.0.checks_failed.fetch_add(1, Ordering::Relaxed);
    };
    loop {
        tokio::select! {
            biased;
            payload = feed.next() => match payload {
                Some(payload) => {
                    health.alive();
                    match codec::decode_event(&payload) {
                        // No local subscriber is not an error.
                        Ok(event) => drop(local.send(Received::Event(event))),
                        Err(error) => tracing::warn!(%error, "skipped an undecodable event"),
                    }
                }
                None => return Some("the connection closed"),
            },
            change = changes.recv() => {
                let change = change?;
                match tokio::time::timeout(deadline, apply(redis, feed, followed, change)).await {
                    Ok(Ok(())) => health.alive(),
                    Ok(Err(_)) => return Some("a subscription failed"),
                    Err(_) => {
                        failed();
                        return Some("a subscription was not confirmed in time");
                    }
                }
            }
            _ = heartbeat.tick() => match tokio::time::timeout(deadline, feed.ping()).await {
                Ok(Ok(())) => health.alive(),
                Ok(Err(_)) => {
                    failed();
                    return Some("the heartbeat failed");
                }
                Err(_) => {
                    failed();
                    return Some("the heartbeat got no answer in time");
                }
            },
        }
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
    /// Queues the event. While the link is down (known dead, not merely starting), it
    /// fails at once and the thread is remembered as having lost events.
    async fn publish(&self, event: ChatEvent) -> StoreResult<()> {
        let thread = event.thread_id();
        let ready = match self.health.since_alive() {
            None => self.wait_connected().await,
            Some(_) if *self.connected.borrow() => Ok(()),
            Some(_) => Err(StoreError::Unavailable(
                "redis: the event link is down".into(),
            )),
        };
        let queued = ready.and_then(|()| {
            self.outbox.try_send(event).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    StoreError::Unavailable("redis: the event queue is full".into())
                }
                mpsc::error::TrySendError::Closed(_) => {
                    StoreError::Unavailable("redis: the event publisher stopped".into())
                }
            })
        });
        if queued.is_err() {
            self.lost.add([thread]);
        }
        queued
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
