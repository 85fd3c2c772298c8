//! Port contract suites: one async function per port, checking every behaviour the
//! port documents. An adapter crate calls them from its own tests with its adapter
//! (`chat-memory/tests/contract.rs`, and the same in chat-postgres and chat-redis).
//! They panic on the first broken rule. A crate of its own, a dev-dependency only: no
//! test code is linked into `chat-server`.
//!
//! Ids come from [`fresh_id`], so the suites can share one database with other tests.
// Test code: a failed expectation is meant to panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chat_core::crypto::{SealedContent, WrappedKey};
use chat_core::ports::{
    Appended, ChatEvent, EventBus, JobKind, JobQueue, LeaseLock, LockToken, MessageStore,
    RateCounter, Received, RequestDirectory, RetentionCut, ThreadKeyStore, ThreadRepository,
};
use chat_core::{
    IdempotencyKey, MessageId, MessageKind, RequestId, ServiceRequest, StoredMessage, ThreadId,
    ThreadStatus, Timestamp, UserId,
};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// An id unlikely to collide with one another test run made in the same store.
pub fn fresh_id() -> i64 {
    static NEXT: AtomicI64 = AtomicI64::new(0);
    let base = chrono::Utc::now().timestamp_micros() % 1_000_000_000_000;
    base * 1000 + NEXT.fetch_add(1, Ordering::Relaxed) % 1000 + 1
}

fn at(secs: i64) -> Timestamp {
    chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(1_700_000_000 + secs)
}

fn uid(n: i64) -> UserId {
    UserId::new(n).unwrap()
}

fn sealed(tag: u8) -> SealedContent {
    SealedContent::from_bytes(vec![tag; 40])
}

/// Registering and reading service requests.
pub async fn request_directory(dir: &dyn RequestDirectory) {
    let id = RequestId::new(fresh_id()).unwrap();
    assert_eq!(dir.get(id).await.unwrap(), None, "unknown request is None");
    let req = ServiceRequest {
        id,
        client_id: uid(7),
    };
    assert_eq!(dir.upsert(req).await.unwrap(), req);
    assert_eq!(dir.get(id).await.unwrap(), Some(req));
    let moved = ServiceRequest {
        id,
        client_id: uid(8),
    };
    assert_eq!(
        dir.upsert(moved).await.unwrap(),
        moved,
        "upsert replaces the client"
    );
    assert_eq!(dir.get(id).await.unwrap(), Some(moved));
}

/// Opening (idempotent, concurrent, admin assignment), reading and closing threads.
pub async fn thread_repository(repo: &dyn ThreadRepository) {
    let req = ServiceRequest {
        id: RequestId::new(fresh_id()).unwrap(),
        client_id: uid(7),
    };
    let opened = repo.open_for_request(&req, None, at(0)).await.unwrap();
    assert_eq!(opened.request_id, req.id);
    assert_eq!(opened.client_id, req.client_id);
    assert_eq!(opened.admin_id, None);
    assert_eq!(opened.status, ThreadStatus::Open);
    assert_eq!(opened.opened_at, at(0));
    assert_eq!(opened.closed_at, None);
    assert_eq!(repo.get(opened.id).await.unwrap(), Some(opened.clone()));

    // Idempotent; the first admin to open is assigned and never replaced.
    let again = repo
        .open_for_request(&req, Some(uid(100)), at(5))
        .await
        .unwrap();
    assert_eq!(again.id, opened.id, "one thread per request");
    assert_eq!(again.admin_id, Some(uid(100)));
    assert_eq!(again.opened_at, at(0), "opened_at is the first open");
    let third = repo
        .open_for_request(&req, Some(uid(101)), at(6))
        .await
        .unwrap();
    assert_eq!(third.admin_id, Some(uid(100)), "an assigned admin stays");

    // Concurrent opens of a new request agree on one thread.
    let req2 = ServiceRequest {
        id: RequestId::new(fresh_id()).unwrap(),
        client_id: uid(9),
    };
    let opens = (0..20).map(|_| repo.open_for_request(&req2, None, at(1)));
    let threads = futures::future::join_all(opens).await;
    let first = threads[0].as_ref().unwrap().id;
    assert!(threads.iter().all(|t| t.as_ref().unwrap().id == first));
    assert_ne!(first, opened.id);

    // Close: idempotent, keeps the first closed_at; a closed thread stays closed.
    let closed = repo.close(opened.id, at(10)).await.unwrap().unwrap();
    assert_eq!(closed.status, ThreadStatus::Closed);
    assert_eq!(closed.closed_at, Some(at(10)));
    let closed_again = repo.close(opened.id, at(20)).await.unwrap().unwrap();
    assert_eq!(closed_again.closed_at, Some(at(10)));
    let reopened = repo.open_for_request(&req, None, at(30)).await.unwrap();
    assert_eq!(
        reopened.status,
        ThreadStatus::Closed,
        "opening returns the closed thread"
    );

    // Unknown threads.
    let unknown = ThreadId::new(i64::MAX - 1).unwrap();
    assert_eq!(repo.get(unknown).await.unwrap(), None);
    assert_eq!(repo.close(unknown, at(0)).await.unwrap(), None);

    // The closed-thread walk finds it, and pages by id.
    let mut walk = Vec::new();
    let mut after = None;
    loop {
        let page = repo.closed_threads(after, 2).await.unwrap();
        assert!(page.len() <= 2);
        assert!(page.windows(2).all(|w| w[0] < w[1]), "ascending ids");
        match page.last() {
            Some(last) => after = Some(*last),
            None => break,
        }
        walk.extend(page);
    }
    assert!(walk.contains(&opened.id));
    assert!(!walk.contains(&first), "open threads are not listed");
}

/// Storing, agreeing on, destroying and rotating wrapped keys.
pub async fn thread_key_store(keys: &dyn ThreadKeyStore) {
    let t = ThreadId::new(fresh_id()).unwrap();
    assert_eq!(keys.get(t).await.unwrap(), None);
    let k1 = WrappedKey::new("v1", vec![1; 60]);
    let k2 = WrappedKey::new("v1", vec![2; 60]);
    assert_eq!(keys.insert_if_absent(t, k1.clone()).await.unwrap(), k1);
    assert_eq!(
        keys.insert_if_absent(t, k2.clone()).await.unwrap(),
        k1,
        "first key wins"
    );
    assert_eq!(keys.get(t).await.unwrap(), Some(k1.clone()));

    // Rotation work list and compare-and-swap.
    let listed = keys
        .wrapped_under_other_than("v2", None, 10_000)
        .await
        .unwrap();
    assert!(listed.contains(&(t, k1.clone())));
    let rewrapped = WrappedKey::new("v2", vec![3; 60]);
    assert!(
        !keys.replace(t, &k2, rewrapped.clone()).await.unwrap(),
        "stale old key"
    );
    assert!(keys.replace(t, &k1, rewrapped.clone()).await.unwrap());
    assert_eq!(keys.get(t).await.unwrap(), Some(rewrapped.clone()));
    let listed = keys
        .wrapped_under_other_than("v2", None, 10_000)
        .await
        .unwrap();
    assert!(!listed.iter().any(|(id, _)| *id == t));

    assert!(keys.destroy(t).await.unwrap());
    assert_eq!(keys.get(t).await.unwrap(), None);
    assert!(!keys.destroy(t).await.unwrap(), "destroy is idempotent");
}

async fn post(
    store: &dyn MessageStore,
    thread: ThreadId,
    secs: i64,
    cut: RetentionCut,
) -> MessageId {
    let id = store.next_id(thread).await.unwrap();
    assert_eq!(
        store
            .append(message(thread, id, secs), None, cut)
            .await
            .unwrap(),
        Appended::Stored
    );
    id
}

fn message(thread: ThreadId, id: MessageId, secs: i64) -> StoredMessage {
    StoredMessage {
        id,
        thread_id: thread,
        sender_id: uid(7),
        kind: MessageKind::Text,
        content: Some(sealed((id.get() % 251) as u8)),
        created_at: at(secs),
    }
}

const KEEP_ALL: RetentionCut = RetentionCut::KEEP_ALL;

fn ids(page: &chat_core::MessagePage<StoredMessage>) -> Vec<MessageId> {
    page.messages.iter().map(|m| m.id).collect()
}

/// Ordering, cursors, TTL, cap, redaction and deletion of messages.
pub async fn message_store(store: &dyn MessageStore) {
    let thread = ThreadId::new(fresh_id()).unwrap();
    let other = ThreadId::new(fresh_id()).unwrap();

    // Empty and unknown threads.
    let empty = store.page(thread, None, 20, None).await.unwrap();
    assert!(empty.messages.is_empty() && !empty.has_more);

    // Ids increase; content and metadata come back as stored.
    let mut posted = Vec::new();
    for i in 0..7 {
        posted.push(post(store, thread, i, KEEP_ALL).await);
        post(store, other, i, KEEP_ALL).await;
    }
    assert!(posted.windows(2).all(|w| w[0] < w[1]), "ids increase");
    let all = store.page(thread, None, 50, None).await.unwrap();
    assert_eq!(ids(&all), posted, "ascending, only this thread");
    assert!(!all.has_more);
    let first = &all.messages[0];
    assert_eq!(first.thread_id, thread);
    assert_eq!(first.sender_id, uid(7));
    assert_eq!(first.kind, MessageKind::Text);
    assert_eq!(first.created_at, at(0));
    assert_eq!(first.content, Some(sealed((posted[0].get() % 251) as u8)));

    // Pages of 3, newest first, each in ascending order.
    let p1 = store.page(thread, None, 3, None).await.unwrap();
    assert_eq!(ids(&p1), posted[4..7]);
    assert!(p1.has_more);
    let p2 = store
        .page(thread, Some(p1.messages[0].id), 3, None)
        .await
        .unwrap();
    assert_eq!(ids(&p2), posted[1..4]);
    assert!(p2.has_more);
    let p3 = store
        .page(thread, Some(p2.messages[0].id), 3, None)
        .await
        .unwrap();
    assert_eq!(ids(&p3), posted[0..1]);
    assert!(!p3.has_more);
    // Exactly `limit` left: no more after it.
    let exact = store.page(thread, Some(posted[3]), 3, None).await.unwrap();
    assert_eq!(ids(&exact), posted[0..3]);
    assert!(!exact.has_more);
    // A cursor at the oldest message.
    let none = store.page(thread, Some(posted[0]), 3, None).await.unwrap();
    assert!(none.messages.is_empty() && !none.has_more);

    // Ids are stored in increasing order: of two posts that drew their ids
    // concurrently, the lower one appended last is refused whole, and the id drawn for
    // its retry is above the thread's newest.
    let lower = store.next_id(thread).await.unwrap();
    let higher = store.next_id(thread).await.unwrap();
    assert!(lower < higher);
    assert_eq!(
        store
            .append(message(thread, higher, 7), None, KEEP_ALL)
            .await
            .unwrap(),
        Appended::Stored
    );
    for behind in [lower, higher] {
        assert_eq!(
            store
                .append(message(thread, behind, 7), None, KEEP_ALL)
                .await
                .unwrap(),
            Appended::Behind,
            "an id at or below the newest"
        );
    }
    let retried = post(store, thread, 7, KEEP_ALL).await;
    assert!(retried > higher);
    let after_race = store.page(thread, None, 50, None).await.unwrap();
    assert_eq!(ids(&after_race)[..7], posted, "nothing else changed");
    assert_eq!(ids(&after_race)[7..], [higher, retried], "each stored once");
    assert_eq!(store.delete_thread(thread).await.unwrap(), 9);
    posted.clear();
    for i in 0..7 {
        posted.push(post(store, thread, i, KEEP_ALL).await);
    }

    // Idempotency keys: a repeat by the same sender to the same thread stores nothing
    // and names the first message, whatever id it drew; another sender, another thread
    // or another key is a post of its own; an expired message's key is free again.
    let key = IdempotencyKey::parse("retry-7f3a").unwrap();
    let first = store.next_id(thread).await.unwrap();
    let keyed = |id, sender, thread, secs| StoredMessage {
        sender_id: uid(sender),
        ..message(thread, id, secs)
    };
    assert_eq!(
        store
            .append(keyed(first, 7, thread, 10), Some(&key), KEEP_ALL)
            .await
            .unwrap(),
        Appended::Stored
    );
    for _ in 0..2 {
        let again = store.next_id(thread).await.unwrap();
        assert_eq!(
            store
                .append(keyed(again, 7, thread, 11), Some(&key), KEEP_ALL)
                .await
                .unwrap(),
            Appended::Duplicate(first),
            "the same key again"
        );
    }
    let by_other = store.next_id(thread).await.unwrap();
    assert_eq!(
        store
            .append(keyed(by_other, 8, thread, 11), Some(&key), KEEP_ALL)
            .await
            .unwrap(),
        Appended::Stored,
        "another sender's key"
    );
    let elsewhere = store.next_id(other).await.unwrap();
    assert_eq!(
        store
            .append(keyed(elsewhere, 7, other, 11), Some(&key), KEEP_ALL)
            .await
            .unwrap(),
        Appended::Stored,
        "another thread"
    );
    let keyed_ids = ids(&store.page(thread, None, 50, None).await.unwrap());
    assert_eq!(keyed_ids.iter().filter(|&&id| id == first).count(), 1);
    assert_eq!(
        keyed_ids.last(),
        Some(&by_other),
        "the repeats stored nothing"
    );
    let later = store.next_id(thread).await.unwrap();
    let past_ttl = RetentionCut {
        expired_before: Some(at(11)),
        keep_newest: None,
    };
    assert_eq!(
        store
            .append(keyed(later, 7, thread, 12), Some(&key), past_ttl)
            .await
            .unwrap(),
        Appended::Stored,
        "the key expired with its message"
    );
    assert_eq!(
        ids(&store.page(thread, None, 50, None).await.unwrap()),
        [by_other, later],
        "older messages expired by that append"
    );
    assert_eq!(store.delete_thread(thread).await.unwrap(), 2);
    assert_eq!(store.delete_thread(other).await.unwrap(), 8);
    posted.clear();
    for i in 0..7 {
        posted.push(post(store, thread, i, KEEP_ALL).await);
        post(store, other, i, KEEP_ALL).await;
    }

    // A batch: in order, each message as a single append would answer it, a later one
    // seeing what the earlier ones stored (their ids, their keys), one answer each.
    let batched = ThreadId::new(fresh_id()).unwrap();
    let (a, b, c) = (
        store.next_id(batched).await.unwrap(),
        store.next_id(batched).await.unwrap(),
        store.next_id(batched).await.unwrap(),
    );
    let batch_key = IdempotencyKey::parse("batch-key").unwrap();
    let answers = store
        .append_all(
            &[
                (message(batched, a, 20), Some(batch_key.clone())),
                (message(batched, b, 20), Some(batch_key.clone())),
                (message(batched, c, 20), None),
            ],
            KEEP_ALL,
        )
        .await
        .unwrap();
    assert_eq!(
        answers,
        [Appended::Stored, Appended::Duplicate(a), Appended::Stored]
    );
    assert_eq!(
        ids(&store.page(batched, None, 50, None).await.unwrap()),
        [a, c]
    );
    // An id below an earlier one of the same batch is behind. A store may refuse the
    // whole batch then (storing none of it); whatever it answers is what it stored.
    let (d, e) = (
        store.next_id(batched).await.unwrap(),
        store.next_id(batched).await.unwrap(),
    );
    let answers = store
        .append_all(
            &[
                (message(batched, e, 21), None),
                (message(batched, d, 21), None),
            ],
            KEEP_ALL,
        )
        .await
        .unwrap();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[1], Appended::Behind);
    let kept = ids(&store.page(batched, None, 50, None).await.unwrap());
    match answers[0] {
        Appended::Stored => assert_eq!(kept, [a, c, e]),
        Appended::Behind => assert_eq!(kept, [a, c]),
        other => panic!("{other:?}"),
    }
    assert!(store.append_all(&[], KEEP_ALL).await.unwrap().is_empty());
    store.delete_thread(batched).await.unwrap();

    // TTL on read: expired messages are never returned, nor counted in has_more.
    let cut = Some(at(3));
    let fresh = store.page(thread, None, 50, cut).await.unwrap();
    assert_eq!(ids(&fresh), posted[3..7]);
    assert!(!fresh.has_more);
    let fresh_page = store.page(thread, None, 2, cut).await.unwrap();
    assert_eq!(ids(&fresh_page), posted[5..7]);
    assert!(fresh_page.has_more);

    // TTL and cap on write: the append drops expired and over-cap messages.
    let cap = RetentionCut {
        expired_before: Some(at(2)),
        keep_newest: NonZeroU32::new(3),
    };
    let newest = post(store, thread, 8, cap).await;
    let kept = store.page(thread, None, 50, None).await.unwrap();
    assert_eq!(
        ids(&kept),
        [posted[5], posted[6], newest],
        "newest 3 kept in the store"
    );
    let other_kept = store.page(other, None, 50, None).await.unwrap();
    assert_eq!(other_kept.messages.len(), 7, "another thread is untouched");

    // Redaction keeps metadata, drops content; idempotent.
    assert_eq!(store.redact_thread(thread).await.unwrap(), 3);
    assert_eq!(store.redact_thread(thread).await.unwrap(), 0);
    let redacted = store.page(thread, None, 50, None).await.unwrap();
    assert_eq!(ids(&redacted), [posted[5], posted[6], newest]);
    assert!(redacted.messages.iter().all(|m| m.content.is_none()));
    assert!(store.page(other, None, 1, None).await.unwrap().messages[0]
        .content
        .is_some());

    // Deletion of a thread; idempotent.
    assert_eq!(store.delete_thread(thread).await.unwrap(), 3);
    assert_eq!(store.delete_thread(thread).await.unwrap(), 0);
    assert!(store
        .page(thread, None, 50, None)
        .await
        .unwrap()
        .messages
        .is_empty());

    // The sweep's deletion of expired messages.
    let removed = store.delete_expired(at(4)).await.unwrap();
    assert!(removed >= 4, "at least the other thread's 4 old messages");
    let left = store.page(other, None, 50, None).await.unwrap();
    assert_eq!(left.messages.len(), 3);
    assert!(left.messages.iter().all(|m| m.created_at >= at(4)));
}

/// Claiming, leases, retries and failures of jobs.
pub async fn job_queue(queue: &dyn JobQueue) {
    let lease = Duration::from_secs(60);
    let t = ThreadId::new(fresh_id()).unwrap();
    let failed_before = queue.failed_count().await.unwrap();
    // A job in the far future is not due.
    let later = queue
        .enqueue(JobKind::PurgeThread(t), at(1_000_000))
        .await
        .unwrap();
    let id = queue.enqueue(JobKind::PurgeThread(t), at(0)).await.unwrap();
    assert_ne!(id, later);

    let job = queue.claim(at(0), lease).await.unwrap().expect("a due job");
    assert_eq!(job.id, id);
    assert_eq!(job.kind, JobKind::PurgeThread(t));
    assert_eq!(job.attempt, 1);
    assert_eq!(
        queue
            .claim(at(1), lease)
            .await
            .unwrap()
            .map(|j| j.id)
            .filter(|j| *j == id),
        None,
        "leased"
    );

    // Retry later: not due before, due at its time, attempt counted.
    queue.fail(id, "store down", Some(at(30))).await.unwrap();
    assert_eq!(
        queue
            .claim(at(29), lease)
            .await
            .unwrap()
            .map(|j| j.id)
            .filter(|j| *j == id),
        None
    );
    let retry = queue
        .claim(at(30), lease)
        .await
        .unwrap()
        .expect("due again");
    assert_eq!((retry.id, retry.attempt), (id, 2));

    // A lease that runs out makes the job due again (the worker died).
    let resumed = queue
        .claim(at(30 + 61), lease)
        .await
        .unwrap()
        .expect("lease expired");
    assert_eq!((resumed.id, resumed.attempt), (id, 3));

    // The sweep settles expired leases: with attempts left the job is due at once...
    let settled = queue.expire_leases(at(30 + 61 + 61), 5).await.unwrap();
    assert!(settled.requeued >= 1, "{settled:?}");
    assert_eq!(settled.failed, 0);
    let requeued = queue
        .claim(at(30 + 61 + 61), lease)
        .await
        .unwrap()
        .expect("due at once");
    assert_eq!((requeued.id, requeued.attempt), (id, 4));
    // ...and a job that used its last attempt is kept as failed, not claimed forever.
    let settled = queue.expire_leases(at(1_000), 4).await.unwrap();
    assert_eq!((settled.requeued, settled.failed), (0, 1));
    assert_eq!(queue.failed_count().await.unwrap(), failed_before + 1);
    assert_eq!(
        queue.expire_leases(at(2_000), 4).await.unwrap(),
        Default::default(),
        "settled once"
    );

    // Failed for good: kept, counted, never claimed.
    let id = queue.enqueue(JobKind::PurgeThread(t), at(0)).await.unwrap();
    let job = queue.claim(at(0), lease).await.unwrap().expect("due");
    assert_eq!(job.id, id);
    queue.fail(id, "gave up", None).await.unwrap();
    assert_eq!(queue.failed_count().await.unwrap(), failed_before + 2);
    assert_eq!(
        queue
            .claim(at(10_000), lease)
            .await
            .unwrap()
            .map(|j| j.id)
            .filter(|j| *j == id),
        None
    );

    // Completion removes the job.
    let done = queue.enqueue(JobKind::PurgeThread(t), at(0)).await.unwrap();
    let job = queue.claim(at(0), lease).await.unwrap().expect("due");
    assert_eq!(job.id, done);
    queue.complete(done).await.unwrap();
    assert_eq!(
        queue
            .claim(at(100_000), lease)
            .await
            .unwrap()
            .map(|j| j.id)
            .filter(|j| *j == done),
        None
    );
}

/// Publish reaches every subscriber, in order.
pub async fn event_bus(bus: &dyn EventBus) {
    let t = ThreadId::new(fresh_id()).unwrap();
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

/// One holder at a time; only the holder releases; a lapsed lease frees the lock.
pub async fn lease_lock(lock: &dyn LeaseLock) {
    let name = format!("contract-{}", fresh_id());
    let long = Duration::from_secs(60);

    // Two contenders at once: exactly one wins.
    let (a, b) = futures::join!(lock.try_acquire(&name, long), lock.try_acquire(&name, long));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.is_some() != b.is_some(), "exactly one contender wins");
    let token = a.or(b).unwrap();
    assert_eq!(lock.try_acquire(&name, long).await.unwrap(), None, "held");

    // Another name is another lock.
    let other = format!("{name}-other");
    let other_token = lock.try_acquire(&other, long).await.unwrap().expect("free");
    assert_ne!(other_token, token);

    // A non-owner cannot release it, not even with the other lock's token.
    let forged = LockToken(format!("{}x", token.0));
    assert!(!lock.release(&name, &forged).await.unwrap());
    assert!(!lock.release(&name, &other_token).await.unwrap());
    assert_eq!(
        lock.try_acquire(&name, long).await.unwrap(),
        None,
        "still held"
    );

    // The owner releases it, once; then it can be taken again.
    assert!(lock.release(&name, &token).await.unwrap());
    assert!(!lock.release(&name, &token).await.unwrap());
    let again = lock
        .try_acquire(&name, long)
        .await
        .unwrap()
        .expect("free again");
    assert!(lock.release(&name, &again).await.unwrap());

    // A lease that runs out frees the lock, and the lapsed token frees nothing.
    let short = lock
        .try_acquire(&name, Duration::from_millis(200))
        .await
        .unwrap()
        .expect("free");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let next = lock
        .try_acquire(&name, long)
        .await
        .unwrap()
        .expect("expired");
    assert!(!lock.release(&name, &short).await.unwrap(), "lapsed token");
    assert_eq!(lock.try_acquire(&name, long).await.unwrap(), None);
    assert!(lock.release(&name, &next).await.unwrap());
    assert!(lock.release(&other, &other_token).await.unwrap());
}

/// Fixed windows: concurrent hits are each counted once, keys are independent, and a
/// window that ends starts the count again.
pub async fn rate_counter(counter: &dyn RateCounter) {
    let key = format!("contract-{}", fresh_id());
    let window = Duration::from_millis(600);

    let hits = futures::future::join_all((0..20).map(|_| counter.hit(&key, window))).await;
    let mut counts: Vec<u64> = hits.iter().map(|h| h.as_ref().unwrap().count).collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=20).collect::<Vec<u64>>(),
        "each hit counted once"
    );
    for hit in &hits {
        let resets_in = hit.as_ref().unwrap().resets_in;
        assert!(
            resets_in > Duration::ZERO && resets_in <= window,
            "{resets_in:?}"
        );
    }

    let other = counter.hit(&format!("{key}-other"), window).await.unwrap();
    assert_eq!(other.count, 1, "another key, another count");

    // A later hit in the same window does not extend it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let later = counter.hit(&key, window).await.unwrap();
    assert_eq!(later.count, 21);
    assert!(later.resets_in <= Duration::from_millis(450), "{later:?}");

    tokio::time::sleep(later.resets_in + Duration::from_millis(100)).await;
    let fresh = counter.hit(&key, window).await.unwrap();
    assert_eq!(fresh.count, 1, "the window ended");
}
