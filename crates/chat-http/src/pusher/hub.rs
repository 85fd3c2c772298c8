//! Who is subscribed to which thread on this instance, and the fan-out to them. Each
//! socket has a small bounded queue; a socket whose queue is full when an event comes
//! is dropped from every channel and told to close, so a slow reader never makes
//! memory grow or holds the others back. When this instance itself missed events (see
//! [`Hub::resync_all`]), every subscribed socket is told to reconnect and catch up.

use super::channel::Channel;
use super::grant::Holder;
use chat_core::{ThreadId, UserId};
use parking_lot::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Notify};

/// A frame, serialized once and shared by every socket it goes to.
pub type Frame = Arc<str>;

/// What the hub queues for a socket, in order.
#[derive(Debug, PartialEq)]
pub enum Outbound {
    Frame(Frame),
    /// The holder's access to the channel ended; the hub no longer delivers it.
    Revoked(Channel),
    /// Events of the channel's thread may have been lost: close with 4200, after what
    /// is queued before it, so that the client reconnects and catches up.
    Resync,
}

/// A socket's end of the hub: its queue, the signal that it fell behind, and who holds
/// the subscription.
#[derive(Clone)]
pub struct Subscriber {
    pub queue: mpsc::Sender<Outbound>,
    pub overflowed: Arc<Notify>,
    /// `None` for a subscription the host signed itself, without `channel_data`.
    pub holder: Option<Holder>,
    /// The socket's Pusher id, which a host event may exclude (`socket_id`).
    pub socket_id: Arc<str>,
    /// The member's `user_info` (JSON) on a presence channel.
    pub info: Option<Arc<str>>,
}

/// One subscription as [`Hub::subscriptions`] lists it.
pub type Held = (Channel, u64, Option<UserId>, Option<Arc<str>>);

pub struct Hub {
    channels: Mutex<HashMap<Channel, HashMap<u64, Subscriber>>>,
    next_connection: AtomicU64,
    /// Bumped when this instance missed events: every connection watches it.
    resyncs: watch::Sender<u64>,
    /// Set when the instance drains: every connection closes with 4200.
    draining: watch::Sender<bool>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            channels: Mutex::default(),
            next_connection: AtomicU64::default(),
            resyncs: watch::Sender::new(0),
            draining: watch::Sender::new(false),
        }
    }
}

impl Hub {
    /// A connection number, unique within this process.
    pub fn connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<Channel, HashMap<u64, Subscriber>>> {
        self.channels.lock()
    }

    pub fn subscribe(&self, channel: Channel, connection: u64, subscriber: Subscriber) {
        self.channels()
            .entry(channel)
            .or_default()
            .insert(connection, subscriber);
    }

    pub fn unsubscribe(&self, channel: Channel, connection: u64) {
        let mut channels = self.channels();
        if let Some(subscribers) = channels.get_mut(&channel) {
            subscribers.remove(&connection);
            if subscribers.is_empty() {
                channels.remove(&channel);
            }
        }
    }

    /// This instance missed events of unknown threads: every socket with a
    /// subscription is closed with 4200, so that pusher-js reconnects at once and the
    /// client lists what it missed, instead of carrying on with a silent gap.
    pub fn resync_all(&self) {
        self.resyncs.send_modify(|n| *n += 1);
    }

    /// The instance drains: every socket is closed with 4200, so that pusher-js
    /// reconnects at once (through the load balancer, to another instance).
    pub fn drain(&self) {
        self.draining.send_replace(true);
    }

    /// Becomes `true` when [`Self::drain`] is called.
    pub fn draining(&self) -> watch::Receiver<bool> {
        self.draining.subscribe()
    }

    /// Changes when [`Self::resync_all`] is called.
    pub fn resyncs(&self) -> watch::Receiver<u64> {
        self.resyncs.subscribe()
    }

    /// Ends the subscriptions to `thread`'s channels held by `users` (not those an
    /// admin holds through the override): they get nothing more from them, and each
    /// socket is told so (through its queue, after what it already holds; a socket
    /// whose queue is full is told to close instead). Returns how many ended.
    pub fn revoke(&self, thread: ThreadId, users: &[UserId]) -> usize {
        let mut channels = self.channels();
        let mut ended = 0;
        for channel in [Channel::private(thread), Channel::presence(thread)] {
            let Some(subscribers) = channels.get_mut(&channel) else {
                continue;
            };
            let before = subscribers.len();
            subscribers.retain(|_, subscriber| {
                let ends = subscriber
                    .holder
                    .is_some_and(|h| !h.admin && users.contains(&h.user));
                if ends {
                    subscriber.queue_or_overflow(Outbound::Revoked(channel));
                }
                !ends
            });
            ended += before - subscribers.len();
            if subscribers.is_empty() {
                channels.remove(&channel);
            }
        }
        ended
    }

    /// The thread's events may have been lost on their way here: every socket
    /// subscribed to one of its channels is told to resync (4200) after what it holds
    /// already, and gets nothing more from the hub meanwhile. Returns how many.
    pub fn resync_thread(&self, thread: ThreadId) -> usize {
        let mut channels = self.channels();
        let mut told = 0;
        for channel in [Channel::private(thread), Channel::presence(thread)] {
            if let Some(subscribers) = channels.remove(&channel) {
                for subscriber in subscribers.values() {
                    subscriber.queue_or_overflow(Outbound::Resync);
                    told += 1;
                }
            }
        }
        told
    }

    /// Every subscription on this instance: channel, connection, who holds it and
    /// their presence info.
    pub fn subscriptions(&self) -> Vec<Held> {
        self.channels()
            .iter()
            .flat_map(|(channel, subscribers)| {
                subscribers.iter().map(|(connection, s)| {
                    (
                        *channel,
                        *connection,
                        s.holder.map(|h| h.user),
                        s.info.clone(),
                    )
                })
            })
            .collect()
    }

    /// Queues `frame` for every subscriber of `thread` but the socket `except` names
    /// (a Pusher socket id); returns how many got it.
    pub fn publish_except_socket(&self, channel: Channel, frame: Frame, except: &str) -> usize {
        let connection = self.channels().get(&channel).and_then(|subscribers| {
            subscribers
                .iter()
                .find(|(_, s)| &*s.socket_id == except)
                .map(|(c, _)| *c)
        });
        self.publish(channel, frame, connection)
    }

    pub fn has_subscribers(&self, channel: Channel) -> bool {
        self.channels().contains_key(&channel)
    }

    /// Whether any channel of the thread has a subscriber here.
    pub fn has_thread(&self, thread: ThreadId) -> bool {
        let channels = self.channels();
        channels.contains_key(&Channel::private(thread))
            || channels.contains_key(&Channel::presence(thread))
    }

    /// Queues `frame` for every subscriber of `channel` but `except`; returns how many
    /// got it. Subscribers whose queue is full are removed and signalled.
    pub fn publish(&self, channel: Channel, frame: Frame, except: Option<u64>) -> usize {
        let mut channels = self.channels();
        let Some(subscribers) = channels.get_mut(&channel) else {
            return 0;
        };
        let mut delivered = 0;
        subscribers.retain(|connection, subscriber| {
            if Some(*connection) == except {
                return true;
            }
            let queued = subscriber.queue_or_overflow(Outbound::Frame(frame.clone()));
            delivered += usize::from(queued);
            queued
        });
        if subscribers.is_empty() {
            channels.remove(&channel);
        }
        delivered
    }
}

impl Subscriber {
    /// `false` when the socket is gone or its queue is full (then it is told to close).
    fn queue_or_overflow(&self, item: Outbound) -> bool {
        match self.queue.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflowed.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber(capacity: usize) -> (Subscriber, mpsc::Receiver<Outbound>) {
        let (queue, rx) = mpsc::channel(capacity);
        let overflowed = Arc::new(Notify::new());
        let subscriber = Subscriber {
            queue,
            overflowed,
            holder: None,
            socket_id: "1.1".into(),
            info: None,
        };
        (subscriber, rx)
    }

    #[tokio::test]
    async fn a_revocation_ends_only_the_named_users_non_admin_subscriptions() {
        let hub = Hub::default();
        let thread = ThreadId::new(1).unwrap_or_else(|| panic!("id"));
        let user = |n| UserId::new(n).unwrap_or_else(|| panic!("id"));
        let held = |who: i64, admin: bool| {
            let (mut s, rx) = subscriber(8);
            s.holder = Some(Holder {
                user: user(who),
                admin,
                until: u64::MAX,
            });
            (s, rx)
        };
        let (nurse, mut nurse_rx) = held(11, false);
        let (override_admin, mut admin_rx) = held(11, true);
        let (client, mut client_rx) = held(7, false);
        let (nurse_online, mut online_rx) = held(11, false);
        let private = Channel::private(thread);
        hub.subscribe(private, 1, nurse);
        hub.subscribe(private, 2, override_admin);
        hub.subscribe(private, 3, client);
        hub.subscribe(Channel::presence(thread), 1, nurse_online);
        assert_eq!(
            hub.revoke(thread, &[user(11)]),
            2,
            "both of the thread's channels"
        );
        assert_eq!(nurse_rx.try_recv(), Ok(Outbound::Revoked(private)), "told");
        let presence = Channel::presence(thread);
        assert_eq!(online_rx.try_recv(), Ok(Outbound::Revoked(presence)));
        assert_eq!(hub.publish(private, "after".into(), None), 2);
        assert_eq!(
            client_rx.recv().await,
            Some(Outbound::Frame("after".into()))
        );
        assert_eq!(admin_rx.recv().await, Some(Outbound::Frame("after".into())));
        assert!(nurse_rx.try_recv().is_err(), "nothing after the revocation");
        assert_eq!(hub.revoke(thread, &[user(11)]), 0, "once");
    }

    #[tokio::test]
    async fn events_reach_only_their_threads_subscribers_and_a_slow_one_is_dropped() {
        let hub = Hub::default();
        let (a, b) = (ThreadId::new(1), ThreadId::new(2));
        let (Some(a), Some(b)) = (a, b) else {
            panic!("ids")
        };
        let (a, b) = (Channel::private(a), Channel::private(b));
        let (fast, mut fast_rx) = subscriber(8);
        let (slow, _slow_rx) = subscriber(1);
        let (other, mut other_rx) = subscriber(8);
        let slow_signal = slow.overflowed.clone();
        hub.subscribe(a, 1, fast);
        hub.subscribe(a, 2, slow);
        hub.subscribe(b, 3, other);

        assert_eq!(hub.publish(a, "one".into(), None), 2);
        assert_eq!(
            hub.publish(a, "two".into(), None),
            1,
            "the slow one is full"
        );
        slow_signal.notified().await; // it was told, or this would hang
        assert_eq!(hub.publish(a, "three".into(), Some(1)), 0, "sender skipped");
        assert_eq!(fast_rx.recv().await, Some(Outbound::Frame("one".into())));
        assert_eq!(fast_rx.recv().await, Some(Outbound::Frame("two".into())));
        assert!(other_rx.try_recv().is_err(), "thread 2 saw nothing");

        hub.unsubscribe(a, 1);
        assert!(!hub.has_subscribers(a));
        assert!(hub.has_subscribers(b));
    }
}
