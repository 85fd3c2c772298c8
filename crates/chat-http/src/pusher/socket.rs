//! One WebSocket connection: the handshake checks, then a loop over what the client
//! sends, what the hub queues for it, and the idle timer, over either WebSocket server
//! ([`super::transport`]).

use super::channel::Channel;
use super::grant::{now_unix, ChannelData, Holder};
use super::hub::{Frame, Outbound, Subscriber};
use super::protocol::{self, code, ClientEvent, ClientFrame, Subscription};
use super::transport::{actix_incoming, Gone, Incoming, Outgoing};
use super::Realtime;
use crate::error::ApiError;
use crate::metric_names::names;
use crate::state::HttpState;
use actix_web::{web, HttpRequest, HttpResponse};
use chat_core::ports::Interest;
use chat_core::ChatService;
use futures::{FutureExt, Stream, StreamExt};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

/// Largest frame a client may send (Pusher's limit for a client event's data is 10 KB).
const MAX_FRAME_BYTES: usize = 16 * 1024;
/// How long a pinged socket has at most to answer before it is closed (less when the
/// activity timeout is shorter).
const PONG_GRACE: Duration = Duration::from_secs(30);
/// Channels one socket may join.
const MAX_CHANNELS_PER_SOCKET: usize = 100;
/// Queued frames taken together for one write, at most.
const MAX_FRAMES_PER_WRITE: usize = 32;

/// `GET /app/{key}`: the Pusher WebSocket.
pub async fn connect(
    state: web::Data<HttpState>,
    realtime: web::Data<Realtime>,
    key: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let realtime = realtime.into_inner();
    if !state.service.settings().enabled {
        return Err(ApiError::Disabled.into());
    }
    let origin = req
        .headers()
        .get(actix_web::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let refusal = refusal(&realtime, &key, req.query_string(), origin);
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    actix_web::rt::spawn(async move {
        match refusal {
            Some((code, message)) => refuse(session, code, message).await,
            None => {
                Connection::new(realtime, session, Arc::new(state.service.clone()))
                    .run(actix_incoming(stream))
                    .await
            }
        }
    });
    Ok(response)
}

/// Why the handshake is refused, as the protocol says it: an error frame, then a close
/// with the same code (4000–4099: clients do not reconnect).
pub(crate) fn refusal(
    realtime: &Realtime,
    key: &str,
    query: &str,
    origin: Option<&str>,
) -> Option<(u16, &'static str)> {
    let settings = realtime.settings();
    if key != settings.key {
        return Some((code::APP_NOT_FOUND, "Application does not exist"));
    }
    let protocol = web::Query::<std::collections::HashMap<String, String>>::from_query(query)
        .ok()
        .and_then(|q| q.get("protocol").cloned());
    match protocol.as_deref() {
        None => return Some((code::NO_PROTOCOL, "No protocol version supplied")),
        Some("7") => {}
        Some(_) => return Some((code::UNSUPPORTED_PROTOCOL, "Unsupported protocol version")),
    }
    // Browsers always send Origin; a client without one is not a browser page that
    // another site could have opened.
    if let (Some(allowed), Some(origin)) = (&settings.allowed_origins, origin) {
        if !allowed.iter().any(|a| a == origin) {
            return Some((code::UNAUTHORIZED, "Origin not allowed"));
        }
    }
    None
}

pub(crate) async fn refuse(mut session: impl Outgoing, code: u16, message: &'static str) {
    let _ = session.text(&protocol::error(Some(code), message)).await;
    session.close(Some((code, message.into()))).await;
}

/// One of a socket's subscriptions: who holds it, and the thread's events routed here
/// while it lasts.
struct Subscribed {
    holder: Option<Holder>,
    _events: Interest,
}

/// A subscription request that may be made: its channel, who holds it (none when the
/// host signed it itself), and on a presence channel the member's `user_info`.
struct Admitted {
    key: Channel,
    holder: Option<Holder>,
    info: Option<String>,
}

/// Why a subscription is refused: the status and message of its
/// `pusher:subscription_error`.
struct Refusal(u16, &'static str);

pub(crate) struct Connection<O: Outgoing> {
    realtime: Arc<Realtime>,
    session: O,
    id: u64,
    socket_id: String,
    queue: mpsc::Sender<Outbound>,
    inbox: mpsc::Receiver<Outbound>,
    overflowed: Arc<Notify>,
    /// The channels subscribed to.
    channels: HashMap<Channel, Subscribed>,
    client_events: RateLimit,
    /// Relays client events, so that every instance's subscribers get them; shared by
    /// the listener's sockets.
    service: Arc<ChatService>,
}

impl<O: Outgoing> Connection<O> {
    pub(crate) fn new(realtime: Arc<Realtime>, session: O, service: Arc<ChatService>) -> Self {
        let (queue, inbox) = mpsc::channel(realtime.settings().send_buffer.max(1));
        let per_second = realtime.settings().client_events_per_second;
        Self {
            id: realtime.hub().connection_id(),
            socket_id: socket_id(),
            realtime,
            session,
            queue,
            inbox,
            overflowed: Arc::new(Notify::new()),
            channels: HashMap::new(),
            client_events: RateLimit::per_second(per_second),
            service,
        }
    }

    pub(crate) async fn run(mut self, stream: impl Stream<Item = Incoming> + Unpin) {
        // Without randomness no socket id is safe from collisions (sockets sharing one
        // would skip each other's events as their own): the client comes back later.
        if self.socket_id.is_empty() {
            tracing::error!("the system's random generator failed: a socket was refused");
            let refusal = reason(code::RECONNECT, "Server error: reconnect");
            self.session.close(Some(refusal)).await;
            return;
        }
        let open = metrics::gauge!(names::WS_CONNECTIONS);
        open.increment(1.0);
        let close = self.serve(stream).await;
        let subscribed: Vec<Channel> = self.channels.keys().copied().collect();
        for channel in subscribed {
            self.leave(channel);
        }
        open.decrement(1.0);
        self.session.close(close).await;
    }

    /// Greets the client, then serves it until the socket ends: what it sends, what the
    /// hub queues for it, the instance's signals and the idle timer, each wake handled
    /// by one method. Returns how to close (`None`: a normal close, or nothing to send).
    async fn serve(&mut self, mut stream: impl Stream<Item = Incoming> + Unpin) -> Closing {
        let timeout = self.realtime.settings().activity_timeout;
        let hello = protocol::connection_established(&self.socket_id, timeout.as_secs());
        if self.session.text(&hello).await.is_err() {
            return None;
        }
        let delivered = metrics::counter!(names::WS_EVENTS_DELIVERED);
        let mut draining = self.realtime.hub().draining();
        // A socket that arrives while the instance drains is closed at once too.
        if *draining.borrow_and_update() {
            draining.mark_changed();
        }
        // The rare signals stay registered from one wake to the next: a `changed()` or
        // `notified()` made anew in every pass of the loop would register with, and then
        // leave, a waiter list every socket shares, under its lock, once per delivery.
        // Fused: a signal whose sender is gone stays pending rather than being polled
        // again after it completed.
        let mut drained = std::pin::pin!(draining.changed().fuse());
        let resyncs = futures::stream::unfold(self.realtime.hub().resyncs(), |mut rx| async {
            rx.changed().await.ok()?;
            Some(((), rx))
        });
        let mut resyncs = std::pin::pin!(resyncs.fuse());
        let overflowed = self.overflowed.clone();
        let mut overflow = std::pin::pin!(overflowed.notified().fuse());
        let mut idle = Idle::new(timeout);
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        // What was taken from the inbox together, and its frames to write at once; both
        // empty between wakes.
        let mut queued = Vec::new();
        let mut frames = Vec::new();
        loop {
            let flow = tokio::select! {
                message = stream.next() => {
                    idle.heard();
                    self.on_message(message.unwrap_or(Incoming::Broken)).await
                }
                // Never 0 while the socket holds its own sender; a closed queue would
                // disable the branch.
                1.. = self.inbox.recv_many(&mut queued, MAX_FRAMES_PER_WRITE) => {
                    self.on_queued(&mut queued, &mut frames, &delivered).await
                }
                Ok(()) = &mut drained => {
                    ControlFlow::Break(Some(reason(code::RECONNECT, "The server is restarting: reconnect")))
                }
                Some(()) = resyncs.next() => self.on_resync(),
                () = &mut overflow => {
                    metrics::counter!(names::WS_OVERFLOWS).increment(1);
                    ControlFlow::Break(Some(reason(code::OVER_CAPACITY, "Over capacity: events were not read fast enough")))
                }
                _ = ticks.tick() => self.on_tick(&mut idle).await,
            };
            if let ControlFlow::Break(closing) = flow {
                return closing;
            }
        }
    }

    /// A frame from the client (text, ping, close) or the stream's end.
    async fn on_message(&mut self, message: Incoming) -> ControlFlow<Closing> {
        let sent = match message {
            // Boxed: a client's frames are rare (subscribe, ping), and inline their
            // future would enlarge every socket's task for as long as it lives.
            Incoming::Text(text) => Box::pin(self.handle(&text)).await,
            Incoming::Ping(bytes) => self.session.pong(bytes).await,
            Incoming::Close => return ControlFlow::Break(None),
            Incoming::Other => Ok(()),
            Incoming::Broken => {
                return ControlFlow::Break(Some(reason(PROTOCOL_ERROR, "Protocol error")))
            }
        };
        still_open(sent)
    }

    /// What the hub queued for this socket, written.
    async fn on_queued(
        &mut self,
        queued: &mut Vec<Outbound>,
        frames: &mut Vec<Frame>,
        delivered: &metrics::Counter,
    ) -> ControlFlow<Closing> {
        let events = queued
            .iter()
            .filter(|q| matches!(q, Outbound::Frame(_)))
            .count();
        match self.send_queued(queued, frames).await {
            Ok(Flushed::Open) => {
                delivered.increment(events as u64);
                ControlFlow::Continue(())
            }
            Err(Gone) => ControlFlow::Break(None),
            Ok(Flushed::Resync) => {
                metrics::counter!(names::WS_RESYNCS).increment(1);
                ControlFlow::Break(Some(reason(code::RECONNECT, EVENTS_MISSED)))
            }
        }
    }

    /// The instance may have lost events: a socket subscribed to anything reconnects.
    fn on_resync(&self) -> ControlFlow<Closing> {
        if self.channels.is_empty() {
            return ControlFlow::Continue(());
        }
        metrics::counter!(names::WS_RESYNCS).increment(1);
        ControlFlow::Break(Some(reason(code::RECONNECT, EVENTS_MISSED)))
    }

    /// Every second: expired subscriptions end, a quiet client is pinged, and one that
    /// stays quiet is closed.
    async fn on_tick(&mut self, idle: &mut Idle) -> ControlFlow<Closing> {
        if Box::pin(self.end_expired()).await.is_err() {
            return ControlFlow::Break(None);
        }
        match idle.check() {
            IdleCheck::Fine => ControlFlow::Continue(()),
            IdleCheck::Ping => still_open(self.session.text(&protocol::ping()).await),
            IdleCheck::Silent => ControlFlow::Break(Some(reason(
                code::PONG_NOT_RECEIVED,
                "Pong reply not received",
            ))),
        }
    }

    /// Sends what the hub queued, in order: runs of frames written together, and a
    /// revocation as the client is told it; stops at a resync, after what came before.
    async fn send_queued(
        &mut self,
        queued: &mut Vec<Outbound>,
        frames: &mut Vec<Frame>,
    ) -> Result<Flushed, Gone> {
        for item in queued.drain(..) {
            match item {
                Outbound::Frame(frame) => frames.push(frame),
                Outbound::Resync => {
                    self.write(frames).await?;
                    return Ok(Flushed::Resync);
                }
                Outbound::Revoked(channel) => {
                    self.write(frames).await?;
                    // The hub no longer delivers it; the client is told why.
                    if self.leave(channel) {
                        let ended = protocol::subscription_error(
                            &channel.name(),
                            403,
                            "Access to this thread was revoked",
                        );
                        self.session.text(&ended).await?;
                    }
                }
            }
        }
        self.write(frames).await?;
        Ok(Flushed::Open)
    }

    /// Writes the frames gathered so far, together, and empties the list.
    async fn write(&mut self, frames: &mut Vec<Frame>) -> Result<(), Gone> {
        if !frames.is_empty() {
            self.session.texts(frames).await?;
            frames.clear();
        }
        Ok(())
    }

    /// Ends every subscription whose token expired (plus the leeway), telling the
    /// client.
    async fn end_expired(&mut self) -> Result<(), Gone> {
        let now = now_unix();
        let expired: Vec<Channel> = self
            .channels
            .iter()
            .filter(|(_, s)| s.holder.is_some_and(|h| h.expired(now)))
            .map(|(channel, _)| *channel)
            .collect();
        for channel in expired {
            self.leave(channel);
            let ended =
                protocol::subscription_error(&channel.name(), 401, "The authorization expired");
            self.send(ended).await?;
        }
        Ok(())
    }

    /// Handles one text frame.
    async fn handle(&mut self, text: &str) -> Result<(), Gone> {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => frame,
            Err(error) if error.is_syntax() || error.is_eof() => {
                return self.send(protocol::error(None, "Invalid JSON")).await;
            }
            // JSON, but no frame of the protocol (no `event`, say).
            Err(_) => ClientFrame::Other,
        };
        match frame {
            ClientFrame::Ping => self.send(protocol::pong()).await,
            ClientFrame::Pong => Ok(()),
            ClientFrame::Subscribe { data } => self.subscribe(&data).await,
            ClientFrame::Unsubscribe { data } => {
                self.unsubscribe(&data.channel);
                Ok(())
            }
            ClientFrame::Other => match serde_json::from_str::<ClientEvent>(text) {
                Ok(client) if client.event.starts_with("client-") => {
                    self.relay(&client.event, &client.channel, &client.data)
                        .await
                }
                _ => self.send(protocol::error(None, "Unsupported event")).await,
            },
        }
    }

    fn unsubscribe(&mut self, channel: &str) {
        if let Some(channel) = Channel::parse(channel) {
            self.leave(channel);
        }
    }

    /// Leaves `channel`: the hub delivers it here no more, and the channel registry
    /// lets go of this socket's hold. `false` when the socket was not subscribed.
    fn leave(&mut self, channel: Channel) -> bool {
        let Some(Subscribed { holder, .. }) = self.channels.remove(&channel) else {
            return false;
        };
        self.realtime.hub().unsubscribe(channel, self.id);
        self.realtime
            .release(&self.service, channel, self.id, holder.map(|h| h.user));
        true
    }

    async fn subscribe(&mut self, data: &Subscription) -> Result<(), Gone> {
        let channel = data.channel.as_str();
        let Admitted { key, holder, info } = match self.admit(data) {
            Ok(admitted) => admitted,
            Err(refusal) => return self.refuse(channel, refusal).await,
        };
        let thread = key.thread;
        // The thread's events come to this instance from now on (before the client
        // learns that it is subscribed, so that it misses nothing after that).
        let events = match self.service.follow_events(thread).await {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(thread_id = %thread, %error, "subscription refused: the event bus is unavailable");
                let refusal = Refusal(503, "Real-time delivery is unavailable; try again");
                return self.refuse(channel, refusal).await;
            }
        };
        self.channels.insert(
            key,
            Subscribed {
                holder,
                _events: events,
            },
        );
        self.realtime.hub().subscribe(
            key,
            self.id,
            Subscriber {
                queue: self.queue.clone(),
                overflowed: self.overflowed.clone(),
                holder,
                socket_id: self.socket_id.as_str().into(),
                info: info.as_deref().map(Arc::from),
            },
        );
        match (info, holder) {
            (Some(info), Some(holder)) => self.join(channel, key, holder, &info).await,
            _ => {
                self.realtime
                    .hold(&self.service, key, self.id, holder.map(|h| h.user));
                self.send(protocol::subscription_succeeded(channel)).await
            }
        }
    }

    /// Whether a subscription may be made, from what it carries alone: the channel's
    /// name, the signature, the signed channel data (who subscribes, until when, and
    /// for presence who they are), and this socket's number of channels.
    fn admit(&self, data: &Subscription) -> Result<Admitted, Refusal> {
        let channel = data.channel.as_str();
        let key = Channel::parse(channel).ok_or(Refusal(
            403,
            "Only private-chat.{threadId} and presence-chat.{threadId} channels are served",
        ))?;
        let auth = data.auth.as_str();
        let channel_data = data.channel_data.as_deref();
        if !self
            .realtime
            .verify(&self.socket_id, channel, channel_data, auth)
        {
            tracing::info!(thread_id = %key.thread, "subscription refused: bad signature");
            return Err(Refusal(401, "Invalid signature"));
        }
        // Signed channel data names who subscribes and until when; a subscription the
        // host signed itself (the app secret, no channel data) has no holder here.
        let leeway = self.realtime.settings().grant_leeway.as_secs();
        let holder = match channel_data {
            Some(raw) => {
                Some(ChannelData::holder(raw, leeway).ok_or(Refusal(401, "Invalid channel data"))?)
            }
            None => None,
        };
        if holder.is_some_and(|h| h.expired(now_unix())) {
            return Err(Refusal(401, "The authorization expired"));
        }
        // A presence channel names its member: only a grant of this service does.
        let info = match (key.presence, holder, channel_data) {
            (true, Some(_), Some(raw)) => ChannelData::user_info(raw),
            _ => None,
        };
        if key.presence && info.is_none() {
            return Err(Refusal(401, "Presence needs channel data"));
        }
        if !self.channels.contains_key(&key) && self.channels.len() >= MAX_CHANNELS_PER_SOCKET {
            return Err(Refusal(429, "Too many channels"));
        }
        Ok(Admitted { key, holder, info })
    }

    /// Joins a presence channel this socket just subscribed to, and tells it who is
    /// there; when the registry cannot say, the subscription is undone and refused.
    async fn join(
        &mut self,
        channel: &str,
        key: Channel,
        holder: Holder,
        info: &str,
    ) -> Result<(), Gone> {
        let joined = self
            .realtime
            .join_presence(&self.service, key, self.id, holder.user, info)
            .await;
        match joined {
            Ok(members) => {
                let mut seen = std::collections::BTreeMap::new();
                for member in members {
                    if let Some(user) = member.user {
                        let info = member
                            .info
                            .and_then(|i| serde_json::from_str(&i).ok())
                            .unwrap_or(Value::Null);
                        seen.insert(user.to_string(), info);
                    }
                }
                let members: Vec<(String, Value)> = seen.into_iter().collect();
                self.send(protocol::presence_succeeded(channel, &members))
                    .await
            }
            Err(error) => {
                tracing::warn!(thread_id = %key.thread, %error, "presence: the channel registry is unavailable");
                self.channels.remove(&key);
                self.realtime.hub().unsubscribe(key, self.id);
                self.refuse(channel, Refusal(503, "Presence is unavailable; try again"))
                    .await
            }
        }
    }

    /// Tells the client its subscription to `channel` was refused, and why.
    async fn refuse(
        &mut self,
        channel: &str,
        Refusal(status, message): Refusal,
    ) -> Result<(), Gone> {
        self.send(protocol::subscription_error(channel, status, message))
            .await
    }

    /// A client event goes to the channel's other subscribers on every instance (over
    /// the event bus), only from a socket subscribed to it, within the rate limit; it is
    /// never stored. With the bus down it still reaches this instance's subscribers.
    async fn relay(&mut self, event: &str, channel: &str, data: &Value) -> Result<(), Gone> {
        let Some(key) = Channel::parse(channel).filter(|c| self.channels.contains_key(c)) else {
            let refused = protocol::error(None, "Client event rejected: not subscribed");
            return self.send(refused).await;
        };
        if !self.client_events.allow() {
            let refused = protocol::error(
                Some(code::CLIENT_EVENT_RATE_LIMIT),
                "Client event rejected due to rate limit",
            );
            return self.send(refused).await;
        }
        let relayed = self.service.relay_client_event(
            key.thread,
            key.presence,
            self.realtime.origin(self.id),
            event.to_owned(),
            data.to_string(),
        );
        if let Err(error) = relayed.await {
            tracing::warn!(%error, "client event relayed on this instance only");
            let frame = protocol::client_event(event, channel, data);
            self.realtime
                .hub()
                .publish(key, frame.into(), Some(self.id));
        }
        Ok(())
    }

    async fn send(&mut self, frame: String) -> Result<(), Gone> {
        self.session.text(&frame).await
    }
}

/// The WebSocket close code for a protocol error.
const PROTOCOL_ERROR: u16 = 1002;

fn reason(code: u16, message: &str) -> (u16, String) {
    (code, message.into())
}

/// `"<digits>.<digits>"`, random, as Pusher's socket ids look; empty when the system's
/// random generator failed (then [`Socket::run`] refuses the connection).
fn socket_id() -> String {
    let mut bytes = [0u8; 8];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return String::new();
    }
    let (high, low) = bytes.split_at(4);
    let part = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) % 1_000_000_000;
    format!("{}.{}", part(high), part(low))
}

/// A token bucket: `per_second` events, refilled continuously, bursts up to the same.
struct RateLimit {
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    fn per_second(n: u32) -> Self {
        Self {
            per_second: f64::from(n),
            tokens: f64::from(n),
            last: Instant::now(),
        }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.per_second);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How a socket is closed: a code and a reason, or `None` for a normal close.
type Closing = Option<(u16, String)>;

const EVENTS_MISSED: &str = "Events were missed: reconnect and catch up";

/// Goes on while the socket is open, else ends it without a close frame to send.
fn still_open(sent: Result<(), Gone>) -> ControlFlow<Closing> {
    match sent {
        Ok(()) => ControlFlow::Continue(()),
        Err(Gone) => ControlFlow::Break(None),
    }
}

/// How long the client has been quiet, against the activity timeout.
struct Idle {
    timeout: Duration,
    grace: Duration,
    last_heard: Instant,
    pinged: bool,
}

enum IdleCheck {
    Fine,
    /// Quiet for the activity timeout: ping it, once.
    Ping,
    /// Quiet for the grace after the ping too.
    Silent,
}

impl Idle {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            grace: timeout.min(PONG_GRACE),
            last_heard: Instant::now(),
            pinged: false,
        }
    }

    fn heard(&mut self) {
        self.last_heard = Instant::now();
        self.pinged = false;
    }

    fn check(&mut self) -> IdleCheck {
        let quiet = self.last_heard.elapsed();
        if quiet > self.timeout + self.grace {
            IdleCheck::Silent
        } else if quiet > self.timeout && !self.pinged {
            self.pinged = true;
            IdleCheck::Ping
        } else {
            IdleCheck::Fine
        }
    }
}
/// What became of a socket after writing what the hub queued for it.
enum Flushed {
    Open,
    /// Its thread's events may have been lost: close with 4200.
    Resync,
}
