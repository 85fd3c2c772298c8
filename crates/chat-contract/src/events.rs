//! The event bus, and what a subscriber that falls behind is told.

use super::*;

/// Publish reaches every subscriber of a process that follows the thread, in order.
pub async fn event_bus(bus: &dyn EventBus) {
    let t = ThreadId::new(fresh_id()).unwrap();
    let _following = bus.follow(t).await.unwrap();
    let mut a = bus.subscribe().await.unwrap();
    let mut b = bus.subscribe().await.unwrap();
    let closed = ChatEvent::ThreadClosed {
        thread_id: t,
        closed_at: at(1),
    };
    let message = ChatEvent::MessageCreated(StoredMessage {
        id: MessageId::new(1).unwrap(),
        thread_id: t,
        sender_id: uid(7),
        kind: MessageKind::Location,
        content: Some(sealed(9)),
        created_at: at(0),
    });
    bus.publish(message.clone()).await.unwrap();
    bus.publish(closed.clone()).await.unwrap();
    for sub in [&mut a, &mut b] {
        let got = tokio::time::timeout(Duration::from_secs(5), async {
            let mut mine = Vec::new();
            while mine.len() < 2 {
                match sub.next().await.expect("bus alive") {
                    Received::Event(e) if e.thread_id() == t => mine.push(e),
                    Received::Event(_) => {}
                    Received::Missed { .. } => panic!("nothing was missed"),
                }
            }
            mine
        })
        .await
        .expect("events arrive");
        assert_eq!(got, vec![message.clone(), closed.clone()]);
    }
}

/// A subscriber that falls further behind than the bus buffers (`capacity` events) is
/// told that it missed events, where it missed them: never a silent gap.
pub async fn event_bus_lag(bus: &dyn EventBus, capacity: usize) {
    let t = ThreadId::new(fresh_id()).unwrap();
    let _following = bus.follow(t).await.unwrap();
    let mut slow = bus.subscribe().await.unwrap();
    let burst = capacity as i64 * 4 + 8;
    for i in 1..=burst {
        let event = ChatEvent::ThreadClosed {
            thread_id: t,
            closed_at: at(i),
        };
        bus.publish(event).await.unwrap();
    }
    // Let every event reach this process before the subscriber reads any.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut last_seen = 0;
    let mut missed_since_last = false;
    let mut missed = 0;
    while last_seen < burst {
        let next = tokio::time::timeout(Duration::from_secs(5), slow.next())
            .await
            .expect("the burst's last event arrives")
            .expect("bus alive");
        match next {
            Received::Missed { .. } => {
                missed += 1;
                missed_since_last = true;
            }
            Received::Event(ChatEvent::ThreadClosed {
                thread_id,
                closed_at,
            }) if thread_id == t => {
                let i = (closed_at - at(0)).num_seconds();
                assert!(i > last_seen, "in order");
                assert!(
                    i == last_seen + 1 || missed_since_last,
                    "events {}..{i} skipped without a word",
                    last_seen + 1
                );
                last_seen = i;
                missed_since_last = false;
            }
            Received::Event(_) => {}
        }
    }
    assert!(
        missed > 0,
        "a burst of {burst} over {capacity} was not all buffered"
    );
}

/// A bus across processes routes by thread: `listener` gets a thread's events only
/// while it follows the thread (interests counted: the last one's drop unfollows),
/// whoever publishes them.
pub async fn event_bus_routing(publisher: &dyn EventBus, listener: &dyn EventBus) {
    let (followed, other) = (
        ThreadId::new(fresh_id()).unwrap(),
        ThreadId::new(fresh_id()).unwrap(),
    );
    let closed = |t, s| ChatEvent::ThreadClosed {
        thread_id: t,
        closed_at: at(s),
    };
    let mut feed = listener.subscribe().await.unwrap();
    let first = listener.follow(followed).await.unwrap();
    let second = listener.follow(followed).await.unwrap();
    publisher.publish(closed(other, 1)).await.unwrap();
    publisher.publish(closed(followed, 2)).await.unwrap();
    assert_eq!(
        next_event(&mut feed).await,
        Some(closed(followed, 2)),
        "only the followed thread"
    );

    drop(first);
    publisher.publish(closed(followed, 3)).await.unwrap();
    assert_eq!(
        next_event(&mut feed).await,
        Some(closed(followed, 3)),
        "still one interest"
    );

    drop(second);
    // Unfollowing is applied in order but not awaited: give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    publisher.publish(closed(followed, 4)).await.unwrap();
    let again = listener.follow(other).await.unwrap();
    publisher.publish(closed(other, 5)).await.unwrap();
    assert_eq!(
        next_event(&mut feed).await,
        Some(closed(other, 5)),
        "nothing of the unfollowed thread"
    );
    drop(again);
}

/// The next event within 5 s, if any.
async fn next_event(feed: &mut Box<dyn chat_core::ports::EventSubscription>) -> Option<ChatEvent> {
    match tokio::time::timeout(Duration::from_secs(5), feed.next()).await {
        Ok(Some(Received::Event(e))) => Some(e),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(_) => None,
    }
}
