//! The job queue.

use super::*;

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
