//! Retracting a message (SPEC §3.10).

use super::support::*;
use crate::helpers::*;
use crate::realtime::{signed, Socket};
use serde_json::json;

#[tokio::test]
async fn the_sender_retracts_a_message_which_then_lists_as_redacted() {
    let app = TestApp::spawn().await;
    let (client, nurse) = (token(7, "client"), token(11, "nurse"));
    let thread = team_thread(&app, 5, &[11]).await;
    let canary = format!("retract-canary-{}", now_secs());
    let id = app.post_text(&client, thread, &canary).await;
    let kept = app.post_text(&nurse, thread, "kept").await;

    let (mut socket, socket_id) = Socket::established(&app.base).await;
    let grant = signed(&app, &nurse, &socket_id, &channel(thread)).await;
    socket.subscribe(&channel(thread), &grant).await;

    // Not the nurse's message; not a stranger's thread; not a message at all.
    assert_error(
        retract(&app, &nurse, thread, &id.to_string()).await,
        403,
        "forbidden",
    )
    .await;
    let stranger = retract(&app, &token(8, "client"), thread, &id.to_string()).await;
    assert_error(stranger, 403, "forbidden").await;
    assert_error(
        retract(&app, &client, thread, "999999999").await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        retract(&app, &client, thread, "abc").await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        retract(&app, &client, 424242, &id.to_string()).await,
        404,
        "not_found",
    )
    .await;

    let done = json_of(retract(&app, &client, thread, &id.to_string()).await, 200).await;
    assert_eq!(done, json!({"id": id, "redacted": true}));
    let again = json_of(retract(&app, &client, thread, &id.to_string()).await, 200).await;
    assert_eq!(again, done, "again: the same");
    let event = socket.next().await.unwrap();
    assert_eq!(event["event"], "App\\Events\\MessageRetracted");
    assert_eq!(event["data"], json!({"thread_id": thread, "id": id}));

    let listed = app.all_messages(&nurse, thread).await;
    assert_eq!(listed.len(), 2, "it stays listed, as redacted");
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["redacted"], true);
    assert!(listed[0]["text"].is_null());
    assert_eq!(listed[1]["text"], "kept");
    let stored = app.stored_messages(thread).await;
    assert!(
        stored
            .iter()
            .any(|m| m.id.get() == id && m.content.is_none()),
        "ciphertext gone"
    );
    assert!(stored
        .iter()
        .any(|m| m.id.get() == kept && m.content.is_some()));

    // An admin may retract anyone's message; nobody may once the thread is closed.
    let last = app.post_text(&nurse, thread, "wrong thread, sorry").await;
    json_of(
        retract(&app, &admin(), thread, &kept.to_string()).await,
        200,
    )
    .await;
    json_of(app.close(&client, thread).await, 200).await;
    let closed = retract(&app, &nurse, thread, &last.to_string()).await;
    assert_error(closed, 403, "thread_closed").await;
}

#[tokio::test]
async fn a_retracted_images_object_is_gone() {
    let app = TestApp::spawn().await;
    let client = token(7, "client");
    let thread = team_thread(&app, 5, &[]).await;
    upload_png(&app.client, &app.base, thread, b"").await;
    let listed = app.all_messages(&client, thread).await;
    let (id, url) = (
        listed[0]["id"].as_i64().unwrap(),
        listed[0]["media_url"].as_str().unwrap().to_owned(),
    );
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);
    json_of(retract(&app, &client, thread, &id.to_string()).await, 200).await;
    assert_eq!(
        app.client.get(&url).send().await.unwrap().status(),
        404,
        "the object is deleted, not only unlisted"
    );
    let listed = app.all_messages(&client, thread).await;
    assert!(listed[0]["media_url"].is_null() && listed[0]["redacted"] == true);
}
