//! Messages: order, cursors, retention, idempotency keys, batches, redaction.

use super::*;

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
    // Each part below starts on a thread of its own.
    let thread = ThreadId::new(fresh_id()).unwrap();
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
    let (thread, other) = (
        ThreadId::new(fresh_id()).unwrap(),
        ThreadId::new(fresh_id()).unwrap(),
    );
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

    // The sweep's deletion of expired messages, but of the threads it must keep (a
    // legal hold).
    let kept_before = store.page(thread, None, 50, None).await.unwrap();
    let removed = store.delete_expired(at(4), &[thread]).await.unwrap();
    assert!(removed >= 4, "at least the other thread's 4 old messages");
    let left = store.page(other, None, 50, None).await.unwrap();
    assert_eq!(left.messages.len(), 3);
    assert!(left.messages.iter().all(|m| m.created_at >= at(4)));
    assert_eq!(
        ids(&store.page(thread, None, 50, None).await.unwrap()),
        ids(&kept_before),
        "a kept thread loses nothing"
    );
}
