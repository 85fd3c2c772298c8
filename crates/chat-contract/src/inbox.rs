//! Care teams, the inbox, read markers; retraction and unread counts of messages.

use super::*;
use chat_core::{InboxCursor, InboxQuery};

fn query(reader: UserId, status: Option<ThreadStatus>, limit: u32) -> InboxQuery {
    InboxQuery {
        reader,
        everyone: false,
        status,
        after: None,
        limit,
    }
}

fn thread_ids(entries: &[chat_core::InboxEntry]) -> Vec<ThreadId> {
    entries.iter().map(|e| e.thread.id).collect()
}

/// A team change applies to the thread at once; the inbox lists a participant's
/// threads (client, admin, staff) by last activity, pages by cursor, filters by status,
/// and carries the reader's read marker, which never moves back.
pub async fn care_team_and_inbox(repo: &dyn ThreadRepository) {
    // Users of their own, so that other tests sharing the store do not show up.
    let (client, nurse, other_nurse, admin) = (
        uid(fresh_id()),
        uid(fresh_id()),
        uid(fresh_id()),
        uid(fresh_id()),
    );
    let request = |staff: Vec<UserId>| {
        ServiceRequest::new(RequestId::new(fresh_id()).unwrap(), client, staff)
    };
    let r1 = request(vec![nurse]);
    let r2 = request(vec![nurse, other_nurse]);
    let r3 = request(Vec::new());
    let t1 = repo.open_for_request(&r1, None, at(100)).await.unwrap();
    let t2 = repo
        .open_for_request(&r2, Some(admin), at(200))
        .await
        .unwrap();
    let t3 = repo.open_for_request(&r3, None, at(300)).await.unwrap();

    // Newest activity first: the opening until a message is recorded.
    let page = repo.inbox(&query(client, None, 10)).await.unwrap();
    assert_eq!(thread_ids(&page), vec![t3.id, t2.id, t1.id]);
    assert_eq!(page[0].last_message_id, None);
    let nurse_sees = repo.inbox(&query(nurse, None, 10)).await.unwrap();
    assert_eq!(
        thread_ids(&nurse_sees),
        vec![t2.id, t1.id],
        "staff see their requests'"
    );
    let admin_sees = repo.inbox(&query(admin, None, 10)).await.unwrap();
    assert_eq!(thread_ids(&admin_sees), vec![t2.id], "the admin theirs");
    let stranger = repo.inbox(&query(uid(fresh_id()), None, 10)).await.unwrap();
    assert!(stranger.is_empty(), "a stranger's inbox is empty");

    // A message moves its thread to the top; an older record never moves it back.
    let m1 = MessageId::new(fresh_id()).unwrap();
    repo.record_activity(t1.id, m1, at(400)).await.unwrap();
    let stale = MessageId::new(m1.get() - 1).unwrap();
    repo.record_activity(t1.id, stale, at(50)).await.unwrap();
    let page = repo.inbox(&query(client, None, 10)).await.unwrap();
    assert_eq!(thread_ids(&page), vec![t1.id, t3.id, t2.id]);
    assert_eq!(page[0].last_message_id, Some(m1));
    assert_eq!(page[0].last_message_at, Some(at(400)));

    // Pages of one, by cursor, cover the whole inbox once.
    let mut walked = Vec::new();
    let mut after: Option<InboxCursor> = None;
    for _ in 0..5 {
        let page = repo
            .inbox(&InboxQuery {
                after,
                ..query(client, None, 1)
            })
            .await
            .unwrap();
        let Some(entry) = page.first() else { break };
        walked.push(entry.thread.id);
        after = Some(entry.cursor());
    }
    assert_eq!(walked, vec![t1.id, t3.id, t2.id]);

    // Status: a closed thread leaves the open inbox and joins the closed one.
    repo.close(t3.id, at(500)).await.unwrap();
    let open = repo
        .inbox(&query(client, Some(ThreadStatus::Open), 10))
        .await
        .unwrap();
    assert_eq!(thread_ids(&open), vec![t1.id, t2.id]);
    let closed = repo
        .inbox(&query(client, Some(ThreadStatus::Closed), 10))
        .await
        .unwrap();
    assert_eq!(thread_ids(&closed), vec![t3.id]);
    assert_eq!(closed[0].thread.status, ThreadStatus::Closed);

    // Everyone (an admin's scope=all) includes threads the reader is not part of.
    // (Starting below the present: other tests' threads, opened now, come first.)
    let everyone = repo
        .inbox(&InboxQuery {
            everyone: true,
            after: Some(InboxCursor {
                activity_at: at(1000),
                thread_id: ThreadId::new(i64::MAX).unwrap(),
            }),
            ..query(other_nurse, None, 1000)
        })
        .await
        .unwrap();
    for thread in [t1.id, t2.id, t3.id] {
        assert!(thread_ids(&everyone).contains(&thread));
    }

    // A new team applies at once: the removed member loses the thread, the new one
    // gets it, and the caller learns the team it replaced.
    let (now, before) = repo
        .set_staff(r2.id, &[other_nurse])
        .await
        .unwrap()
        .expect("the request has a thread");
    let mut team = vec![nurse, other_nurse];
    team.sort();
    assert_eq!(before, team);
    assert_eq!(now.staff_ids, vec![other_nurse]);
    assert_eq!(
        repo.get(t2.id).await.unwrap().unwrap().staff_ids,
        vec![other_nurse]
    );
    let nurse_sees = repo.inbox(&query(nurse, None, 10)).await.unwrap();
    assert_eq!(thread_ids(&nurse_sees), vec![t1.id]);
    let other_sees = repo.inbox(&query(other_nurse, None, 10)).await.unwrap();
    assert_eq!(thread_ids(&other_sees), vec![t2.id]);
    let unopened = RequestId::new(fresh_id()).unwrap();
    assert_eq!(repo.set_staff(unopened, &[nurse]).await.unwrap(), None);

    // Read markers: per user, only forward, in the inbox, dropped with the thread.
    let low = MessageId::new(10).unwrap();
    let high = MessageId::new(20).unwrap();
    assert_eq!(repo.mark_read(t1.id, client, high).await.unwrap(), high);
    assert_eq!(
        repo.mark_read(t1.id, client, low).await.unwrap(),
        high,
        "never back"
    );
    assert_eq!(repo.mark_read(t1.id, nurse, low).await.unwrap(), low);
    let mut expected = vec![(client, high), (nurse, low)];
    expected.sort();
    assert_eq!(repo.reads(t1.id).await.unwrap(), expected);
    let page = repo.inbox(&query(client, None, 10)).await.unwrap();
    assert_eq!(page[0].read_up_to, Some(high));
    assert_eq!(repo.forget_reads(t1.id).await.unwrap(), 2);
    assert!(repo.reads(t1.id).await.unwrap().is_empty());
    assert_eq!(repo.forget_reads(t1.id).await.unwrap(), 0);
}

/// One message read and retracted (its content destroyed, its metadata kept), and
/// unread counts: above the marker, not the reader's own, not expired.
pub async fn message_retraction_and_unread(store: &dyn MessageStore) {
    let thread = ThreadId::new(fresh_id()).unwrap();
    let quiet = ThreadId::new(fresh_id()).unwrap();
    let (client, nurse) = (uid(fresh_id()), uid(fresh_id()));
    let mut ids = Vec::new();
    for (i, sender) in [client, nurse, nurse, client, nurse]
        .into_iter()
        .enumerate()
    {
        let id = store.next_id(thread).await.unwrap();
        let message = StoredMessage {
            id,
            thread_id: thread,
            sender_id: sender,
            kind: MessageKind::Text,
            content: Some(sealed(i as u8)),
            created_at: at(i as i64 * 10),
        };
        let stored = store
            .append(message, None, RetentionCut::KEEP_ALL)
            .await
            .unwrap();
        assert_eq!(stored, Appended::Stored);
        ids.push(id);
    }

    // Unread for the client: the nurse's messages above the marker.
    let counts = store
        .unread_counts(
            client,
            &[(thread, None), (quiet, None), (thread, Some(ids[1]))],
            None,
        )
        .await
        .unwrap();
    assert_eq!(counts, vec![3, 0, 2], "one answer per thread, in order");
    let fresh_only = store
        .unread_counts(client, &[(thread, None)], Some(at(15)))
        .await
        .unwrap();
    assert_eq!(fresh_only, vec![2], "expired messages are not unread");
    let own = store
        .unread_counts(nurse, &[(thread, Some(ids[4]))], None)
        .await
        .unwrap();
    assert_eq!(own, vec![0]);

    // Get and retract one message.
    let got = store.get(thread, ids[2]).await.unwrap().unwrap();
    assert_eq!((got.id, got.sender_id), (ids[2], nurse));
    assert_eq!(got.content, Some(sealed(2)));
    assert_eq!(
        store.get(quiet, ids[2]).await.unwrap(),
        None,
        "another thread's id"
    );
    assert!(store.redact(thread, ids[2]).await.unwrap());
    assert!(!store.redact(thread, ids[2]).await.unwrap(), "idempotent");
    assert!(
        !store.redact(quiet, ids[3]).await.unwrap(),
        "not stored there"
    );
    let retracted = store.get(thread, ids[2]).await.unwrap().unwrap();
    assert_eq!(retracted.content, None);
    assert_eq!(
        (retracted.kind, retracted.created_at),
        (got.kind, got.created_at)
    );
    let page = store.page(thread, None, 50, None).await.unwrap();
    let contents: Vec<bool> = page.messages.iter().map(|m| m.content.is_some()).collect();
    assert_eq!(
        contents,
        vec![true, true, false, true, true],
        "only that one"
    );
}
