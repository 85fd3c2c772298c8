//! Host integration (SPEC §9.2): the Pusher HTTP API, driven by Pusher's own server
//! library (npm `pusher`, in `crates/app/tests/echo/`).

use crate::helpers::*;
use crate::realtime::{echo_client_installed, signed, Socket, ECHO_DIR};
use std::process::Command;
use std::time::Duration;

const APP_SECRET: &str = "host-app-secret-host-app-secret-0123456";

#[tokio::test(flavor = "multi_thread")]
async fn pusher_server_library_triggers_events_and_reads_occupancy() {
    echo_client_installed();
    let app = TestApp::spawn_with(&[
        ("CHAT_PUSHER_APP_ID", "4242"),
        ("CHAT_PUSHER_APP_SECRET", APP_SECRET),
    ])
    .await;
    let thread = app.thread_for(1, 7).await;
    let channel = format!("private-chat.{thread}");
    let (mut socket, id) = Socket::established(&app.base).await;
    let grant = signed(&app, &token(7, "client"), &id, &channel).await;
    assert_eq!(
        socket.subscribe(&channel, &grant).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    // The registry records the subscription in the background.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("http-api.mjs")
            .current_dir(ECHO_DIR)
            .env("HOST", "127.0.0.1")
            .env("PORT", port)
            .env("APP_ID", "4242")
            .env("KEY", "chat-key")
            .env("SECRET", APP_SECRET)
            .env("CHANNEL", &channel)
            .env("UNKNOWN", "private-chat.999999")
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "{stdout}\n{stderr}"
    );

    // The socket got the host's two events, as Pusher sends them, and nothing forged.
    let first = socket.next().await.unwrap();
    assert_eq!(first["event"], "NurseEnRoute");
    assert_eq!(first["channel"], format!("private-chat.{thread}"));
    assert_eq!(first["data"]["eta"], "15 min");
    let second = socket.next().await.unwrap();
    assert_eq!(second["event"], "VisitRescheduled");
    let more = tokio::time::timeout(Duration::from_millis(300), socket.next()).await;
    assert!(more.is_err(), "nothing else: {more:?}");
    // Never stored.
    assert!(app.stored_messages(thread).await.is_empty());
}
