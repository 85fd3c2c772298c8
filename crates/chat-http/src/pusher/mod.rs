//! Real-time delivery over the Pusher Channels protocol 7 (SPEC §6), so that pusher-js
//! and Laravel Echo work unchanged: the WebSocket at `/app/{key}`
//! ([`socket`]), the channel authorizer `POST /broadcasting/auth` ([`auth`]), and the
//! fan-out of the service's events to subscribed sockets ([`hub`]).
//!
//! Only `private-chat.{threadId}` channels exist. A socket joins one by presenting the
//! signature `/broadcasting/auth` gave it, which that route gives only to users who may
//! list the thread; the socket then receives that thread's events and nothing else.
//! Events arrive from the event bus, sealed: this instance opens each one once for its
//! own subscribers, so with Redis every instance delivers to its sockets. Client events
//! (whispers) travel the same bus, so subscribers on other instances get them too.

pub mod auth;
pub mod channel;
pub mod grant;
pub mod http_api;
pub mod hub;
pub mod listener;
mod protocol;
pub mod socket;
mod transport;

use channel::Channel;
use chat_core::ports::{ChannelMember, ChannelRegistry, ChatEvent, EventSubscription, Received};
use chat_core::{ChatEventName, ChatService, ThreadId, UserId, WebhookEvent};
use futures::stream::{FuturesOrdered, StreamExt};
use hub::Hub;
use ring::hmac;
use std::sync::Arc;
use std::time::Duration;

/// The app credentials and limits of the WebSocket server.
#[derive(Clone)]
pub struct PusherSettings {
    /// `CHAT_PUSHER_APP_ID`.
    pub app_id: String,
    /// `CHAT_PUSHER_APP_KEY`: the public key clients connect with (`/app/{key}`).
    pub key: String,
    /// `CHAT_PUSHER_APP_SECRET`: signs channel subscriptions.
    pub secret: Vec<u8>,
    /// `CHAT_ALLOWED_ORIGINS`: browser origins allowed to connect; `None` allows any.
    pub allowed_origins: Option<Vec<String>>,
    /// `CHAT_BROADCAST_EVENT_PREFIX`: `App\Events\` by default, what Echo listens for.
    pub event_prefix: String,
    /// Suggested to clients; a socket silent for longer is pinged, then closed.
    pub activity_timeout: Duration,
    /// Client events (`client-…`) a socket may send per second.
    pub client_events_per_second: u32,
    /// Frames queued for one socket before it counts as too slow and is closed.
    pub send_buffer: usize,
    /// `CHAT_JWT_LEEWAY_SECS`: how long past its token's `exp` a subscription lasts.
    pub grant_leeway: Duration,
    /// `CHAT_SUBSCRIPTION_LAPSE_SECS`: how long a subscription is held in the channel
    /// registry before it must be renewed (renewed every third of it). The
    /// subscriptions of an instance that died count that long at most; then one
    /// instance announces their departures.
    pub subscription_lapse: Duration,
}

impl PusherSettings {
    pub fn new(app_id: String, key: String, secret: Vec<u8>) -> Self {
        Self {
            app_id,
            key,
            secret,
            allowed_origins: None,
            event_prefix: "App\\Events\\".into(),
            activity_timeout: Duration::from_secs(30),
            client_events_per_second: 10,
            send_buffer: 64,
            grant_leeway: Duration::from_secs(30),
            subscription_lapse: Duration::from_secs(60),
        }
    }
}

/// The WebSocket server's shared state: settings, signing key and subscriptions.
pub struct Realtime {
    settings: PusherSettings,
    signing_key: hmac::Key,
    hub: Hub,
    /// Random per process: tells this instance's sockets from others' on the bus.
    instance: u64,
    /// Every instance's subscriptions, for the Pusher HTTP API's channel counts.
    registry: Arc<dyn ChannelRegistry>,
}

impl Realtime {
    pub fn new(settings: PusherSettings, registry: Arc<dyn ChannelRegistry>) -> Arc<Self> {
        let signing_key = hmac::Key::new(hmac::HMAC_SHA256, &settings.secret);
        let mut instance = [0u8; 8];
        // Only has to differ between instances; a failing generator leaves 0.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut instance);
        Arc::new(Self {
            settings,
            signing_key,
            hub: Hub::default(),
            instance: u64::from_be_bytes(instance),
            registry,
        })
    }

    fn member(&self, connection: u64, user: Option<UserId>, info: Option<&str>) -> ChannelMember {
        ChannelMember {
            socket: self.origin(connection),
            user,
            info: info.map(str::to_owned),
        }
    }

    /// Records a subscription in the registry, in the background: a registry that is
    /// down delays the counts, never a subscription. The first subscription anywhere
    /// makes the channel occupied (a webhook, when the host takes them).
    fn hold(&self, service: &ChatService, channel: Channel, connection: u64, user: Option<UserId>) {
        let registry = self.registry.clone();
        let held = [(channel.name(), self.member(connection, user, None))];
        let service = service.clone();
        let lapse = self.settings.subscription_lapse;
        tokio::spawn(async move {
            let until = chrono::Utc::now() + lapse;
            if let Err(error) = registry.hold(&held, until).await {
                tracing::debug!(%error, "channel registry: subscription not recorded yet");
                return;
            }
            occupancy_webhook(&service, registry.as_ref(), channel).await;
        });
    }

    /// Joins a presence channel: records the member, then answers the members now
    /// (this socket included), and announces the user when this is their first socket
    /// on the channel anywhere.
    async fn join_presence(
        &self,
        service: &ChatService,
        channel: Channel,
        connection: u64,
        user: UserId,
        info: &str,
    ) -> Result<Vec<ChannelMember>, chat_core::StoreError> {
        let me = self.member(connection, Some(user), Some(info));
        let until = chrono::Utc::now() + self.settings.subscription_lapse;
        self.registry
            .hold(&[(channel.name(), me.clone())], until)
            .await?;
        let members = self
            .registry
            .members(&channel.name(), chrono::Utc::now())
            .await?;
        let first = !members
            .iter()
            .any(|m| m.user == Some(user) && m.socket != me.socket);
        if first {
            service
                .announce_presence(
                    channel.thread,
                    user,
                    Some((info.to_owned(), self.origin(connection))),
                )
                .await;
            service
                .queue_webhook(WebhookEvent::MemberAdded {
                    channel,
                    user_id: user,
                })
                .await;
        }
        if members.len() == 1 {
            service
                .queue_webhook(WebhookEvent::ChannelOccupied { channel })
                .await;
        }
        Ok(members)
    }

    /// Forgets a subscription in the registry, in the background; on a presence
    /// channel, announces the user gone when it was their last socket there.
    fn release(
        &self,
        service: &ChatService,
        channel: Channel,
        connection: u64,
        user: Option<UserId>,
    ) {
        let registry = self.registry.clone();
        let member = self.member(connection, user, None);
        let service = service.clone();
        tokio::spawn(async move {
            let name = channel.name();
            // A presence member is stored with its info: release what this socket holds.
            let held = match channel.presence {
                false => Ok(vec![member]),
                true => registry
                    .members(&name, chrono::Utc::now())
                    .await
                    .map(|all| {
                        all.into_iter()
                            .filter(|m| m.socket == member.socket)
                            .collect::<Vec<_>>()
                    }),
            };
            let released = match held {
                Ok(held) => {
                    let mut result = Ok(());
                    for m in &held {
                        result = result.and(registry.release(&name, m).await);
                    }
                    result
                }
                Err(error) => Err(error),
            };
            if let Err(error) = released {
                tracing::debug!(%error, "channel registry: subscription left to lapse");
                return;
            }
            departed(
                &service,
                registry.as_ref(),
                channel,
                user.into_iter().collect(),
            )
            .await;
        });
    }

    /// Renews this instance's subscriptions in the registry until the process ends.
    pub async fn renew_subscriptions(self: Arc<Self>) {
        let lapse = self.settings.subscription_lapse;
        let mut every = tokio::time::interval(lapse / 3);
        loop {
            every.tick().await;
            let held: Vec<_> = self
                .hub
                .subscriptions()
                .into_iter()
                .map(|(channel, connection, user, info)| {
                    (
                        channel.name(),
                        self.member(connection, user, info.as_deref()),
                    )
                })
                .collect();
            if held.is_empty() {
                continue;
            }
            let until = chrono::Utc::now() + lapse;
            if let Err(error) = self.registry.hold(&held, until).await {
                tracing::warn!(%error, "channel registry: subscriptions not renewed");
            }
        }
    }

    /// Sends, until the process ends, what instances that died would have sent when
    /// their sockets left: every sixth of the lapse, it reaps the registry (each dead
    /// instance goes to one reaper), and for each channel it left announces presence
    /// departures (`member_removed` on every instance, and the webhook) and, when the
    /// channel is left empty, `channel_vacated`.
    pub async fn announce_departed(self: Arc<Self>, service: ChatService) {
        let every = (self.settings.subscription_lapse / 6).max(Duration::from_secs(1));
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            let reaped = match self.registry.reap(chrono::Utc::now()).await {
                Ok(reaped) => reaped,
                Err(error) => {
                    tracing::debug!(%error, "channel registry: not reaped this time");
                    continue;
                }
            };
            let mut by_channel: std::collections::BTreeMap<String, Vec<ChannelMember>> =
                std::collections::BTreeMap::new();
            for (channel, member) in reaped {
                by_channel.entry(channel).or_default().push(member);
            }
            for (name, left) in by_channel {
                let Some(channel) = Channel::parse(&name) else {
                    continue;
                };
                tracing::info!(thread_id = %channel.thread, sockets = left.len(), "subscriptions of an instance that died lapsed");
                let users = left.iter().filter_map(|m| m.user).collect();
                departed(&service, self.registry.as_ref(), channel, users).await;
            }
        }
    }

    /// The registry's view of every instance's subscriptions.
    pub fn registry(&self) -> &dyn ChannelRegistry {
        self.registry.as_ref()
    }

    /// The bus origin of one of this instance's connections.
    fn origin(&self, connection: u64) -> String {
        format!("{:x}.{connection}", self.instance)
    }

    /// The connection an origin names, if it is one of this instance's.
    fn local_connection(&self, origin: &str) -> Option<u64> {
        let (instance, connection) = origin.split_once('.')?;
        (u64::from_str_radix(instance, 16).ok()? == self.instance)
            .then(|| connection.parse().ok())
            .flatten()
    }

    pub fn settings(&self) -> &PusherSettings {
        &self.settings
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The app secret's HMAC key: subscriptions and the HTTP API's requests.
    fn signing_key(&self) -> &hmac::Key {
        &self.signing_key
    }

    /// `<key>:<hex HMAC-SHA256 of "socket_id:channel">`, or of
    /// `"socket_id:channel:channel_data"` with channel data (as Pusher signs presence
    /// subscriptions), the `auth` of a subscription.
    pub fn sign(&self, socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
        let tag = hmac::sign(
            &self.signing_key,
            signed_text(socket_id, channel, channel_data).as_bytes(),
        );
        format!("{}:{}", self.settings.key, hex::encode(tag))
    }

    /// Checks a subscription's `auth` in constant time.
    fn verify(
        &self,
        socket_id: &str,
        channel: &str,
        channel_data: Option<&str>,
        auth: &str,
    ) -> bool {
        let Some((key, signature)) = auth.split_once(':') else {
            return false;
        };
        let Ok(tag) = hex::decode(signature) else {
            return false;
        };
        key == self.settings.key
            && hmac::verify(
                &self.signing_key,
                signed_text(socket_id, channel, channel_data).as_bytes(),
                &tag,
            )
            .is_ok()
    }

    /// Delivers the service's events to this instance's subscribers until the process
    /// ends, subscribing again whenever the bus goes away.
    ///
    /// Events are prepared (a message opened with its thread's key, cached in the
    /// service, so usually without a store round trip) up to [`PREPARE_AHEAD`] at a
    /// time, and handed to the sockets in the order they were published, so each
    /// thread's events stay in id order. Preparing is what the bus waits on; only when
    /// the bus buffer overflows anyway, or the bus was lost, are events missed, and then
    /// every subscribed socket is told to reconnect and catch up (4200), never left
    /// with a silent gap.
    pub async fn deliver_events(self: Arc<Self>, service: ChatService) {
        // Whether events may have been published while this instance was not
        // subscribed: its sockets are told once, when the subscription is back (not at
        // every failed attempt, which would close them again and again).
        let mut gap = false;
        loop {
            match service.subscribe_events().await {
                Ok(events) => {
                    if gap {
                        self.missed(0);
                    }
                    self.relay(&service, events).await;
                    tracing::warn!("the event bus closed; subscribing again");
                }
                Err(error) => tracing::warn!(%error, "cannot subscribe to the event bus"),
            }
            gap = true;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn relay(&self, service: &ChatService, mut events: Box<dyn EventSubscription>) {
        // Prepared concurrently, handed out in the order received.
        let mut preparing = FuturesOrdered::new();
        loop {
            tokio::select! {
                biased;
                Some(ready) = preparing.next(), if !preparing.is_empty() => self.dispatch(ready),
                received = events.next(), if preparing.len() < PREPARE_AHEAD => match received {
                    Some(received) => preparing.push_back(self.prepare(service, received)),
                    None => break,
                },
            }
        }
        while let Some(ready) = preparing.next().await {
            self.dispatch(ready);
        }
    }

    fn dispatch(&self, ready: Ready) {
        match ready {
            Ready::Frame {
                channel,
                frame,
                except,
            } => {
                self.hub.publish(channel, frame, except);
            }
            Ready::Missed { skipped } => self.missed(skipped),
            Ready::HostFrame {
                channel,
                frame,
                except_socket,
            } => {
                match except_socket {
                    Some(socket) => self.hub.publish_except_socket(channel, frame, &socket),
                    None => self.hub.publish(channel, frame, None),
                };
            }
            Ready::Revoke { thread, users } => {
                let ended = self.hub.revoke(thread, &users);
                if ended > 0 {
                    tracing::info!(thread_id = %thread, ended, "subscriptions ended: access revoked");
                }
            }
            Ready::Resync { thread } => {
                let told = self.hub.resync_thread(thread);
                tracing::warn!(thread_id = %thread, sockets = told, "the thread's events may have been lost; its sockets are told to resync");
            }
            Ready::Nothing => {}
        }
    }

    fn missed(&self, skipped: u64) {
        metrics::counter!(crate::metric_names::names::EVENTS_MISSED).increment(skipped);
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "events missed; subscribed sockets told to reconnect"
            );
        }
        self.hub.resync_all();
    }

    /// The frame an event becomes for this instance's subscribers, if any.
    async fn prepare(&self, service: &ChatService, received: Received) -> Ready {
        let event = match received {
            Received::Event(event) => event,
            Received::Missed { skipped } => return Ready::Missed { skipped },
        };
        let thread = event.thread_id();
        if let ChatEvent::ThreadClosed { thread_id, .. } = &event {
            // Every instance drops the key it may hold, subscribers or not.
            service.thread_closed(*thread_id);
        }
        if !self.hub.has_thread(thread) {
            return Ready::Nothing;
        }
        match event {
            ChatEvent::AccessRevoked { user_ids, .. } => Ready::Revoke {
                thread,
                users: user_ids,
            },
            ChatEvent::EventsLost { .. } => Ready::Resync { thread },
            ChatEvent::HostEvent { .. }
            | ChatEvent::ClientEvent { .. }
            | ChatEvent::MemberAdded { .. }
            | ChatEvent::MemberRemoved { .. } => self.relayed_frame(thread, event),
            ChatEvent::MessageCreated(_)
            | ChatEvent::MessagesRead { .. }
            | ChatEvent::MessageRetracted { .. }
            | ChatEvent::ThreadClosed { .. } => self.chat_frame(service, thread, event).await,
        }
    }

    /// What others said on the thread's channels, relayed as it came: the host's events,
    /// clients' whispers, and who joined or left the presence channel.
    fn relayed_frame(&self, thread: ThreadId, event: ChatEvent) -> Ready {
        let (private, presence) = (Channel::private(thread), Channel::presence(thread));
        match event {
            ChatEvent::HostEvent {
                presence: on_presence,
                name,
                data,
                except_socket,
                ..
            } => {
                let channel = if on_presence { presence } else { private };
                let frame = protocol::host_event(&name, &channel.name(), &data);
                Ready::HostFrame {
                    channel,
                    frame: frame.into(),
                    except_socket,
                }
            }
            ChatEvent::ClientEvent {
                presence: on_presence,
                origin,
                name,
                data,
                ..
            } => {
                let channel = if on_presence { presence } else { private };
                let data = serde_json::from_str(&data).unwrap_or(serde_json::Value::Null);
                let frame = protocol::client_event(&name, &channel.name(), &data);
                Ready::Frame {
                    channel,
                    frame: frame.into(),
                    except: self.local_connection(&origin),
                }
            }
            ChatEvent::MemberAdded {
                user_id,
                info,
                origin,
                ..
            } => {
                let info: serde_json::Value = serde_json::from_str(&info).unwrap_or_default();
                let frame = protocol::member_added(&presence.name(), &user_id.to_string(), &info);
                Ready::Frame {
                    channel: presence,
                    frame: frame.into(),
                    except: self.local_connection(&origin),
                }
            }
            ChatEvent::MemberRemoved { user_id, .. } => {
                let frame = protocol::member_removed(&presence.name(), &user_id.to_string());
                Ready::Frame {
                    channel: presence,
                    frame: frame.into(),
                    except: None,
                }
            }
            _ => Ready::Nothing,
        }
    }

    /// One of the chat's own events ([`ChatEventName`]) on the thread's private channel;
    /// a new message is opened for it here.
    async fn chat_frame(&self, service: &ChatService, thread: ThreadId, event: ChatEvent) -> Ready {
        let (name, data) = match event {
            ChatEvent::MessageCreated(message) => {
                let id = message.id;
                match service.open_for_broadcast(message).await {
                    Ok(view) => (
                        ChatEventName::MessageCreated,
                        json_of(&crate::wire::MessageCreated {
                            message: crate::wire::Message::from(&view),
                            thread_id: thread.get(),
                        }),
                    ),
                    Err(error) => {
                        crate::metric_names::count_error(&error);
                        tracing::warn!(thread_id = %thread, message_id = %id, %error, "cannot open a message for delivery");
                        return Ready::Nothing;
                    }
                }
            }
            ChatEvent::MessagesRead {
                thread_id,
                user_id,
                up_to,
            } => (
                ChatEventName::MessagesRead,
                json_of(&crate::wire::MessagesRead {
                    thread_id: thread_id.get(),
                    user_id: user_id.get(),
                    up_to: up_to.get(),
                }),
            ),
            ChatEvent::MessageRetracted { thread_id, id } => (
                ChatEventName::MessageRetracted,
                json_of(&crate::wire::MessageRetracted {
                    thread_id: thread_id.get(),
                    id: id.get(),
                }),
            ),
            ChatEvent::ThreadClosed {
                thread_id,
                closed_at,
            } => (
                ChatEventName::ThreadClosed,
                json_of(&crate::wire::ThreadClosed {
                    thread_id: thread_id.get(),
                    status: crate::wire::ThreadStatus::Closed,
                    closed_at: crate::wire::rfc3339(closed_at),
                }),
            ),
            _ => return Ready::Nothing,
        };
        let private = Channel::private(thread);
        let frame = protocol::channel_event(
            &format!("{}{}", self.settings.event_prefix, name.as_str()),
            &private.name(),
            &data,
        );
        Ready::Frame {
            channel: private,
            frame: frame.into(),
            except: None,
        }
    }
}

/// After a subscription was held: a channel whose only subscription it is became
/// occupied. Only asked when the host takes webhooks.
async fn occupancy_webhook(
    service: &ChatService,
    registry: &dyn ChannelRegistry,
    channel: Channel,
) {
    if !service.sends_webhooks() {
        return;
    }
    match registry.members(&channel.name(), chrono::Utc::now()).await {
        Ok(members) if members.len() == 1 => {
            service
                .queue_webhook(WebhookEvent::ChannelOccupied { channel })
                .await;
        }
        Ok(_) => {}
        Err(error) => tracing::debug!(%error, "channel registry: occupancy not known"),
    }
}

fn signed_text(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// After `users`' subscriptions to `channel` went (released, or reaped from an
/// instance that died): on a presence channel each user with no other socket there is
/// announced gone (every instance's members hear `member_removed`, and the host's
/// webhook), and a channel left empty is `channel_vacated` for the host.
async fn departed(
    service: &ChatService,
    registry: &dyn ChannelRegistry,
    channel: Channel,
    mut users: Vec<UserId>,
) {
    // Who is left matters to presence members and to the host's webhooks only.
    if !channel.presence && !service.sends_webhooks() {
        return;
    }
    let name = channel.name();
    let rest = match registry.members(&name, chrono::Utc::now()).await {
        Ok(rest) => rest,
        Err(error) => {
            tracing::debug!(%error, "channel registry: who is left is not known");
            return;
        }
    };
    users.sort();
    users.dedup();
    if channel.presence {
        for user in users {
            if !rest.iter().any(|m| m.user == Some(user)) {
                service.announce_presence(channel.thread, user, None).await;
                service
                    .queue_webhook(WebhookEvent::MemberRemoved {
                        channel,
                        user_id: user,
                    })
                    .await;
            }
        }
    }
    if rest.is_empty() {
        service
            .queue_webhook(WebhookEvent::ChannelVacated { channel })
            .await;
    }
}

/// Events prepared at once by [`Realtime::deliver_events`] (a message whose thread key
/// is not cached waits for the store; the others go on meanwhile).
const PREPARE_AHEAD: usize = 64;

/// An event made ready for this instance's sockets.
enum Ready {
    Frame {
        channel: Channel,
        frame: hub::Frame,
        /// The sending socket of a client event.
        except: Option<u64>,
    },
    Missed {
        skipped: u64,
    },
    /// A host's event, for every subscriber but the socket it excludes.
    HostFrame {
        channel: Channel,
        frame: hub::Frame,
        except_socket: Option<String>,
    },
    /// These users' subscriptions to the thread end (in bus order, after what they
    /// could still see).
    Revoke {
        thread: ThreadId,
        users: Vec<chat_core::UserId>,
    },
    /// The thread's events may have been lost: its subscribed sockets resync (4200).
    Resync {
        thread: ThreadId,
    },
    Nothing,
}

/// An event's data as JSON (these types always serialize).
fn json_of(data: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(data).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_opens_only_its_socket_and_channel_and_junk_opens_nothing() {
        let realtime = Realtime::new(
            PusherSettings::new("1".into(), "key".into(), b"s".to_vec()),
            Arc::new(chat_memory::MemoryChannelRegistry::default()),
        );
        let auth = realtime.sign("1.2", "private-chat.3", None);
        let (key, signature) = auth.split_once(':').unwrap_or_default();
        assert_eq!(key, "key");
        assert_eq!(signature.len(), 64);
        assert!(signature
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert!(realtime.verify("1.2", "private-chat.3", None, &auth));
        assert!(!realtime.verify("1.3", "private-chat.3", None, &auth));
        assert!(!realtime.verify("1.2", "private-chat.4", None, &auth));
        assert!(!realtime.verify("1.2", "private-chat.3", None, &format!("other:{signature}")));
        for junk in ["0g", "abc", "é1", ""] {
            let forged = format!("key:{junk}");
            assert!(
                !realtime.verify("1.2", "private-chat.3", None, &forged),
                "{junk}"
            );
        }
        // Channel data is covered: it cannot be added, changed or dropped.
        let data = r#"{"user_id":"7","user_info":{"role":"client"},"exp":9}"#;
        let granted = realtime.sign("1.2", "private-chat.3", Some(data));
        assert!(realtime.verify("1.2", "private-chat.3", Some(data), &granted));
        assert!(!realtime.verify("1.2", "private-chat.3", None, &granted));
        let longer = data.replace("\"exp\":9", "\"exp\":99");
        assert!(!realtime.verify("1.2", "private-chat.3", Some(&longer), &granted));
        assert!(!realtime.verify("1.2", "private-chat.3", Some(data), &auth));
    }
}
