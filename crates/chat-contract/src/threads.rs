//! Service requests, threads and their keys.

use super::*;

/// Registering and reading service requests.
pub async fn request_directory(dir: &dyn RequestDirectory) {
    let id = RequestId::new(fresh_id()).unwrap();
    assert_eq!(dir.get(id).await.unwrap(), None, "unknown request is None");
    let req = ServiceRequest::new(id, uid(7), vec![uid(12), uid(11)]);
    assert_eq!(dir.upsert(req.clone()).await.unwrap(), req);
    assert_eq!(dir.get(id).await.unwrap(), Some(req));
    let moved = ServiceRequest::new(id, uid(8), Vec::new());
    assert_eq!(
        dir.upsert(moved.clone()).await.unwrap(),
        moved,
        "upsert replaces the client and the team"
    );
    assert_eq!(dir.get(id).await.unwrap(), Some(moved));
}

/// Opening (idempotent, concurrent, admin assignment), reading and closing threads.
pub async fn thread_repository(repo: &dyn ThreadRepository) {
    let req = ServiceRequest::new(RequestId::new(fresh_id()).unwrap(), uid(7), vec![uid(11)]);
    let opened = repo.open_for_request(&req, None, at(0)).await.unwrap();
    assert_eq!(opened.request_id, req.id);
    assert_eq!(opened.client_id, req.client_id);
    assert_eq!(opened.admin_id, None);
    assert_eq!(opened.status, ThreadStatus::Open);
    assert_eq!(opened.opened_at, at(0));
    assert_eq!(opened.closed_at, None);
    assert_eq!(
        opened.staff_ids,
        vec![uid(11)],
        "the team comes from the request"
    );
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
    let req2 = ServiceRequest::new(RequestId::new(fresh_id()).unwrap(), uid(9), Vec::new());
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
