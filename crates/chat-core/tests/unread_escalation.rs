//! Escalation when unread (SPEC §10), on the core over the in-memory adapters and a
//! manual clock: which messages escalate (several staff, read markers, retracted,
//! expired, closed threads), once each, on one of two instances, and that a post
//! arms a store entry per thread, not per message.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on what it does not expect"
)]

use async_trait::async_trait;
use chat_core::ports::{StoreResult, UnreadCheck, UnreadChecks};
use chat_core::{
    ChatService, ChatSettings, MessageContent, MessageId, Ports, RequestId, Retention, TextBody,
    ThreadId, Timestamp, User, UserId,
};
use chat_crypto::MasterKeyRing;
use chat_memory::*;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const DELAY: Duration = Duration::from_secs(300);

mod support;
use support::Host;

impl Host {
    /// The `message_unread` events delivered: (message id, unread user ids), by id.
    fn unread(&self) -> Vec<(i64, Vec<i64>)> {
        let mut found: Vec<(i64, Vec<i64>)> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.id.starts_with("message_unread."))
            .map(|d| {
                let body: Value = serde_json::from_str(&d.body).unwrap();
                let event = &body["events"][0];
                let ids = event["unread_user_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u.as_i64().unwrap())
                    .collect();
                (event["message_id"].as_i64().unwrap(), ids)
            })
            .collect();
        found.sort();
        found
    }

    fn bodies(&self) -> String {
        let all = self.0.lock().unwrap();
        all.iter()
            .map(|d| d.body.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The memory schedule, counting the arms that reach it.
#[derive(Default)]
struct CountingChecks {
    inner: MemoryUnreadChecks,
    arms: AtomicUsize,
}

#[async_trait]
impl UnreadChecks for CountingChecks {
    async fn arm(&self, thread: ThreadId, due: Timestamp) -> StoreResult<()> {
        self.arms.fetch_add(1, Ordering::SeqCst);
        self.inner.arm(thread, due).await
    }
    async fn claim(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> StoreResult<Vec<UnreadCheck>> {
        self.inner.claim(now, lease, limit).await
    }
    async fn finish(
        &self,
        check: &UnreadCheck,
        checked_through: Timestamp,
        next: Option<Timestamp>,
    ) -> StoreResult<()> {
        self.inner.finish(check, checked_through, next).await
    }
    async fn forget(&self, thread: ThreadId) -> StoreResult<()> {
        self.inner.forget(thread).await
    }
}

struct Setup {
    /// Two instances over the same stores, each with its own memory.
    a: ChatService,
    b: ChatService,
    clock: Arc<ManualClock>,
    host: Arc<Host>,
    checks: Arc<CountingChecks>,
}

fn user(id: i64, role: &str) -> User {
    User::new(UserId::new(id).unwrap(), role)
}

fn setup(ttl_secs: u64) -> Setup {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let host = Arc::new(Host::default());
    let checks = Arc::new(CountingChecks::default());
    let ports = Ports {
        clock: clock.clone(),
        webhooks: Some(host.clone()),
        unread: checks.clone(),
        ..chat_memory::ports(Arc::new(MasterKeyRing::generate().unwrap()))
    };
    let settings = ChatSettings {
        retention: Retention::from_settings(ttl_secs, 100),
        unread_escalation: Some(DELAY),
        ..ChatSettings::default()
    };
    Setup {
        a: ChatService::new(ports.clone(), settings.clone()),
        b: ChatService::new(ports, settings),
        clock,
        host,
        checks,
    }
}

impl Setup {
    /// Request `id` of client 7 with staff 11 and 12, its thread open.
    async fn thread(&self, id: i64) -> ThreadId {
        let request = RequestId::new(id).unwrap();
        self.a
            .register_request(
                &user(1, "admin"),
                request,
                UserId::new(7).unwrap(),
                vec![UserId::new(11).unwrap(), UserId::new(12).unwrap()],
                false,
            )
            .await
            .unwrap();
        self.a
            .open_thread(&user(7, "client"), request)
            .await
            .unwrap()
            .id
    }

    async fn post(&self, by: &User, thread: ThreadId, text: &str) -> MessageId {
        let body = TextBody::parse(text, 1000).unwrap();
        self.a
            .post_message(by, thread, None, || Ok(MessageContent::Text(body)))
            .await
            .unwrap()
    }

    async fn read(&self, by: &User, thread: ThreadId, up_to: MessageId) {
        self.b.mark_read(by, thread, up_to).await.unwrap();
    }

    /// Both instances run their due checks at once; then the webhooks go out.
    async fn check(&self) -> usize {
        let (a, b) = tokio::join!(self.a.run_unread_checks(), self.b.run_unread_checks());
        while self.a.run_next_job().await.unwrap().is_some() {}
        a.unwrap().escalated + b.unwrap().escalated
    }
}

#[tokio::test]
async fn unread_messages_escalate_once_with_whoever_has_not_read_them() {
    let s = setup(0);
    let (client, nurse, carer) = (user(7, "client"), user(11, "staff"), user(12, "staff"));
    let thread = s.thread(5).await;
    let canary = format!("unread-canary-{}", chrono::Utc::now().timestamp_micros());
    let m1 = s.post(&client, thread, &canary).await;
    let m2 = s.post(&nurse, thread, "on my way").await;
    let m3 = s.post(&client, thread, "sent by mistake").await;
    s.a.retract_message(&client, thread, m3).await.unwrap();
    s.read(&carer, thread, m2).await;
    s.read(&client, thread, m2).await;
    assert_eq!(s.check().await, 0, "nothing is of age yet");

    s.clock.advance(Duration::from_secs(100));
    let m4 = s.post(&client, thread, "are you coming?").await;
    s.read(&carer, thread, m4).await;

    // 301 s after the first posts: m1 (the nurse has not read it; the carer has); m2 is
    // read by both its recipients; m3 is retracted.
    s.clock.advance(Duration::from_secs(201));
    assert_eq!(s.check().await, 1);
    assert_eq!(s.host.unread(), vec![(m1.get(), vec![11])]);
    // m4 is not of age yet; when it is, the nurse still has not read it.
    s.clock.advance(Duration::from_secs(98));
    assert_eq!(s.check().await, 0);
    s.clock.advance(Duration::from_secs(2));
    assert_eq!(s.check().await, 1);
    assert_eq!(
        s.host.unread(),
        vec![(m1.get(), vec![11]), (m4.get(), vec![11])]
    );

    // Once: later checks, and reading late, send nothing again.
    let m5 = s.post(&nurse, thread, "sorry, here now").await;
    for reader in [&nurse, &client, &carer] {
        s.read(reader, thread, m5).await;
    }
    s.clock.advance(DELAY * 2);
    s.check().await;
    assert_eq!(s.host.unread().len(), 2, "{:?}", s.host.unread());

    // Ids and times only.
    let bodies = s.host.bodies();
    assert!(!bodies.contains(&canary) && !bodies.contains("coming"));
    let event: Value = serde_json::from_str(
        &s.host
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|d| d.id == format!("message_unread.{thread}.{m1}"))
            .unwrap()
            .body,
    )
    .unwrap();
    let event = &event["events"][0];
    assert_eq!(event["name"], "message_unread");
    assert_eq!(event["thread_id"], thread.get());
    assert_eq!(event["request_id"], 5);
    assert_eq!(event["sender_id"], 7);
    assert!(event["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn expired_messages_and_closed_threads_do_not_escalate() {
    // Messages live 200 s, less than the delay.
    let s = setup(200);
    let client = user(7, "client");
    let expiring = s.thread(5).await;
    s.post(&client, expiring, "gone before anyone is chased")
        .await;
    let closing = s.thread(6).await;
    s.post(&client, closing, "the visit is over").await;
    s.a.close_thread(&user(1, "admin"), closing).await.unwrap();
    s.clock.advance(DELAY + Duration::from_secs(1));
    assert_eq!(s.check().await, 0);
    assert!(s.host.unread().is_empty());
}

#[tokio::test]
async fn a_busy_thread_arms_its_check_once_per_delay_not_per_message() {
    let s = setup(0);
    let client = user(7, "client");
    let thread = s.thread(5).await;
    for n in 0..200 {
        s.post(&client, thread, &format!("message {n}")).await;
        s.clock.advance(Duration::from_millis(500));
    }
    // 100 s of posts, one instance: one arm covers them all.
    assert_eq!(s.checks.arms.load(Ordering::SeqCst), 1);
    // The check escalates each of them once (nobody read anything), over the checks
    // that become due as they come of age.
    s.clock.advance(DELAY);
    let mut escalated = s.check().await;
    for _ in 0..3 {
        s.clock.advance(Duration::from_secs(60));
        escalated += s.check().await;
    }
    // The cap keeps 100 of them.
    assert_eq!(escalated, 100);
    assert_eq!(s.host.unread().len(), 100);
}
