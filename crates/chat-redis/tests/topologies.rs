//! The Redis adapters on a Redis Cluster (three masters, three replicas) and on a
//! Sentinel group (master, replica, sentinel): the same contract suites as on one
//! server, and a failover during posts (the master is killed) that the adapters come
//! through without a restart, losing no acknowledged write that Redis kept.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on what it does not expect"
)]

use chat_contract as contract;
use chat_core::ports::{ChatEvent, EventBus, MessageStore, Received, RetentionCut};
use chat_core::ThreadId;
use chat_redis::*;

mod support;
use chat_testkit::{wait_replicas_caught_up, TestRedisCluster, TestRedisSentinel, SENTINEL_MASTER};
use std::time::{Duration, Instant};
use support::post;

const DAY: Duration = Duration::from_secs(86_400);

fn connect(url: &str, mode: RedisMode) -> Redis {
    Redis::new(
        url,
        RedisSettings {
            op_timeout: Duration::from_millis(500),
            mode,
            ..RedisSettings::default()
        },
    )
    .unwrap()
}

fn sentinel_mode() -> RedisMode {
    RedisMode::Sentinel {
        master: SENTINEL_MASTER.into(),
    }
}

async fn every_contract(url: &str, mode: RedisMode) {
    let redis = || connect(url, mode.clone());
    contract::message_store(&RedisMessageStore::new(redis(), DAY)).await;
    contract::message_retraction_and_unread(&RedisMessageStore::new(redis(), DAY)).await;
    contract::channel_registry(&RedisChannelRegistry::new(redis())).await;
    contract::thread_key_store(&RedisKeyStore::new(redis(), DAY)).await;
    contract::channel_registry_reaping(&RedisChannelRegistry::new(redis())).await;
    contract::event_bus(&RedisEventBus::start(redis(), 64)).await;
    contract::event_bus_lag(&RedisEventBus::start(redis(), 8), 8).await;
    let (here, there) = (
        RedisEventBus::start(redis(), 64),
        RedisEventBus::start(redis(), 64),
    );
    contract::event_bus_routing(&here, &there).await;
    contract::rate_counter(&RedisRateCounter::new(redis())).await;
    contract::lease_lock(&RedisLeaseLock::new(redis())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_meets_every_contract() {
    let cluster = TestRedisCluster::start().unwrap();
    every_contract(&cluster.url(), RedisMode::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_group_meets_every_contract() {
    let group = TestRedisSentinel::start().unwrap();
    every_contract(&group.url(), sentinel_mode()).await;
}

/// Threads spread over the cluster's shards, and their events over its shards too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clusters_threads_and_events_spread_over_its_masters() {
    let cluster = TestRedisCluster::start().unwrap();
    let redis = connect(&cluster.url(), RedisMode::Cluster);
    let store = RedisMessageStore::new(redis.clone(), DAY);
    let (publisher, listener) = (
        RedisEventBus::start(redis.clone(), 1024),
        RedisEventBus::start(redis.clone(), 1024),
    );
    let mut feed = listener.subscribe().await.unwrap();
    let threads: Vec<ThreadId> = (0..30)
        .map(|_| ThreadId::new(contract::fresh_id()).unwrap())
        .collect();
    let mut following = Vec::new();
    for t in &threads {
        following.push(listener.follow(*t).await.unwrap());
        post(&store, *t, RetentionCut::KEEP_ALL).await.unwrap();
        publisher.publish(closed(*t)).await.unwrap();
    }
    let mut masters = std::collections::BTreeSet::new();
    for t in &threads {
        masters.insert(
            cluster
                .master_of(&format!("chat:{{{t}}}:messages"))
                .unwrap()
                .port(),
        );
        assert_eq!(
            store.page(*t, None, 10, None).await.unwrap().messages.len(),
            1
        );
    }
    assert_eq!(masters.len(), 3, "30 threads land on every master");
    let mut got = Vec::new();
    while got.len() < threads.len() {
        match tokio::time::timeout(Duration::from_secs(5), feed.next()).await {
            Ok(Some(Received::Event(e))) => got.push(e.thread_id()),
            other => panic!("{other:?}"),
        }
    }
    // Each shard keeps its own order; across shards arrival order is free.
    got.sort();
    let mut expected = threads.clone();
    expected.sort();
    assert_eq!(
        got, expected,
        "every thread's event once, each from its shard"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_dies_and_its_replica_takes_over() {
    let cluster = TestRedisCluster::start().unwrap();
    let redis = connect(&cluster.url(), RedisMode::Cluster);
    let t = ThreadId::new(contract::fresh_id()).unwrap();
    let master = cluster
        .master_of(&format!("chat:{{{t}}}:messages"))
        .unwrap();
    failover_during_posts(&redis, t, || kill_when_replicated(master)).await;
    cluster.wait_healthy(Duration::from_secs(10)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_promotes_the_replica_when_the_master_dies() {
    let group = TestRedisSentinel::start().unwrap();
    let redis = connect(&group.url(), sentinel_mode());
    let t = ThreadId::new(contract::fresh_id()).unwrap();
    failover_during_posts(&redis, t, || kill_when_replicated(group.master())).await;
    assert_eq!(
        group.current_master_port().unwrap(),
        group.replica().port(),
        "the sentinel names the old replica"
    );
}

/// Kills `master` once its replicas have everything it acknowledged.
fn kill_when_replicated(master: &chat_testkit::TestRedis) {
    wait_replicas_caught_up(master, Duration::from_secs(10)).unwrap();
    master.kill().unwrap();
}

/// Posts to `t`, lets the writes replicate, kills its master, and keeps posting: the
/// posts during the failover fail as `Unavailable` (never hang), later ones succeed
/// on the new master, every acknowledged message is listed, and a follower of the
/// thread is told it missed events, then gets the new ones.
async fn failover_during_posts(redis: &Redis, t: ThreadId, kill_master: impl FnOnce()) {
    let store = RedisMessageStore::new(redis.clone(), DAY);
    let bus = RedisEventBus::start(redis.clone(), 1024);
    let _following = bus.follow(t).await.unwrap();
    let mut feed = bus.subscribe().await.unwrap();
    let mut acknowledged = Vec::new();
    for _ in 0..20 {
        acknowledged.push(post(&store, t, RetentionCut::KEEP_ALL).await.unwrap().id);
    }
    // Replication is asynchronous: `kill_master` waits until the replica has it all.
    kill_master();
    let started = Instant::now();
    let (mut refused, mut after) = (0, 0);
    while after < 10 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no recovery within 30 s ({refused} refused)"
        );
        let attempt = Instant::now();
        match post(&store, t, RetentionCut::KEEP_ALL).await {
            Ok(m) => {
                acknowledged.push(m.id);
                after += usize::from(refused > 0);
            }
            Err(e) => {
                assert!(matches!(e, chat_core::StoreError::Unavailable(_)), "{e:?}");
                assert!(attempt.elapsed() < Duration::from_secs(3), "bounded wait");
                refused += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(refused > 0, "the failover was noticed");
    let listed: Vec<_> = store
        .page(t, None, 100, None)
        .await
        .unwrap()
        .messages
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        listed, acknowledged,
        "every acknowledged post kept, in order"
    );

    // Events flow again on the new master; the gap was announced first, and so were
    // the threads whose events could not be published meanwhile.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut missed = false;
    loop {
        assert!(Instant::now() < deadline, "no event after the failover");
        let _ = bus.publish(closed(t)).await;
        match tokio::time::timeout(Duration::from_millis(500), feed.next()).await {
            Ok(Some(Received::Missed { .. })) => missed = true,
            Ok(Some(Received::Event(ChatEvent::EventsLost { thread_id }))) => {
                assert_eq!(thread_id, t);
            }
            Ok(Some(Received::Event(e))) if missed => {
                assert_eq!(e, closed(t));
                break;
            }
            _ => {}
        }
    }
}

fn closed(t: ThreadId) -> ChatEvent {
    ChatEvent::ThreadClosed {
        thread_id: t,
        closed_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
    }
}
