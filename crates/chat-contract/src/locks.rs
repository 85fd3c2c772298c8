//! Lease locks and rate counters.

use super::*;

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
