//! The unread checks' schedule (SPEC §10).

use super::*;
use chat_core::ports::{UnreadCheck, UnreadChecks};

async fn claim_ours(
    checks: &dyn UnreadChecks,
    now: Timestamp,
    ours: &[ThreadId],
) -> Vec<UnreadCheck> {
    checks
        .claim(now, Duration::from_secs(60), 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| ours.contains(&c.thread))
        .collect()
}

/// Arming (the earlier due wins), claiming (once, for a lease), finishing (the mark
/// only grows; an arm while held is not lost), the order and limit of a claim, and
/// forgetting.
pub async fn unread_checks(checks: &dyn UnreadChecks) {
    let t = ThreadId::new(fresh_id()).unwrap();
    let ours = [t];
    assert!(
        claim_ours(checks, at(1_000_000), &ours).await.is_empty(),
        "never armed"
    );

    checks.arm(t, at(100)).await.unwrap();
    checks.arm(t, at(50)).await.unwrap();
    checks.arm(t, at(80)).await.unwrap();
    assert!(
        claim_ours(checks, at(49), &ours).await.is_empty(),
        "the earliest due wins"
    );
    let first = claim_ours(checks, at(50), &ours).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].checked_through, None);
    assert!(
        claim_ours(checks, at(51), &ours).await.is_empty(),
        "held by its worker"
    );

    // Finished: the mark is kept, and the next check is due when asked.
    checks
        .finish(&first[0], at(40), Some(at(200)))
        .await
        .unwrap();
    assert!(claim_ours(checks, at(199), &ours).await.is_empty());
    let second = claim_ours(checks, at(200), &ours).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].checked_through, Some(at(40)));

    // Nothing younger to wait for: not due until armed again; the mark never shrinks.
    checks.finish(&second[0], at(30), None).await.unwrap();
    assert!(
        claim_ours(checks, at(1_000_000), &ours).await.is_empty(),
        "idle"
    );
    checks.arm(t, at(300)).await.unwrap();
    let third = claim_ours(checks, at(300), &ours).await;
    assert_eq!(third[0].checked_through, Some(at(40)), "the larger mark");

    // Armed while held: the earlier of that arm and the worker's next is due.
    checks.arm(t, at(350)).await.unwrap();
    checks
        .finish(&third[0], at(250), Some(at(400)))
        .await
        .unwrap();
    assert!(claim_ours(checks, at(349), &ours).await.is_empty());
    let fourth = claim_ours(checks, at(350), &ours).await;
    assert_eq!(fourth[0].checked_through, Some(at(250)));
    checks.arm(t, at(500)).await.unwrap();
    checks
        .finish(&fourth[0], at(290), Some(at(450)))
        .await
        .unwrap();
    assert!(claim_ours(checks, at(449), &ours).await.is_empty());
    let fifth = claim_ours(checks, at(450), &ours).await;
    assert_eq!(fifth.len(), 1, "the worker's next, earlier than the arm");
    // ...and an arm while held survives a worker that asks for nothing.
    checks.arm(t, at(600)).await.unwrap();
    checks.finish(&fifth[0], at(390), None).await.unwrap();
    assert!(claim_ours(checks, at(599), &ours).await.is_empty());
    let sixth = claim_ours(checks, at(600), &ours).await;
    assert_eq!(sixth.len(), 1, "the arm that came while it ran");

    // A worker that dies: its lease runs out and the check is claimed again, as it was.
    assert!(
        claim_ours(checks, at(659), &ours).await.is_empty(),
        "leased 60 s"
    );
    let resumed = claim_ours(checks, at(660), &ours).await;
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].checked_through, Some(at(390)));
    checks.finish(&resumed[0], at(600), None).await.unwrap();

    // Oldest due first, at most `limit`.
    let (a, b, c) = (
        ThreadId::new(fresh_id()).unwrap(),
        ThreadId::new(fresh_id()).unwrap(),
        ThreadId::new(fresh_id()).unwrap(),
    );
    checks.arm(c, at(730)).await.unwrap();
    checks.arm(a, at(710)).await.unwrap();
    checks.arm(b, at(720)).await.unwrap();
    let batch = checks
        .claim(at(800), Duration::from_secs(60), 2)
        .await
        .unwrap();
    assert_eq!(
        batch.iter().map(|c| c.thread).collect::<Vec<_>>(),
        vec![a, b],
        "the two due first"
    );
    let rest = claim_ours(checks, at(800), &[a, b, c]).await;
    assert_eq!(rest.iter().map(|c| c.thread).collect::<Vec<_>>(), vec![c]);

    // Forgotten: gone, whatever its state.
    for thread in [t, a, b, c] {
        checks.forget(thread).await.unwrap();
    }
    checks.arm(b, at(900)).await.unwrap();
    checks.forget(b).await.unwrap();
    assert!(claim_ours(checks, at(1_000_000), &[t, a, b, c])
        .await
        .is_empty());
}
