//! The use cases' rules, checked on the core alone over the in-memory adapters: who may
//! open, read, post and close; what a close and its purge leave; idempotent posts; the
//! audit trail each use case writes. No HTTP, no database.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on what it does not expect"
)]

use chat_core::{
    AuditAction, AuditOutcome, ChatError, ChatService, ChatSettings, IdempotencyKey,
    MessageContent, PageRequest, Ports, RequestId, TextBody, ThreadId, User, UserId,
};
use chat_crypto::MasterKeyRing;
use chat_memory::*;
use std::sync::Arc;

struct Setup {
    chat: ChatService,
    jobs: Arc<MemoryJobQueue>,
    audit: Arc<MemoryAuditLog>,
    admin: User,
    client: User,
    stranger: User,
    thread: ThreadId,
}

async fn setup() -> Setup {
    let audit = Arc::new(MemoryAuditLog::default());
    let jobs = Arc::new(MemoryJobQueue::default());
    let ports = Ports {
        jobs: jobs.clone(),
        audit: Some(audit.clone()),
        ..chat_memory::ports(Arc::new(MasterKeyRing::generate().unwrap()))
    };
    let chat = ChatService::new(ports, ChatSettings::default());
    let user = |id, role| User::new(UserId::new(id).unwrap(), role);
    let (admin, client, stranger) = (user(1, "admin"), user(7, "client"), user(8, "client"));
    let request = RequestId::new(5).unwrap();
    chat.register_request(&admin, request, client.id, Vec::new(), false)
        .await
        .unwrap();
    let thread = chat.open_thread(&client, request).await.unwrap().id;
    Setup {
        chat,
        jobs,
        audit,
        admin,
        client,
        stranger,
        thread,
    }
}

fn text(t: &str) -> MessageContent {
    MessageContent::Text(TextBody::parse(t, 100).unwrap())
}

async fn texts(s: &Setup, user: &User) -> Vec<Option<String>> {
    let page = s
        .chat
        .list_messages(user, s.thread, PageRequest::default())
        .await
        .unwrap();
    page.messages
        .into_iter()
        .map(|m| match m.content {
            Some(MessageContent::Text(t)) => Some(t.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn only_the_requests_client_and_admins_open_read_and_post() {
    let s = setup().await;
    let request = RequestId::new(5).unwrap();
    let refused = s.chat.open_thread(&s.stranger, request).await;
    assert!(matches!(refused, Err(ChatError::Forbidden)));
    let unknown = s
        .chat
        .open_thread(&s.client, RequestId::new(6).unwrap())
        .await;
    assert!(matches!(unknown, Err(ChatError::NotFound)));
    // Only admins register requests.
    let by_client = s
        .chat
        .register_request(
            &s.client,
            RequestId::new(6).unwrap(),
            s.client.id,
            Vec::new(),
            false,
        )
        .await;
    assert!(matches!(by_client, Err(ChatError::Forbidden)));

    s.chat
        .post_message(&s.client, s.thread, None, || Ok(text("hello")))
        .await
        .unwrap();
    s.chat
        .post_message(&s.admin, s.thread, None, || Ok(text("hi")))
        .await
        .unwrap();
    // A stranger is refused before the body is even looked at.
    let mut validated = false;
    let post = s
        .chat
        .post_message(&s.stranger, s.thread, None, || {
            validated = true;
            Ok(text("let me in"))
        })
        .await;
    assert!(matches!(post, Err(ChatError::Forbidden)));
    assert!(!validated, "authorization before validation");
    let list = s
        .chat
        .list_messages(&s.stranger, s.thread, PageRequest::default())
        .await;
    assert!(matches!(list, Err(ChatError::Forbidden)));
    assert_eq!(
        texts(&s, &s.client).await,
        [Some("hello".to_owned()), Some("hi".to_owned())]
    );
}

#[tokio::test]
async fn a_repeat_with_the_same_key_gets_the_first_id_and_stores_nothing() {
    let s = setup().await;
    let key = IdempotencyKey::parse("k-1").unwrap();
    let first = s
        .chat
        .post_message(&s.client, s.thread, Some(key.clone()), || Ok(text("once")))
        .await
        .unwrap();
    let again = s
        .chat
        .post_message(&s.client, s.thread, Some(key), || Ok(text("once")))
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(texts(&s, &s.client).await, [Some("once".to_owned())]);
}

#[tokio::test]
async fn a_closed_thread_refuses_posts_and_uploads_and_its_purge_shreds_it() {
    let s = setup().await;
    s.chat
        .post_message(&s.client, s.thread, None, || Ok(text("door code 4711")))
        .await
        .unwrap();
    let closed = s.chat.close_thread(&s.client, s.thread).await.unwrap();
    let again = s.chat.close_thread(&s.admin, s.thread).await.unwrap();
    assert_eq!(
        closed.closed_at, again.closed_at,
        "closing again keeps the time"
    );
    let post = s
        .chat
        .post_message(&s.client, s.thread, None, || Ok(text("late")))
        .await;
    assert!(matches!(post, Err(ChatError::ThreadClosed)));
    assert!(matches!(
        s.chat.accepts_upload(s.thread).await,
        Err(ChatError::ThreadClosed)
    ));
    // Before the purge the content still reads; the purge destroys the key first.
    assert_eq!(
        texts(&s, &s.client).await,
        [Some("door code 4711".to_owned())]
    );
    let report = s.chat.purge_thread(s.thread).await.unwrap();
    assert!(report.key_destroyed);
    assert_eq!(report.messages_redacted, 1);
    assert_eq!(
        texts(&s, &s.client).await,
        [None],
        "redacted, metadata kept"
    );
    let twice = s.chat.purge_thread(s.thread).await.unwrap();
    assert!(
        !twice.key_destroyed && twice.messages_redacted == 0,
        "idempotent"
    );
    // The close queued the purge job: the job runner finds it.
    assert!(s.chat.run_next_job().await.unwrap().is_some());
    assert_eq!(
        chat_core::ports::JobQueue::failed_count(&*s.jobs)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn every_use_case_writes_one_audit_event_with_its_outcome() {
    let s = setup().await;
    let id = s
        .chat
        .post_message(&s.client, s.thread, None, || Ok(text("hello")))
        .await
        .unwrap();
    let _ = s
        .chat
        .list_messages(&s.stranger, s.thread, PageRequest::default())
        .await;
    s.chat.close_thread(&s.client, s.thread).await.unwrap();
    let trail: Vec<(AuditAction, AuditOutcome)> = s
        .audit
        .events()
        .iter()
        .map(|e| (e.action, e.outcome))
        .collect();
    assert_eq!(
        trail,
        [
            (AuditAction::RegisterRequest, AuditOutcome::Ok),
            (AuditAction::Open, AuditOutcome::Ok),
            (AuditAction::Post, AuditOutcome::Ok),
            (AuditAction::List, AuditOutcome::Denied),
            (AuditAction::Close, AuditOutcome::Ok),
        ]
    );
    let post = &s.audit.events()[2];
    assert_eq!(post.message, Some(id));
    assert_eq!(post.actor, Some(s.client.id));
    assert_eq!(post.thread, Some(s.thread));
}

#[tokio::test]
async fn an_admins_access_to_a_thread_they_are_not_part_of_is_audited_as_an_override() {
    let s = setup().await;
    // The thread was opened by its client: the admin is not a participant.
    let overrides = |s: &Setup| {
        s.audit
            .events()
            .iter()
            .filter(|e| e.action == AuditAction::AdminOverride)
            .map(|e| (e.actor, e.thread))
            .collect::<Vec<_>>()
    };
    s.chat
        .list_messages(&s.client, s.thread, PageRequest::default())
        .await
        .unwrap();
    assert!(overrides(&s).is_empty(), "a participant is no override");
    s.chat
        .list_messages(&s.admin, s.thread, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(overrides(&s), vec![(Some(s.admin.id), Some(s.thread))]);

    // On the care team, a nurse is a participant; off it, a stranger.
    let nurse = User::new(UserId::new(11).unwrap(), "nurse");
    let request = RequestId::new(5).unwrap();
    let denied = s
        .chat
        .list_messages(&nurse, s.thread, PageRequest::default())
        .await;
    assert!(matches!(denied, Err(ChatError::Forbidden)));
    s.chat
        .register_request(&s.admin, request, s.client.id, vec![nurse.id], false)
        .await
        .unwrap();
    s.chat
        .list_messages(&nurse, s.thread, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(overrides(&s).len(), 1);
}

#[tokio::test]
async fn read_markers_go_with_the_threads_purge() {
    let s = setup().await;
    let id = s
        .chat
        .post_message(&s.client, s.thread, None, || Ok(text("hello")))
        .await
        .unwrap();
    assert_eq!(
        s.chat.mark_read(&s.admin, s.thread, id).await.unwrap(),
        Some(id)
    );
    let listed = s
        .chat
        .list_messages(&s.client, s.thread, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.reads, vec![(s.admin.id, id)]);
    s.chat.close_thread(&s.client, s.thread).await.unwrap();
    let mut dropped = 0;
    while let Some(outcome) = s.chat.run_next_job().await.unwrap() {
        if let chat_core::JobOutcome::Done { report, .. } = outcome {
            dropped += report.read_markers_dropped;
        }
    }
    assert_eq!(dropped, 1);
    let after = s
        .chat
        .list_messages(&s.client, s.thread, PageRequest::default())
        .await
        .unwrap();
    assert!(after.reads.is_empty(), "no marker outlives the purge");
}
