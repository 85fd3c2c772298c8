//! Escalation when unread (SPEC §10) through the running service: posts and read
//! markers over HTTP, `message_unread` at the host's webhook endpoint, once, with ids
//! only; in memory, and on PostgreSQL with two instances sharing the work.

use crate::care::support::mark_read;
use crate::helpers::*;
use crate::host::{deliveries_named, Receiver};
use serde_json::{json, Value};
use std::time::Duration;

/// The `message_unread` events delivered so far: (delivery id, event), every attempt
/// (a delivery may carry several events, a batch).
fn unread_events(host: &Receiver) -> Vec<(String, Value)> {
    deliveries_named(host, "message_unread")
        .into_iter()
        .flat_map(|(id, body)| {
            let body: Value = serde_json::from_str(&body).unwrap();
            let events = body["events"].as_array().cloned().unwrap_or_default();
            events
                .into_iter()
                .filter(|e| e["name"] == "message_unread")
                .map(move |e| (id.clone(), e))
        })
        .collect()
}

/// Advances every instance's clock (each has its own, as separate machines would).
fn advance(apps: &[&TestApp], by: Duration) {
    for app in apps {
        app.clock.advance(by);
    }
}

/// Client 7 and nurse 11 post, through the first and the last instance; carer 12 and
/// the client read the nurse's message. A minute later the client's message is still
/// unread by the nurse: one `message_unread`, and never a second.
async fn escalates_once(apps: &[&TestApp], host: &Receiver) {
    let (first, last) = (apps[0], apps[apps.len() - 1]);
    json_of(
        first
            .register(&admin(), 5, json!({"client_id": 7, "staff_ids": [11, 12]}))
            .await,
        200,
    )
    .await;
    let client = token(7, "client");
    let thread = json_of(first.open(&client, 5).await, 200).await["threadId"]
        .as_i64()
        .unwrap();
    let canary = format!("unread-canary-{}", now_secs());
    let m1 = first.post_text(&client, thread, &canary).await;
    let m2 = last
        .post_text(&token(11, "nurse"), thread, "on my way")
        .await;
    for reader in [token(12, "carer"), client.clone()] {
        let marked = mark_read(last, &reader, thread, json!({"upTo": m2})).await;
        assert_eq!(marked.status(), 200);
    }

    advance(apps, Duration::from_secs(61));
    eventually(Duration::from_secs(15), "message_unread", || async {
        (!unread_events(host).is_empty()).then_some(())
    })
    .await;
    // The receiver refuses each delivery's first attempt: the retry comes 5 s later.
    // Then a minute more of checks on every instance, which must send nothing again.
    for _ in 0..6 {
        advance(apps, Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let events = unread_events(host);
    let expected = format!("message_unread.{thread}.{m1}");
    assert!(
        events.iter().all(|(id, _)| *id == expected),
        "only the client's message: {events:?}"
    );
    assert_eq!(events.len(), 2, "one refused attempt and its retry, once");
    let event = &events[0].1;
    assert_eq!(event["message_id"], m1);
    assert_eq!(event["thread_id"], thread);
    assert_eq!(event["request_id"], 5);
    assert_eq!(event["sender_id"], 7);
    assert_eq!(event["unread_user_ids"], json!([11]));
    let everything = format!("{events:?}");
    assert!(!everything.contains(&canary), "ids only");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unread_message_escalates_once_in_memory() {
    let (hook, host) = crate::host::receiver().await;
    let app = TestApp::spawn_with(&[
        ("CHAT_WEBHOOK_URL", hook.as_str()),
        ("CHAT_UNREAD_ESCALATION_SECS", "60"),
    ])
    .await;
    escalates_once(&[&app], &host).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unread_message_escalates_once_from_two_instances_on_postgres() {
    let (hook, host) = crate::host::receiver().await;
    let db = database();
    let mut vars = postgres_vars(&db);
    vars.push(("CHAT_WEBHOOK_URL", hook));
    vars.push(("CHAT_UNREAD_ESCALATION_SECS", "60".into()));
    let a = TestApp::spawn_with(&borrowed(&vars)).await;
    let b = TestApp::spawn_with(&borrowed(&vars)).await;
    escalates_once(&[&a, &b], &host).await;
}
