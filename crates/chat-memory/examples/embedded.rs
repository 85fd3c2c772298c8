//! chat-core embedded in a plain Rust program, on the in-memory adapters: no HTTP, no
//! database. `cargo run --example embedded`
//!
//! It registers a service request, opens its thread, posts a text and a location,
//! follows the thread's events, lists the messages, closes the thread, runs the purge
//! job, and prints the audit trail. See docs/EMBEDDING.md.

use chat_core::{
    ChatService, ChatSettings, Coordinates, MessageContent, PageRequest, Ports, RequestId,
    TextBody, User, UserId,
};
use chat_crypto::MasterKeyRing;
use chat_memory::*;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let audit = Arc::new(MemoryAuditLog::default());
    // Every port in memory, with no object storage (image messages are refused); in
    // production the key ring is MasterKeyRing::parse_single(<base64 of 32 bytes>).
    let ports = Ports {
        audit: Some(audit.clone()),
        ..chat_memory::ports(Arc::new(MasterKeyRing::generate()?))
    };
    let chat = ChatService::new(ports, ChatSettings::default());

    let id = |n| UserId::new(n).ok_or("ids are positive");
    let staff = User::new(id(1)?, "admin");
    let client = User::new(id(7)?, "client");
    let request = RequestId::new(5).ok_or("ids are positive")?;

    // The host system registers its service request and its care team (one nurse);
    // the client opens the chat.
    let nurse = User::new(id(11)?, "nurse");
    chat.register_request(&staff, request, client.id, vec![nurse.id], false)
        .await?;
    let thread = chat.open_thread(&client, request).await?;
    println!("thread {} is {}", thread.id, thread.status.as_str());

    let mut events = chat.subscribe_events().await?;

    let max_chars = chat.settings().max_text_chars;
    chat.post_message(&client, thread.id, None, || {
        Ok(MessageContent::Text(
            TextBody::parse("The door code is 1234", max_chars)
                .map_err(|m| chat_core::ValidationErrors::single("text", m))?,
        ))
    })
    .await?;
    chat.post_message(&staff, thread.id, None, || {
        Coordinates::new(40.7128, -74.006)
            .map(MessageContent::Location)
            .map_err(|out_of_range| {
                // Typed reasons; the HTTP adapter words them for its clients.
                let mut all = chat_core::ValidationErrors::new();
                let (min, max) = Coordinates::LAT_RANGE;
                if out_of_range.lat {
                    all.add("lat", chat_core::Invalid::OutOfRange { min, max });
                }
                let (min, max) = Coordinates::LNG_RANGE;
                if out_of_range.lng {
                    all.add("lng", chat_core::Invalid::OutOfRange { min, max });
                }
                all
            })
    })
    .await?;
    // Events carry sealed content; a subscriber opens it with the service.
    for _ in 0..2 {
        use chat_core::ports::{ChatEvent, Received};
        if let Some(Received::Event(ChatEvent::MessageCreated(sealed))) = events.next().await {
            let view = chat.open_for_broadcast(sealed).await?;
            println!("event: message {} ({})", view.id, view.kind.as_str());
        }
    }

    let page = chat
        .list_messages(&client, thread.id, PageRequest::default())
        .await?;
    for m in &page.messages {
        let shown = match &m.content {
            Some(MessageContent::Text(text)) => text.as_str().to_owned(),
            Some(MessageContent::Location(at)) => format!("at {}, {}", at.lat(), at.lng()),
            Some(MessageContent::Image(_)) => "an image".to_owned(),
            None => "(redacted)".to_owned(),
        };
        println!("message {} from {}: {shown}", m.id, m.sender_id);
    }

    // The nurse's inbox: the thread, with what the nurse has not read yet.
    let inbox = chat
        .inbox(&nurse, chat_core::InboxRequest::default())
        .await?;
    for (entry, unread) in &inbox.threads {
        println!("inbox: thread {} with {unread} unread", entry.thread.id);
    }

    // Closing queues the purge; a worker (here, this loop) runs it.
    chat.close_thread(&client, thread.id).await?;
    while let Some(outcome) = chat.run_next_job().await? {
        println!("job: {outcome:?}");
    }
    let page = chat
        .list_messages(&staff, thread.id, PageRequest::default())
        .await?;
    let redacted = page.messages.iter().filter(|m| m.redacted()).count();
    println!(
        "after the purge: {redacted} of {} messages redacted",
        page.messages.len()
    );

    for e in audit.events() {
        println!(
            "audit: {} {} by {:?} on thread {:?}",
            e.action.as_str(),
            e.outcome.as_str(),
            e.actor.map(|u| u.get()),
            e.thread.map(|t| t.get()),
        );
    }
    Ok(())
}
