//! Webhook batches (SPEC §9.1): with `webhook_batch`, the events wait in memory until
//! the batch is full or flushed, then leave as one delivery (one job, one body of
//! several events, in order); without it each event is a delivery of its own.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on what it does not expect"
)]

use chat_core::{
    ChatService, ChatSettings, MessageContent, Ports, RequestId, TextBody, ThreadId, User, UserId,
    WebhookBatching,
};
use chat_crypto::MasterKeyRing;
use serde_json::Value;
use std::num::NonZeroUsize;
use std::sync::Arc;

mod support;
use support::Host;

fn service(batch: Option<usize>) -> (ChatService, Arc<Host>) {
    let host = Arc::new(Host::default());
    let ports = Ports {
        webhooks: Some(host.clone()),
        ..chat_memory::ports(Arc::new(MasterKeyRing::generate().unwrap()))
    };
    let settings = ChatSettings {
        webhook_batch: batch
            .and_then(NonZeroUsize::new)
            .map(|max_events| WebhookBatching {
                max_events,
                wait: std::time::Duration::from_millis(250),
            }),
        ..ChatSettings::default()
    };
    (ChatService::new(ports, settings), host)
}

async fn thread(service: &ChatService) -> ThreadId {
    let request = RequestId::new(5).unwrap();
    let admin = User::new(UserId::new(1).unwrap(), "admin");
    service
        .register_request(&admin, request, UserId::new(7).unwrap(), vec![], false)
        .await
        .unwrap();
    let client = User::new(UserId::new(7).unwrap(), "client");
    service.open_thread(&client, request).await.unwrap().id
}

/// Posts `n` texts as the client; returns their ids.
async fn post(service: &ChatService, thread: ThreadId, n: usize) -> Vec<i64> {
    let client = User::new(UserId::new(7).unwrap(), "client");
    let mut ids = Vec::new();
    for i in 0..n {
        let body = TextBody::parse(&format!("m{i}"), 100).unwrap();
        let id = service
            .post_message(&client, thread, None, || Ok(MessageContent::Text(body)))
            .await
            .unwrap();
        ids.push(id.get());
    }
    ids
}

/// Runs every due job; returns how many.
async fn run_jobs(service: &ChatService) -> usize {
    let mut ran = 0;
    while let Some(job) = service.next_job().await.unwrap() {
        service.run_job(job).await.unwrap();
        ran += 1;
    }
    ran
}

/// Each delivery's id and the message ids of its events, in order.
fn deliveries(host: &Host) -> Vec<(String, Vec<i64>)> {
    host.0
        .lock()
        .unwrap()
        .iter()
        .map(|d| {
            let body: Value = serde_json::from_str(&d.body).unwrap();
            let ids = body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["message_id"].as_i64().unwrap())
                .collect();
            (d.id.clone(), ids)
        })
        .collect()
}

#[tokio::test]
async fn events_leave_in_batches_when_full_or_flushed_one_job_each() {
    let (service, host) = service(Some(5));
    let thread = thread(&service).await;
    let posted = post(&service, thread, 12).await;
    assert_eq!(
        run_jobs(&service).await,
        2,
        "two full batches, one job each"
    );
    service.flush_webhooks().await;
    assert_eq!(run_jobs(&service).await, 1, "the rest, flushed");
    service.flush_webhooks().await;
    assert_eq!(run_jobs(&service).await, 0, "nothing left to flush");

    let sent = deliveries(&host);
    let events: Vec<i64> = sent.iter().flat_map(|(_, ids)| ids.clone()).collect();
    assert_eq!(events, posted, "every event once, in order");
    assert_eq!(
        sent.iter().map(|(_, ids)| ids.len()).collect::<Vec<_>>(),
        [5, 5, 2]
    );
    assert_eq!(
        sent[0].0,
        format!("batch.message_created.{thread}.{}.5", posted[0]),
        "a batch is named after its first event and its size"
    );
}

#[tokio::test]
async fn without_batches_and_alone_an_event_keeps_its_own_delivery() {
    let (service, host) = service(None);
    let thread = thread(&service).await;
    let posted = post(&service, thread, 2).await;
    assert_eq!(run_jobs(&service).await, 2, "one job per event");

    let (batched, batched_host) = self::service(Some(10));
    let other = self::thread(&batched).await;
    let alone = post(&batched, other, 1).await;
    batched.flush_webhooks().await;
    assert_eq!(run_jobs(&batched).await, 1);

    let ids =
        |host: &Host| -> Vec<String> { deliveries(host).into_iter().map(|(id, _)| id).collect() };
    assert_eq!(
        ids(&host),
        posted
            .iter()
            .map(|id| format!("message_created.{thread}.{id}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        ids(&batched_host),
        [format!("message_created.{other}.{}", alone[0])]
    );
}
