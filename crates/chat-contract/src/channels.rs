//! The channel registry.

use super::*;
use chat_core::ports::{ChannelMember, ChannelRegistry};

fn member(socket: &str, user: Option<i64>) -> ChannelMember {
    ChannelMember {
        socket: socket.to_owned(),
        user: user.map(uid),
        info: user.map(|_| r#"{"role":"nurse"}"#.to_owned()),
    }
}

/// Held subscriptions are counted until they lapse or are released; channels are
/// listed by prefix with their counts.
pub async fn channel_registry(registry: &dyn ChannelRegistry) {
    let run = fresh_id();
    let a = format!("private-chat.{run}1");
    let b = format!("private-chat.{run}2");
    let other = format!("presence-chat.{run}1");
    // Instances named by the run: another suite's reaping never touches these.
    let (one, two, three) = (
        member(&format!("i{run}a.1"), Some(7)),
        member(&format!("i{run}b.5"), Some(11)),
        member(&format!("i{run}a.2"), None),
    );
    registry
        .hold(
            &[
                (a.clone(), one.clone()),
                (a.clone(), two.clone()),
                (b.clone(), three.clone()),
            ],
            at(100),
        )
        .await
        .unwrap();
    registry
        .hold(&[(other.clone(), one.clone())], at(100))
        .await
        .unwrap();
    assert_eq!(
        registry.members(&a, at(50)).await.unwrap(),
        vec![one.clone(), two.clone()]
    );
    let prefix = format!("private-chat.{run}");
    assert_eq!(
        registry.occupied(&prefix, at(50)).await.unwrap(),
        vec![(a.clone(), 2), (b.clone(), 1)],
        "by prefix, with counts"
    );

    // Released: gone at once; released again: nothing to do.
    registry.release(&a, &two).await.unwrap();
    registry.release(&a, &two).await.unwrap();
    assert_eq!(
        registry.members(&a, at(50)).await.unwrap(),
        vec![one.clone()]
    );

    // A renewal keeps a subscription; one not renewed lapses (its instance died).
    registry
        .hold(&[(a.clone(), one.clone())], at(200))
        .await
        .unwrap();
    assert_eq!(
        registry.members(&a, at(150)).await.unwrap(),
        vec![one.clone()]
    );
    assert!(
        registry.members(&b, at(150)).await.unwrap().is_empty(),
        "lapsed"
    );
    assert_eq!(
        registry.occupied(&prefix, at(150)).await.unwrap(),
        vec![(a.clone(), 1)]
    );
    registry.release(&a, &one).await.unwrap();
    assert!(registry
        .occupied(&prefix, at(150))
        .await
        .unwrap()
        .is_empty());
    assert!(registry
        .members("private-chat.0", at(0))
        .await
        .unwrap()
        .is_empty());
}

/// What an instance that died (stopped renewing) left in the registry is taken away
/// by one reaper, once, with its channels and members, so that its departures can be
/// announced; a live instance's subscriptions are never reaped.
pub async fn channel_registry_reaping(registry: &dyn ChannelRegistry) {
    let run = fresh_id();
    let presence = format!("presence-chat.{run}1");
    let private = format!("private-chat.{run}2");
    let (dead, live) = (format!("d{run}"), format!("l{run}"));
    let gone = [
        (presence.clone(), member(&format!("{dead}.1"), Some(7))),
        (private.clone(), member(&format!("{dead}.1"), None)),
        (private.clone(), member(&format!("{dead}.2"), Some(8))),
    ];
    let staying = (presence.clone(), member(&format!("{live}.9"), Some(11)));
    registry.hold(&gone, at(100)).await.unwrap();
    registry
        .hold(std::slice::from_ref(&staying), at(100))
        .await
        .unwrap();
    registry
        .hold(std::slice::from_ref(&staying), at(300))
        .await
        .unwrap();
    let ours = |reaped: Vec<(String, ChannelMember)>| -> Vec<(String, ChannelMember)> {
        let mut ours: Vec<_> = reaped
            .into_iter()
            .filter(|(channel, _)| channel.contains(&run.to_string()))
            .collect();
        ours.sort_by(|a, b| (&a.0, &a.1.socket).cmp(&(&b.0, &b.1.socket)));
        ours
    };
    assert!(
        ours(registry.reap(at(50)).await.unwrap()).is_empty(),
        "nothing has lapsed yet"
    );

    // Two instances reap at once: the dead one's subscriptions go to one of them.
    let (first, second) = futures::join!(registry.reap(at(150)), registry.reap(at(150)));
    let (first, second) = (ours(first.unwrap()), ours(second.unwrap()));
    assert!(
        first.is_empty() || second.is_empty(),
        "reaped twice: {first:?} and {second:?}"
    );
    let mut expected = gone.to_vec();
    expected.sort_by(|a, b| (&a.0, &a.1.socket).cmp(&(&b.0, &b.1.socket)));
    assert_eq!([first, second].concat(), expected);
    assert!(
        ours(registry.reap(at(150)).await.unwrap()).is_empty(),
        "once"
    );
    assert_eq!(
        registry.members(&presence, at(150)).await.unwrap(),
        vec![staying.1.clone()],
        "the live instance's member stays"
    );
    assert!(registry.members(&private, at(0)).await.unwrap().is_empty());

    // An instance that renews again is alive again: nothing of it is reaped.
    registry.hold(&gone[..1], at(400)).await.unwrap();
    assert!(ours(registry.reap(at(250)).await.unwrap()).is_empty());
    registry.release(&gone[0].0, &gone[0].1).await.unwrap();
    registry.release(&staying.0, &staying.1).await.unwrap();
}
