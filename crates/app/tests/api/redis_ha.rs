//! The service on a Redis Cluster and on a Sentinel group (SPEC §7, issue 20): the API
//! on the Redis message store, the Laravel Echo walk-through across two instances, and
//! posts through a failover (the master killed) that the running service comes through
//! without a restart.

use crate::helpers::*;
use crate::realtime::echo_across_two_instances;
use chat_testkit::{
    wait_replicas_caught_up, TestRedis, TestRedisCluster, TestRedisSentinel, SENTINEL_MASTER,
};
use serde_json::json;
use std::time::{Duration, Instant};

enum Deployment {
    Cluster(TestRedisCluster),
    Sentinel(Box<TestRedisSentinel>),
}

impl Deployment {
    fn cluster() -> Self {
        Self::Cluster(TestRedisCluster::start().unwrap())
    }

    fn sentinel() -> Self {
        Self::Sentinel(Box::new(TestRedisSentinel::start().unwrap()))
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Cluster(c) => vec![
                ("CHAT_REDIS_URL", c.url()),
                ("CHAT_REDIS_MODE", "cluster".into()),
            ],
            Self::Sentinel(s) => vec![
                ("CHAT_REDIS_URL", s.url()),
                ("CHAT_REDIS_MODE", "sentinel".into()),
                ("CHAT_REDIS_SENTINEL_MASTER", SENTINEL_MASTER.into()),
            ],
        }
    }

    /// The servers that hold data now (a cluster's masters, the group's master).
    fn masters(&self) -> Vec<&TestRedis> {
        let is_master = |n: &&TestRedis| {
            n.cli(&["ROLE"])
                .is_ok_and(|role| role.starts_with(b"master"))
        };
        match self {
            Self::Cluster(c) => c.nodes().iter().filter(is_master).collect(),
            Self::Sentinel(s) => [s.master(), s.replica()]
                .into_iter()
                .filter(is_master)
                .collect(),
        }
    }

    /// Kills the master that holds `thread`'s messages, once its replica has all of
    /// them: what a replica has not received when its master dies, Redis did not keep.
    fn kill_master_of(&self, thread: i64) {
        let master = match self {
            Self::Cluster(c) => c.master_of(&format!("chat:{{{thread}}}:messages")).unwrap(),
            Self::Sentinel(s) => s.master(),
        };
        wait_replicas_caught_up(master, Duration::from_secs(10)).unwrap();
        master.kill().unwrap();
    }

    async fn app(&self, extra: &[(&str, &str)]) -> TestApp {
        let vars = self.vars();
        let mut all: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(&[
            ("CHAT_MESSAGE_STORE", "redis"),
            ("CHAT_STORE_TIMEOUT_MS", "500"),
        ]);
        all.extend_from_slice(extra);
        TestApp::spawn_with(&all).await
    }
}

/// Posts, the cap, the canary and the purge, as on one Redis server.
async fn the_api_works_on(deployment: Deployment) {
    let app = deployment.app(&[]).await;
    let t = token(7, "client");
    let thread = app.thread_for(1, 7).await;
    for i in 0..150 {
        app.post_text(&t, thread, &format!("m{i}")).await;
    }
    let listed = app.all_messages(&t, thread).await;
    assert_eq!(listed.len(), 100, "the newest hundred kept");
    assert_eq!(listed[0]["text"], "m50");

    let other = app.thread_for(2, 7).await;
    let canary = app.post_canaries(&t, other, "redis-ha").await;
    let masters = deployment.masters();
    assert!(!masters.is_empty());
    let held: Vec<u8> = masters.iter().flat_map(|m| everything_in(m)).collect();
    assert!(held.len() > 100, "the scan read the stored messages");
    let [lat, lng] = CANARY_COORDINATES;
    for needle in [canary.as_str(), lat, lng] {
        assert!(
            !contains(&held, needle.as_bytes()),
            "{needle} found in Redis"
        );
    }
    assert_eq!(
        app.all_messages(&t, other).await.last().unwrap()["lat"],
        12.3456789
    );

    json_of(app.close(&admin(), other).await, 200).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = app.all_messages(&admin(), other).await;
        if listed.len() == 2 && listed.iter().all(|m| m["redacted"] == true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the purge redacted both: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Posts before, during and after the death of the thread's master: `503` while the
/// failover happens (each within the store timeout), `200` again without a restart,
/// and every post that was answered `200` is listed.
async fn posts_come_through_a_failover_on(deployment: Deployment) {
    let app = deployment.app(&[]).await;
    let t = token(7, "client");
    let thread = app.thread_for(1, 7).await;
    let mut acknowledged = Vec::new();
    for i in 0..10 {
        acknowledged.push(app.post_text(&t, thread, &format!("before {i}")).await);
    }
    deployment.kill_master_of(thread);

    let started = Instant::now();
    let (mut refused, mut after) = (0, 0);
    while after < 10 {
        assert!(started.elapsed() < Duration::from_secs(30), "no recovery");
        let attempt = Instant::now();
        let r = app
            .post(
                &t,
                thread,
                json!({"type": "text", "text": format!("during {refused}")}),
            )
            .await;
        match r.status().as_u16() {
            200 => {
                acknowledged.push(json_of(r, 200).await["id"].as_i64().unwrap());
                after += usize::from(refused > 0);
            }
            503 => {
                assert_error(r, 503, "unavailable").await;
                assert!(attempt.elapsed() < Duration::from_secs(4), "bounded wait");
                refused += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("{other}: {}", r.text().await.unwrap()),
        }
    }
    assert!(refused > 0, "the failover was noticed");
    let listed: Vec<i64> = app
        .all_messages(&t, thread)
        .await
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        listed, acknowledged,
        "every acknowledged post kept, in order"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_works_on_a_redis_cluster() {
    the_api_works_on(Deployment::cluster()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_works_on_a_sentinel_group() {
    the_api_works_on(Deployment::sentinel()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn laravel_echo_works_across_two_instances_on_a_redis_cluster() {
    let deployment = Deployment::cluster();
    echo_across_two_instances(deployment.vars()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn laravel_echo_works_across_two_instances_on_a_sentinel_group() {
    let deployment = Deployment::sentinel();
    echo_across_two_instances(deployment.vars()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn posts_come_through_a_cluster_failover_without_a_restart() {
    posts_come_through_a_failover_on(Deployment::cluster()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn posts_come_through_a_sentinel_failover_without_a_restart() {
    posts_come_through_a_failover_on(Deployment::sentinel()).await;
}
