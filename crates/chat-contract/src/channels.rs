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
    let (one, two, three) = (
        member("i1.1", Some(7)),
        member("i2.5", Some(11)),
        member("i1.2", None),
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
