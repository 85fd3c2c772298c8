//! The use case of posting, over the in-memory adapters: a busy thread's posts are
//! appended in batches (group commit), each stored once, in order, each answered with
//! its own id, and announced in id order.

use chat_core::ports::{ChatEvent, EventBus, Received};
use chat_core::{
    ChatService, ChatSettings, MessageContent, MessageId, Ports, RequestId, TextBody, User, UserId,
};
use chat_crypto::MasterKeyRing;
use chat_memory::*;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_threads_posts_are_appended_in_batches_each_once_and_in_order() {
    // The in-memory store taking a while over each batch, as a store across the
    // network does, and counting them.
    let store = Arc::new(Faulty::new(Arc::new(MemoryMessageStore::default())));
    store.slow_writes(Duration::from_millis(20));
    let events = Arc::new(MemoryEventBus::new(1024));
    let ports = Ports {
        messages: store.clone(),
        events: events.clone(),
        ..chat_memory::ports(Arc::new(MasterKeyRing::generate().unwrap()))
    };
    let chat = ChatService::new(ports, ChatSettings::default());
    let admin = User::new(UserId::new(1).unwrap(), "admin");
    let request = RequestId::new(5).unwrap();
    chat.register_request(&admin, request, UserId::new(7).unwrap(), Vec::new(), false)
        .await
        .unwrap();
    let thread = chat.open_thread(&admin, request).await.unwrap().id;
    let mut announced = events.subscribe().await.unwrap();

    let posts = 40;
    let tasks: Vec<_> = (0..posts)
        .map(|i| {
            let chat = chat.clone();
            let admin = admin.clone();
            tokio::spawn(async move {
                let text = TextBody::parse(&format!("m{i}"), 100).unwrap();
                chat.post_message(&admin, thread, None, || Ok(MessageContent::Text(text)))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut answered = Vec::new();
    for task in tasks {
        answered.push(task.await.unwrap());
    }
    let batches = store.writes();
    assert!(
        batches < posts / 2,
        "{posts} posts in {batches} store calls"
    );

    let page = chat
        .list_messages(
            &admin,
            thread,
            chat_core::PageRequest {
                before: None,
                limit: 50,
            },
        )
        .await
        .unwrap();
    let listed: Vec<MessageId> = page.messages.iter().map(|m| m.id).collect();
    assert_eq!(listed.len(), posts, "each stored once");
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "in id order");
    answered.sort();
    assert_eq!(answered, listed, "each answered with its own id");
    let mut texts: Vec<String> = page
        .messages
        .iter()
        .map(|m| match &m.content {
            Some(MessageContent::Text(t)) => t.as_str().to_owned(),
            other => panic!("{other:?}"),
        })
        .collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), posts, "every post's own content");

    let mut events_seen = Vec::new();
    while events_seen.len() < posts {
        match announced.next().await.unwrap() {
            Received::Event(ChatEvent::MessageCreated(m)) => events_seen.push(m.id),
            Received::Event(_) => {}
            Received::Missed { .. } => panic!("missed"),
        }
    }
    assert_eq!(events_seen, listed, "announced once each, in id order");
}
