//! Links that die without a sound (SPEC §6, issue 29): a connection to Redis or
//! PostgreSQL that stops carrying anything while neither end closes it, made by a
//! [`FaultProxy`] between an instance and the backend. A subscriber receives every
//! event or is told to resync (4200); posts are answered within their deadline and
//! keyed retries store each message once; `/readyz` says when the event link is down.

use crate::helpers::*;
use crate::realtime::{signed, Socket};
use chat_testkit::{FaultProxy, TestRedis};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `CHAT_LINK_CHECK_SECS` of these tests.
const LINK_CHECK: Duration = Duration::from_secs(2);
const STORE_TIMEOUT_MS: &str = "1000";

/// The variables of an instance over PostgreSQL `db` and the Redis at `redis_url`.
fn instance_vars<'a>(db: &'a str, redis_url: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("CHAT_DATABASE_URL", db),
        ("CHAT_MASTER_KEY", MASTER_KEY),
        ("CHAT_REDIS_URL", redis_url),
        ("CHAT_STORE_TIMEOUT_MS", STORE_TIMEOUT_MS),
        ("CHAT_LINK_CHECK_SECS", "2"),
    ]
}

/// The API of `base` through a client that gives up after `within`: a request that
/// hangs fails the test instead of hanging it.
fn bounded(base: &str, within: Duration) -> Api {
    Api {
        base: base.to_owned(),
        client: reqwest::Client::builder().timeout(within).build().unwrap(),
    }
}

/// A socket on `base`'s `/app/{key}`, subscribed to `thread` for `user`.
async fn subscribed(api: &Api, user: &str, thread: i64) -> Socket {
    let (mut socket, id) = Socket::established(&api.base).await;
    let channel = format!("private-chat.{thread}");
    let grant = signed(api, user, &id, &channel).await;
    let answer = socket.subscribe(&channel, &grant).await;
    assert_eq!(
        answer["event"], "pusher_internal:subscription_succeeded",
        "{answer}"
    );
    socket
}

/// What a socket got until `until`, or until the server closed it: the ids of the
/// `MessageCreated` events, in arrival order.
async fn collect(socket: &mut Socket, until: Instant) -> Vec<i64> {
    let mut ids = Vec::new();
    while socket.closed.is_none() {
        let left = until.saturating_duration_since(Instant::now());
        match socket.next_within(left).await {
            Ok(Some(frame)) if frame["event"] == "App\\Events\\MessageCreated" => {
                ids.push(frame["data"]["id"].as_i64().unwrap());
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    ids
}

/// A subscriber's promise: every message of `posted` in id order, or closed with 4200.
fn whole_or_told(name: &str, socket: &Socket, got: &[i64], posted: &[i64]) {
    match socket.closed {
        Some(code) => assert_eq!(code, 4200, "{name}: closed to resync"),
        None => assert_eq!(got, posted, "{name}: every message, in order"),
    }
}

/// Posts `text` with `key` until it is stored: each attempt answered `200` or `503`
/// within the store deadline (and the client's bound), never hung; a `503` is retried
/// with the same key. Returns the id and how many attempts were refused.
async fn post_until_stored(
    api: &Api,
    user: &str,
    thread: i64,
    key: &str,
    text: &str,
) -> (i64, u32) {
    let started = Instant::now();
    let mut refused = 0;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "{key}: not stored within 40 s ({refused} refusals)"
        );
        let attempt = Instant::now();
        let answer = api
            .post_keyed(user, thread, key, json!({"type": "text", "text": text}))
            .await;
        assert!(
            attempt.elapsed() < Duration::from_secs(4),
            "{key}: an attempt took {:?}",
            attempt.elapsed()
        );
        match answer.status().as_u16() {
            200 => return (json_of(answer, 200).await["id"].as_i64().unwrap(), refused),
            503 => {
                assert_error(answer, 503, "unavailable").await;
                refused += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("{key}: {other} {}", answer.text().await.unwrap()),
        }
    }
}

/// `posters` concurrent posters to `thread`, `each` keyed posts apiece, with `fault`
/// applied once `before_fault` posts are stored. Returns key → stored id, and the
/// refusals seen.
async fn keyed_posts_through(
    api: &Api,
    thread: i64,
    posters: usize,
    each: usize,
    before_fault: usize,
    fault: impl FnOnce(),
) -> (BTreeMap<String, i64>, u32) {
    let user = token(7, "client");
    let stored = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..posters)
        .map(|p| {
            let (api, user, stored) = (api.clone(), user.clone(), stored.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                let mut refused = 0;
                for n in 0..each {
                    let key = format!("k-{p}-{n}");
                    let (id, r) = post_until_stored(&api, &user, thread, &key, &key).await;
                    stored.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    ids.push((key, id));
                    refused += r;
                }
                (ids, refused)
            })
        })
        .collect();
    eventually(Duration::from_secs(20), "the first posts", || async {
        (stored.load(std::sync::atomic::Ordering::SeqCst) >= before_fault).then_some(())
    })
    .await;
    fault();
    let faulted = Instant::now();
    let mut keys = BTreeMap::new();
    let mut refused = 0;
    for task in tasks {
        let (ids, r) = task.await.unwrap();
        keys.extend(ids);
        refused += r;
    }
    eprintln!(
        "{} keyed posts stored {:?} after the fault, {refused} attempts refused (503)",
        keys.len(),
        faulted.elapsed()
    );
    (keys, refused)
}

/// Every key's message is listed exactly once, under the id its post was answered. A
/// pooled link still frozen may refuse a listing once (503); the next one works.
async fn stored_once(api: &Api, thread: i64, keys: &BTreeMap<String, i64>) {
    let user = token(7, "client");
    eventually(Duration::from_secs(10), "a listing", || async {
        (api.list(&user, thread, "?limit=1").await.status() == 200).then_some(())
    })
    .await;
    let listed = api.ids_and_texts(&user, thread).await;
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (id, text) in listed {
        seen.entry(text).or_default().push(id);
    }
    for (key, id) in keys {
        assert_eq!(seen.get(key), Some(&vec![*id]), "{key} stored once");
    }
    assert_eq!(seen.len(), keys.len(), "nothing else stored");
}

async fn readiness(api: &Api) -> (u16, Value) {
    let answer = api.get("/readyz").await;
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or_default())
}

/// One of two instances loses its Redis links without a sound while the other posts:
/// its subscribed socket gets every message or is closed with 4200 within the link
/// check plus 5 s; a socket subscribing afterwards gets new messages; `/readyz` names
/// the event link while no subscribed connection is alive, and recovers with it.
#[tokio::test(flavor = "multi_thread")]
async fn a_zombie_event_link_is_found_and_its_subscribers_resync() {
    let (db, redis) = (database(), TestRedis::start().unwrap());
    let proxy = FaultProxy::to_port(redis.port()).unwrap();
    let db = db.url();
    let through_proxy = format!("redis://{}", proxy.address());
    let direct = redis.url();
    let a = ServerProcess::start(&instance_vars(&db, &through_proxy));
    let b = ServerProcess::start(&instance_vars(&db, &direct));
    let (api_a, api_b) = (
        bounded(&a.base, Duration::from_secs(10)),
        bounded(&b.base, Duration::from_secs(10)),
    );
    let client = token(7, "client");
    let thread = api_b.thread_for(1, 7).await;
    let mut before = subscribed(&api_a, &client, thread).await;
    let first = api_b.post_text(&client, thread, "before").await;
    assert_eq!(collect_n(&mut before, 1).await, [first], "the bus works");

    proxy.freeze();
    let frozen_at = Instant::now();
    let mut posted = Vec::new();
    for i in 0..20 {
        posted.push(
            api_b
                .post_text(&client, thread, &format!("during {i}"))
                .await,
        );
    }
    let got = collect(&mut before, frozen_at + LINK_CHECK + Duration::from_secs(5)).await;
    assert!(
        before.closed.is_some() || got.len() == posted.len(),
        "neither delivered nor told within the link check + 5 s: got {} of {}",
        got.len(),
        posted.len()
    );
    whole_or_told("the socket on the frozen instance", &before, &got, &posted);
    eprintln!(
        "frozen event link: socket {:?} {:?} after the freeze, {} of {} delivered",
        before.closed,
        frozen_at.elapsed(),
        got.len(),
        posted.len()
    );

    // A socket subscribing now gets what follows.
    let mut after = subscribed(&api_a, &client, thread).await;
    let next = api_b.post_text(&client, thread, "after").await;
    assert_eq!(collect_n(&mut after, 1).await, [next]);
    let metrics = api_a.get("/metrics").await.text().await.unwrap();
    for (name, at_least) in [
        ("chat_event_link_checks_failed_total", 1.0),
        ("chat_event_link_replaced_total", 1.0),
    ] {
        let value = metric(&metrics, name).unwrap_or_else(|| panic!("{name} in /metrics"));
        assert!(value >= at_least, "{name} = {value}");
    }

    // No live subscribed connection: `/readyz` names the event link, then recovers.
    proxy.partition();
    let partitioned = Instant::now();
    let down = eventually(
        LINK_CHECK * 3 + Duration::from_secs(3),
        "readyz 503",
        || async {
            let (status, body) = readiness(&api_a).await;
            (status == 503 && body["checks"]["event_link"] == "unavailable").then_some(body)
        },
    )
    .await;
    assert_eq!(down["status"], "unavailable", "{down}");
    eprintln!(
        "readyz 503 naming the event link {:?} after the partition",
        partitioned.elapsed()
    );
    assert_eq!(
        readiness(&api_b).await.0,
        200,
        "the other instance stays ready"
    );
    proxy.heal();
    let healed = Instant::now();
    eventually(Duration::from_secs(15), "readyz 200 again", || async {
        (readiness(&api_a).await.0 == 200).then_some(())
    })
    .await;
    eprintln!("readyz 200 {:?} after the heal", healed.elapsed());
    drop(a.stop());
    drop(b.stop());
}

/// The first `n` message ids a socket receives (each frame within 5 s).
async fn collect_n(socket: &mut Socket, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    while ids.len() < n {
        let frame = socket.next().await.expect("still open");
        if frame["event"] == "App\\Events\\MessageCreated" {
            ids.push(frame["data"]["id"].as_i64().unwrap());
        }
    }
    ids
}

/// A sample's value in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The command links to Redis (posts into the Redis store) go silent under concurrent
/// keyed posts: every attempt is answered within the deadline (200 or 503), and the
/// keyed retries store each message exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn posts_through_a_zombie_redis_link_are_answered_and_stored_once() {
    let redis = TestRedis::start().unwrap();
    let proxy = FaultProxy::to_port(redis.port()).unwrap();
    let url = format!("redis://{}", proxy.address());
    let app = ServerProcess::start(&[
        ("CHAT_REDIS_URL", &url),
        ("CHAT_MESSAGE_STORE", "redis"),
        ("CHAT_STORE_TIMEOUT_MS", STORE_TIMEOUT_MS),
        ("CHAT_LINK_CHECK_SECS", "2"),
    ]);
    let api = bounded(&app.base, Duration::from_secs(10));
    let thread = api.thread_for(1, 7).await;
    let (keys, refused) = keyed_posts_through(&api, thread, 6, 8, 12, || proxy.freeze()).await;
    assert_eq!(keys.len(), 48);
    stored_once(&api, thread, &keys).await;
    eprintln!("posts refused while the Redis links were replaced: {refused}");
    drop(app.stop());
}

/// PostgreSQL's links go silent in the middle of batch appends (group commit under
/// concurrent posters): every attempt is answered within the deadline; a connection
/// that missed it is discarded (never handed out again), the server ends the silent
/// session's transaction (its thread lock freed), and keyed retries store each
/// message exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn posts_through_a_zombie_postgres_link_are_answered_and_stored_once() {
    let db = database();
    let proxy = FaultProxy::to_port(db.port()).unwrap();
    let url = format!("postgres://postgres@{}/{}", proxy.address(), db.name());
    let app = ServerProcess::start(&[
        ("CHAT_DATABASE_URL", &url),
        ("CHAT_MASTER_KEY", MASTER_KEY),
        ("CHAT_STORE_TIMEOUT_MS", STORE_TIMEOUT_MS),
        ("CHAT_LINK_CHECK_SECS", "2"),
    ]);
    let api = bounded(&app.base, Duration::from_secs(10));
    let thread = api.thread_for(1, 7).await;
    let (keys, refused) = keyed_posts_through(&api, thread, 8, 6, 16, || proxy.freeze()).await;
    assert_eq!(keys.len(), 48);
    stored_once(&api, thread, &keys).await;
    // What the database holds (read directly, not through the proxy): one row per key.
    let rows = db
        .psql(&format!(
            "SELECT count(*) FROM chat_messages WHERE thread_id = {thread}"
        ))
        .unwrap();
    assert_eq!(rows.trim(), "48", "nothing half-applied or doubled");
    eprintln!("posts refused while the PostgreSQL links were replaced: {refused}");
    drop(app.stop());
}

/// One of two instances is cut off from Redis for 30 s (every flow frozen, new ones
/// unanswered) while both post, then the network heals: no acknowledged post is lost,
/// and every subscriber, on either instance, got every message or was told to resync.
#[tokio::test(flavor = "multi_thread")]
async fn a_partition_from_redis_loses_no_post_and_leaves_no_subscriber_silently_behind() {
    let (db, redis) = (database(), TestRedis::start().unwrap());
    let proxy = FaultProxy::to_port(redis.port()).unwrap();
    let db = db.url();
    let through_proxy = format!("redis://{}", proxy.address());
    let direct = redis.url();
    let keep_all = [("CHAT_MAX_MESSAGES_PER_THREAD", "0")];
    let a = ServerProcess::start(&[instance_vars(&db, &through_proxy), keep_all.to_vec()].concat());
    let b = ServerProcess::start(&[instance_vars(&db, &direct), keep_all.to_vec()].concat());
    let (api_a, api_b) = (
        bounded(&a.base, Duration::from_secs(10)),
        bounded(&b.base, Duration::from_secs(10)),
    );
    let client = token(7, "client");
    let thread = api_b.thread_for(1, 7).await;
    let mut on_a = subscribed(&api_a, &client, thread).await;
    let mut on_b = subscribed(&api_b, &client, thread).await;

    proxy.partition();
    let partitioned = Instant::now();
    let mut acknowledged = Vec::new();
    let mut n = 0;
    while partitioned.elapsed() < Duration::from_secs(30) {
        for api in [&api_a, &api_b] {
            let (id, _) =
                post_until_stored(api, &client, thread, &format!("p-{n}"), "during").await;
            acknowledged.push(id);
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    proxy.heal();
    for api in [&api_a, &api_b] {
        for _ in 0..3 {
            let (id, _) = post_until_stored(api, &client, thread, &format!("p-{n}"), "after").await;
            acknowledged.push(id);
            n += 1;
        }
    }
    acknowledged.sort();
    let listed: Vec<i64> = api_b
        .all_messages(&client, thread)
        .await
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, acknowledged, "every acknowledged post is kept");

    let settle = Instant::now() + LINK_CHECK + Duration::from_secs(5);
    let got_a = collect(&mut on_a, settle).await;
    let got_b = collect(&mut on_b, settle).await;
    whole_or_told(
        "the socket on the cut-off instance",
        &on_a,
        &got_a,
        &acknowledged,
    );
    whole_or_told(
        "the socket on the other instance",
        &on_b,
        &got_b,
        &acknowledged,
    );
    eprintln!(
        "partition: {} posts acknowledged and listed; cut-off socket {:?} ({} delivered), other socket {:?} ({} delivered)",
        acknowledged.len(),
        on_a.closed,
        got_a.len(),
        on_b.closed,
        got_b.len()
    );
    drop(a.stop());
    drop(b.stop());
}

/// An instance killed with `kill -9` sends nothing as its sockets go: once their
/// subscriptions lapse, one of the other instances sends what it would have sent. The
/// other presence members see the departure (`member_removed`), and the host gets the
/// `member_removed` and `channel_vacated` webhooks, each exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn the_departures_of_an_instance_that_died_are_announced_once() {
    use crate::host::{deliveries_named, receiver};
    let (db, redis) = (database(), TestRedis::start().unwrap());
    let db = db.url();
    let url = redis.url();
    let (hook, host) = receiver().await;
    let vars = [
        instance_vars(&db, &url),
        vec![
            ("CHAT_WEBHOOK_URL", hook.as_str()),
            ("CHAT_SUBSCRIPTION_LAPSE_SECS", "6"),
        ],
    ]
    .concat();
    let doomed = ServerProcess::start(&vars);
    let survivor = ServerProcess::start(&vars);
    let (api_a, api_b) = (
        bounded(&doomed.base, Duration::from_secs(10)),
        bounded(&survivor.base, Duration::from_secs(10)),
    );
    let client = token(7, "client");
    let (together, alone) = (api_b.thread_for(1, 7).await, api_b.thread_for(2, 7).await);
    let presence = format!("presence-chat.{together}");
    let private = format!("private-chat.{alone}");

    let join = |api: Api, user: String, channel: String| async move {
        let (mut socket, id) = Socket::established(&api.base).await;
        let grant = signed(&api, &user, &id, &channel).await;
        let answer = socket.subscribe(&channel, &grant).await;
        assert_eq!(answer["event"], "pusher_internal:subscription_succeeded");
        socket
    };
    let _on_doomed = join(api_a.clone(), client.clone(), presence.clone()).await;
    let _alone_on_doomed = join(api_a.clone(), client.clone(), private.clone()).await;
    let mut watcher = join(api_b.clone(), admin(), presence.clone()).await;

    drop(doomed.stop()); // SIGKILL: nothing is released
    let killed = Instant::now();
    let departure = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no member_removed within 30 s of the kill"
        );
        if let Ok(Some(frame)) = watcher.next_within(Duration::from_secs(1)).await {
            if frame["event"] == "pusher_internal:member_removed" {
                break frame;
            }
        }
    };
    assert_eq!(departure["channel"], presence.as_str());
    assert_eq!(departure["data"]["user_id"], "7");
    eprintln!("member_removed {:?} after the kill", killed.elapsed());

    // The host's webhooks: each departure once (one delivery id, retried as needed).
    let once = |event: &str, channel: &str| {
        let ids: std::collections::BTreeSet<String> = deliveries_named(&host, event)
            .into_iter()
            .filter(|(_, body)| body.contains(&format!("\"channel\":\"{channel}\"")))
            .map(|(id, _)| id)
            .collect();
        ids.len()
    };
    eventually(Duration::from_secs(30), "both webhooks", || async {
        (once("member_removed", &presence) >= 1 && once("channel_vacated", &private) >= 1)
            .then_some(())
    })
    .await;
    // Several more reaps later, still once each.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(once("member_removed", &presence), 1, "member_removed once");
    assert_eq!(once("channel_vacated", &private), 1, "channel_vacated once");
    drop(survivor.stop());
}

/// On a Redis Cluster, one shard's links (every connection to its master) go silent
/// while the other instance posts: the subscriber on the first instance gets every
/// message or is closed with 4200 within the link check plus 5 s, and a socket that
/// subscribes afterwards gets new messages.
#[tokio::test(flavor = "multi_thread")]
async fn a_zombie_shard_link_on_a_cluster_is_found_and_its_subscribers_resync() {
    let db = database();
    let cluster = chat_testkit::TestRedisCluster::start_behind_proxies().unwrap();
    let db = db.url();
    let seeds = cluster.url();
    let vars = [
        instance_vars(&db, &seeds),
        vec![("CHAT_REDIS_MODE", "cluster")],
    ]
    .concat();
    let a = ServerProcess::start(&vars);
    let b = ServerProcess::start(&vars);
    let (api_a, api_b) = (
        bounded(&a.base, Duration::from_secs(10)),
        bounded(&b.base, Duration::from_secs(10)),
    );
    let client = token(7, "client");
    let thread = api_b.thread_for(1, 7).await;
    let mut before = subscribed(&api_a, &client, thread).await;
    let first = api_b.post_text(&client, thread, "before").await;
    assert_eq!(collect_n(&mut before, 1).await, [first], "the bus works");

    let master = cluster.master_of(&format!("chat:{{{thread}}}:ev")).unwrap();
    cluster.proxy_of(master).unwrap().freeze();
    let frozen_at = Instant::now();
    let mut posted = Vec::new();
    for i in 0..20 {
        let (id, _) = post_until_stored(&api_b, &client, thread, &format!("s-{i}"), "during").await;
        posted.push(id);
    }
    let got = collect(&mut before, frozen_at + LINK_CHECK + Duration::from_secs(5)).await;
    assert!(
        before.closed.is_some() || got.len() == posted.len(),
        "neither delivered nor told within the link check + 5 s: got {} of {}",
        got.len(),
        posted.len()
    );
    whole_or_told(
        "the socket following the frozen shard",
        &before,
        &got,
        &posted,
    );
    eprintln!(
        "frozen shard: socket {:?} {:?} after the freeze, {} of {} delivered",
        before.closed,
        frozen_at.elapsed(),
        got.len(),
        posted.len()
    );

    // A socket subscribing now gets what follows (once the posting side's links to the
    // shard were replaced too). Told to resync meanwhile (the posting side announcing
    // the events it could not publish), it subscribes again, as pusher-js does.
    let mut after = subscribed(&api_a, &client, thread).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    for n in 0.. {
        assert!(
            Instant::now() < deadline,
            "no new message reached a new socket"
        );
        if after.closed.is_some() {
            assert_eq!(after.closed, Some(4200));
            after = subscribed(&api_a, &client, thread).await;
        }
        let (id, _) = post_until_stored(&api_b, &client, thread, &format!("n-{n}"), "after").await;
        let got = collect(&mut after, Instant::now() + Duration::from_secs(2)).await;
        if got.contains(&id) {
            break;
        }
    }
    drop(a.stop());
    drop(b.stop());
}
