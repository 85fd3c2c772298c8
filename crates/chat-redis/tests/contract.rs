//! The Redis adapters against the port contract suites and Redis's own failure modes,
//! each test on its own throwaway `redis-server`.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on what it does not expect"
)]

use chat_contract as contract;
use chat_core::ports::{
    Appended, ChatEvent, EventBus, MessageStore, Received, RetentionCut, ThreadKeyStore,
};
use chat_core::{MessageId, StoreError, ThreadId};
use chat_redis::*;
use chat_testkit::TestRedis;
use support::{message, post};

mod support;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY: Duration = Duration::from_secs(86_400);
const KEEP_ALL: RetentionCut = RetentionCut::KEEP_ALL;

fn connect(server: &TestRedis) -> Redis {
    Redis::new(
        &server.url(),
        RedisSettings {
            op_timeout: Duration::from_millis(500),
            ..RedisSettings::default()
        },
    )
    .unwrap()
}

fn thread() -> ThreadId {
    ThreadId::new(contract::fresh_id()).unwrap()
}

// Each suite on a server of its own: the `TestRedis` made in the adapter's expression
// lives until the suite's statement ends, and stops when it is dropped.
contract::suites! {
    message_store => RedisMessageStore::new(connect(&TestRedis::start().unwrap()), DAY),
    message_retraction_and_unread =>
        RedisMessageStore::new(connect(&TestRedis::start().unwrap()), DAY),
    channel_registry => RedisChannelRegistry::new(connect(&TestRedis::start().unwrap())),
    channel_registry_reaping =>
        RedisChannelRegistry::new(connect(&TestRedis::start().unwrap())),
    event_bus => RedisEventBus::start(connect(&TestRedis::start().unwrap()), 64),
    rate_counter => RedisRateCounter::new(connect(&TestRedis::start().unwrap())),
    lease_lock => RedisLeaseLock::new(connect(&TestRedis::start().unwrap())),
}

#[tokio::test]
async fn thread_key_store() {
    let server = TestRedis::start().unwrap();
    let keys = RedisKeyStore::new(connect(&server), DAY);
    contract::thread_key_store(&keys).await;
    // A key lives a margin (an hour) past its thread's messages, renewed as it is read.
    let t = thread();
    let key = chat_core::crypto::WrappedKey::new("v1", vec![4; 60]);
    keys.insert_if_absent(t, key).await.unwrap();
    let name = format!("chat:{{{t}}}:dek");
    server.command(&["PEXPIRE", &name, "1000"]).unwrap();
    assert!(keys.get(t).await.unwrap().is_some());
    let ttl: i64 = server.command(&["PTTL", &name]).unwrap()[1..]
        .parse()
        .unwrap();
    assert!(
        ttl > 86_400_000 && ttl <= 90_000_000,
        "renewed on read: {ttl}"
    );
}

#[tokio::test]
async fn event_bus_lag() {
    let server = TestRedis::start().unwrap();
    contract::event_bus_lag(&RedisEventBus::start(connect(&server), 8), 8).await;
}

#[tokio::test]
async fn event_bus_routing() {
    let server = TestRedis::start().unwrap();
    let (here, there) = (
        RedisEventBus::start(connect(&server), 64),
        RedisEventBus::start(connect(&server), 64),
    );
    contract::event_bus_routing(&here, &there).await;
}

#[tokio::test]
async fn an_event_published_by_one_instance_reaches_another() {
    let server = TestRedis::start().unwrap();
    let (here, there) = (
        RedisEventBus::start(connect(&server), 64),
        RedisEventBus::start(connect(&server), 64),
    );
    let mut sub = there.subscribe().await.unwrap();
    let t = thread();
    let _following = there.follow(t).await.unwrap();
    let event = ChatEvent::ThreadClosed {
        thread_id: t,
        closed_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
    };
    here.publish(event.clone()).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("delivered");
    assert_eq!(got, Some(Received::Event(event)));
}

/// Publishing is queued and sent as pipelines: events still arrive, all of them, in the
/// order they were published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_events_arrive_in_the_order_they_were_published() {
    let server = TestRedis::start().unwrap();
    let (here, there) = (
        RedisEventBus::start(connect(&server), 4096),
        RedisEventBus::start(connect(&server), 4096),
    );
    let mut sub = there.subscribe().await.unwrap();
    let threads: Vec<ThreadId> = (1..=20).map(|n| ThreadId::new(n).unwrap()).collect();
    let mut following = Vec::new();
    for t in &threads {
        following.push(there.follow(*t).await.unwrap());
    }
    let events: Vec<ChatEvent> = (0..2000)
        .map(|n| ChatEvent::ThreadClosed {
            thread_id: threads[n % threads.len()],
            closed_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_000_000 + n as i64)
                .unwrap(),
        })
        .collect();
    for event in &events {
        here.publish(event.clone()).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < events.len() {
        let next = tokio::time::timeout(Duration::from_secs(5), sub.next()).await;
        match next.expect("every event delivered").unwrap() {
            Received::Event(event) => got.push(event),
            Received::Missed { .. } => panic!("nothing missed"),
        }
    }
    assert_eq!(got, events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_posts_keep_unique_increasing_ids_and_the_newest_hundred() {
    let server = TestRedis::start().unwrap();
    let store = Arc::new(RedisMessageStore::new(connect(&server), DAY));
    let t = thread();
    let cut = RetentionCut {
        expired_before: None,
        keep_newest: NonZeroU32::new(100),
    };
    let posts = (0..1000).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { post(store.as_ref(), t, cut).await })
    });
    let mut ids: Vec<_> = futures::future::join_all(posts)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap().id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000, "every id unique");

    let kept = store.page(t, None, 50, None).await.unwrap();
    let older = store
        .page(t, Some(kept.messages[0].id), 50, None)
        .await
        .unwrap();
    assert!(!older.has_more, "nothing beyond 100");
    let listed: Vec<_> = older
        .messages
        .iter()
        .chain(&kept.messages)
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, ids[900..], "exactly the newest 100, ascending");
    assert_eq!(
        server
            .command(&["ZCARD", &format!("chat:{{{t}}}:messages")])
            .unwrap(),
        ":100"
    );
}

#[tokio::test]
async fn an_instance_whose_clock_lags_draws_ids_above_the_newest_after_one_refusal() {
    let server = TestRedis::start().unwrap();
    let (ahead, behind) = (
        RedisMessageStore::new(connect(&server), DAY),
        RedisMessageStore::new(connect(&server), DAY),
    );
    let t = thread();
    // An instance whose clock runs an hour ahead of the other's.
    let hour_ahead = behind.next_id(t).await.unwrap().get() + 3_600_000_000;
    let first = message(t, MessageId::new(hour_ahead).unwrap());
    assert_eq!(
        ahead.append(first, None, KEEP_ALL).await.unwrap(),
        Appended::Stored
    );

    let late = message(t, behind.next_id(t).await.unwrap());
    assert_eq!(
        behind.append(late, None, KEEP_ALL).await.unwrap(),
        Appended::Behind
    );
    let retried = message(t, behind.next_id(t).await.unwrap());
    assert!(
        retried.id.get() > hour_ahead,
        "the refusal taught the newest id"
    );
    assert_eq!(
        behind
            .append(retried.clone(), None, KEEP_ALL)
            .await
            .unwrap(),
        Appended::Stored
    );
    let listed: Vec<_> = behind
        .page(t, None, 10, None)
        .await
        .unwrap()
        .messages
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, [MessageId::new(hour_ahead).unwrap(), retried.id]);
}

#[tokio::test]
async fn every_key_the_store_writes_expires() {
    let server = TestRedis::start().unwrap();
    let redis = connect(&server);
    let store = RedisMessageStore::new(redis.clone(), Duration::from_secs(3600));
    let cut = RetentionCut {
        expired_before: None,
        keep_newest: NonZeroU32::new(3),
    };
    for _ in 0..3 {
        let t = thread();
        for _ in 0..5 {
            post(&store, t, cut).await.unwrap();
        }
        store.redact_thread(t).await.unwrap();
    }
    let lock = RedisLeaseLock::new(redis);
    use chat_core::ports::LeaseLock;
    lock.try_acquire("sweep", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();

    let keys = String::from_utf8(server.cli(&["--scan"]).unwrap()).unwrap();
    let keys: Vec<&str> = keys.lines().collect();
    // Per thread its messages and its newest id; the lock.
    assert_eq!(keys.len(), 3 * 2 + 1, "{keys:?}");
    for key in keys {
        let ttl: i64 = server.command(&["PTTL", key]).unwrap()[1..]
            .parse()
            .unwrap();
        assert!(ttl > 0 && ttl <= 3_600_000, "{key} has ttl {ttl}");
    }
}

#[tokio::test]
async fn a_dead_redis_is_unavailable_promptly_and_recovery_needs_no_restart() {
    let server = TestRedis::start().unwrap();
    let redis = connect(&server);
    let store = RedisMessageStore::new(redis.clone(), DAY);
    let bus = RedisEventBus::start(redis.clone(), 64);
    let mut across_the_outage = bus.subscribe().await.unwrap();
    let t = thread();
    let _following = bus.follow(t).await.unwrap();
    post(&store, t, KEEP_ALL).await.unwrap();

    server.kill().unwrap();
    let started = Instant::now();
    let err = post(&store, t, KEEP_ALL).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(matches!(
        store.page(t, None, 10, None).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(redis.ping().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5), "bounded wait");
    // Publishing fails too once the bus has noticed (a whisper then stays local),
    // rather than queueing events that cannot leave.
    let notice = Instant::now() + Duration::from_secs(5);
    let closed_now = ChatEvent::ThreadClosed {
        thread_id: t,
        closed_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
    };
    while bus.publish(closed_now.clone()).await.is_ok() {
        assert!(
            Instant::now() < notice,
            "publish kept succeeding with Redis dead"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Back (empty: no persistence): writes, reads and events work again.
    server.start_again().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        match post(&store, t, KEEP_ALL).await {
            Ok(m) => break m,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("no recovery: {e:?}"),
        }
    };
    let page = store.page(t, None, 10, None).await.unwrap();
    assert_eq!(page.messages.last().map(|m| m.id), Some(again.id));
    let mut sub = bus.subscribe().await.unwrap();
    let closed = ChatEvent::ThreadClosed {
        thread_id: t,
        closed_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
    };
    bus.publish(closed.clone()).await.unwrap();
    // The thread whose events could not be published is announced first, so that every
    // instance's subscribers of it resync.
    let lost = Received::Event(ChatEvent::EventsLost { thread_id: t });
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        let mut got = Vec::new();
        while got.len() < 2 {
            match sub.next().await {
                Some(Received::Missed { .. }) => continue, // subscribed as it came back
                other => got.push(other),
            }
        }
        got
    })
    .await;
    assert_eq!(
        got.unwrap(),
        [Some(lost.clone()), Some(Received::Event(closed.clone()))],
        "the bus resubscribed, and announced the lost events first"
    );
    // A subscriber that was there all along is told it missed what went while Redis
    // was gone, before the events that follow.
    let told = tokio::time::timeout(Duration::from_secs(5), across_the_outage.next()).await;
    assert_eq!(told.unwrap(), Some(Received::Missed { skipped: 0 }));
    let next = tokio::time::timeout(Duration::from_secs(5), across_the_outage.next()).await;
    assert_eq!(next.unwrap(), Some(lost));
    let next = tokio::time::timeout(Duration::from_secs(5), across_the_outage.next()).await;
    assert_eq!(next.unwrap(), Some(Received::Event(closed)));
}

#[tokio::test]
async fn a_full_redis_refuses_writes_as_unavailable_and_keeps_what_it_had() {
    let server = TestRedis::start().unwrap();
    let store = RedisMessageStore::new(connect(&server), DAY);
    let t = thread();
    let kept = post(&store, t, KEEP_ALL).await.unwrap();
    assert_eq!(
        server
            .command(&["CONFIG", "SET", "maxmemory", "1"])
            .unwrap(),
        "+OK"
    );
    let err = post(&store, t, KEEP_ALL).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let page = store.page(t, None, 10, None).await.unwrap();
    assert_eq!(page.messages, vec![kept]);
}

#[tokio::test]
async fn an_evicting_memory_policy_is_flagged() {
    let lenient = TestRedis::start_with(&["--maxmemory-policy", "volatile-lru"]).unwrap();
    let warning = connect(&lenient).eviction_warning().await.unwrap();
    assert!(warning.is_some_and(|w| w.contains("volatile-lru") && w.contains("noeviction")));
    let strict = TestRedis::start().unwrap();
    assert_eq!(connect(&strict).eviction_warning().await.unwrap(), None);
}
