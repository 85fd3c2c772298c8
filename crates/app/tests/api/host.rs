//! Host integration (SPEC §9): the Pusher HTTP API and the webhooks, checked with
//! Pusher's own server library (npm `pusher`, in `crates/app/tests/echo/`).

use crate::helpers::*;
use crate::realtime::{echo_client_installed, run_node, signed, Socket};
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
    // And one on the thread's presence channel, as Laravel's PresenceChannel has it.
    let presence = format!("presence-chat.{thread}");
    let (mut member, member_id) = Socket::established(&app.base).await;
    let grant = signed(&app, &token(7, "client"), &member_id, &presence).await;
    assert_eq!(
        member.subscribe(&presence, &grant).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    // The registry records the subscriptions in the background.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let port = app.base.rsplit(':').next().unwrap().to_owned();
    run_node(
        "http-api.mjs",
        vec![
            ("HOST", "127.0.0.1".into()),
            ("PORT", port),
            ("APP_ID", "4242".into()),
            ("KEY", "chat-key".into()),
            ("SECRET", APP_SECRET.into()),
            ("CHANNEL", channel.clone()),
            ("PRESENCE", presence.clone()),
            ("UNKNOWN", "private-chat.999999".into()),
        ],
    )
    .await;

    // The socket got the host's two events, as Pusher sends them, and nothing forged.
    let first = socket.next().await.unwrap();
    assert_eq!(first["event"], "NurseEnRoute");
    assert_eq!(first["channel"], format!("private-chat.{thread}"));
    assert_eq!(first["data"]["eta"], "15 min");
    let second = socket.next().await.unwrap();
    assert_eq!(second["event"], "VisitRescheduled");
    let more = tokio::time::timeout(Duration::from_millis(300), socket.next()).await;
    assert!(more.is_err(), "nothing else: {more:?}");
    // The presence socket got the host's event on its channel, and only that one.
    let on_presence = member.next().await.unwrap();
    assert_eq!(on_presence["event"], "CarerArrived");
    assert_eq!(on_presence["channel"], presence);
    assert_eq!(on_presence["data"]["door"], "front");
    let more = tokio::time::timeout(Duration::from_millis(300), member.next()).await;
    assert!(more.is_err(), "nothing else on presence: {more:?}");
    // Never stored.
    assert!(app.stored_messages(thread).await.is_empty());
}

/// What a host's webhook endpoint received, and how it answers.
#[derive(Default)]
pub(crate) struct Receiver {
    /// (headers, body) of every attempt, in order.
    seen: std::sync::Mutex<Vec<(std::collections::BTreeMap<String, String>, String)>>,
    /// Deliveries answered 500 once already.
    failed_once: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// A host endpoint on a free port that answers each delivery's first attempt `500`
/// and the next ones `200`; returns its URL.
pub(crate) async fn receiver() -> (String, std::sync::Arc<Receiver>) {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let state = std::sync::Arc::new(Receiver::default());
    let shared = state.clone();
    let server = HttpServer::new(move || {
        let state = shared.clone();
        App::new().route(
            "/hook",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let state = state.clone();
                async move {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    let body = String::from_utf8_lossy(&body).into_owned();
                    state.seen.lock().unwrap().push((headers, body));
                    let delivery = req
                        .headers()
                        .get("x-chat-delivery")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    if state.failed_once.lock().unwrap().insert(delivery) {
                        HttpResponse::InternalServerError().finish()
                    } else {
                        HttpResponse::Ok().finish()
                    }
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (format!("http://127.0.0.1:{port}/hook"), state)
}

/// The event called `name` in a delivery's body.
pub(crate) fn event_named<'a>(body: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    body["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

pub(crate) fn deliveries_named(receiver: &Receiver, event: &str) -> Vec<(String, String)> {
    receiver
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, body)| body.contains(&format!("\"name\":\"{event}\"")))
        .map(|(h, b)| (h["x-chat-delivery"].clone(), b.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_signed_as_pusher_signs_them_retried_and_carry_ids_only() {
    echo_client_installed();
    let (url, host) = receiver().await;
    let app = TestApp::spawn_with(&[
        ("CHAT_WEBHOOK_URL", url.as_str()),
        ("CHAT_PUSHER_APP_ID", "4242"),
        ("CHAT_PUSHER_APP_SECRET", APP_SECRET),
    ])
    .await;
    let registered = app
        .register(
            &admin(),
            5,
            serde_json::json!({"client_id": 7, "staff_ids": [11, 12]}),
        )
        .await;
    json_of(registered, 200).await;
    let thread = json_of(app.open(&token(7, "client"), 5).await, 200).await["threadId"]
        .as_i64()
        .unwrap();
    // Nurse 11 is online in the thread; nurse 12 is not.
    let channel = format!("private-chat.{thread}");
    let (mut socket, id) = Socket::established(&app.base).await;
    let grant = signed(&app, &token(11, "nurse"), &id, &channel).await;
    socket.subscribe(&channel, &grant).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let canary = format!("webhook-canary-{}", now_secs());
    let message = app.post_text(&token(7, "client"), thread, &canary).await;
    let first = eventually(Duration::from_secs(10), "the first attempt", || async {
        let seen = deliveries_named(&host, "message_created");
        (!seen.is_empty()).then_some(seen)
    })
    .await;
    // Answered 500: retried 5 s later by the service's clock.
    app.clock.advance(Duration::from_secs(6));
    let both = eventually(Duration::from_secs(10), "the retry", || async {
        let seen = deliveries_named(&host, "message_created");
        (seen.len() >= 2).then_some(seen)
    })
    .await;
    assert_eq!(both[0], first[0]);
    assert_eq!(
        both[1], both[0],
        "a retry carries the same delivery id and body"
    );
    let body: serde_json::Value = serde_json::from_str(&both[0].1).unwrap();
    // A delivery may carry other events of the same moment (a batch) beside it.
    let event = event_named(&body, "message_created");
    assert_eq!(event["thread_id"], thread);
    assert_eq!(event["request_id"], 5);
    assert_eq!(event["message_id"], message);
    assert_eq!(event["sender_id"], 7);
    assert_eq!(event["type"], "text");
    assert_eq!(
        event["offline_user_ids"],
        serde_json::json!([12]),
        "the sender and the online nurse are not"
    );
    assert!(body["time_ms"].as_i64().unwrap() > 0);
    assert!(!both[0].1.contains(&canary), "ids only, never content");

    // Occupancy and presence, as Pusher's webhooks say them.
    let occupied = eventually(Duration::from_secs(10), "channel_occupied", || async {
        deliveries_named(&host, "channel_occupied")
            .into_iter()
            .next()
    })
    .await;
    assert!(
        occupied.1.contains(&format!("\"channel\":\"{channel}\"")),
        "{}",
        occupied.1
    );
    let presence = format!("presence-chat.{thread}");
    let (mut member, member_id) = Socket::established(&app.base).await;
    let grant = signed(&app, &token(7, "client"), &member_id, &presence).await;
    member.subscribe(&presence, &grant).await;
    let added = eventually(Duration::from_secs(10), "member_added", || async {
        deliveries_named(&host, "member_added").into_iter().next()
    })
    .await;
    assert!(
        added.1.contains("\"user_id\":\"7\"") && added.1.contains(&presence),
        "{}",
        added.1
    );
    drop(member);
    drop(socket);
    for name in ["member_removed", "channel_vacated"] {
        eventually(Duration::from_secs(10), name, || async {
            (!deliveries_named(&host, name).is_empty()).then_some(())
        })
        .await;
    }

    // Closing, then the purge: two more, each retried once.
    json_of(app.close(&token(7, "client"), thread).await, 200).await;
    for name in ["thread_closed", "thread_purged"] {
        eventually(Duration::from_secs(20), name, || async {
            app.clock.advance(Duration::from_secs(6));
            (deliveries_named(&host, name).len() >= 2).then_some(())
        })
        .await;
    }
    let purged: serde_json::Value =
        serde_json::from_str(&deliveries_named(&host, "thread_purged")[0].1).unwrap();
    assert_eq!(event_named(&purged, "thread_purged")["key_destroyed"], true);

    // Every attempt validates with Pusher's own library, as a host checks it.
    let recorded: Vec<serde_json::Value> = host
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(headers, body)| serde_json::json!({"headers": headers, "body": body}))
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_string(&recorded).unwrap()).unwrap();
    let path = file.path().to_owned();
    let stdout = run_node(
        "webhooks.mjs",
        vec![
            ("APP_ID", "4242".into()),
            ("KEY", "chat-key".into()),
            ("SECRET", APP_SECRET.into()),
            ("DELIVERIES", path.display().to_string()),
        ],
    )
    .await;
    assert!(stdout.matches("valid: ").count() >= 10, "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_that_never_answers_does_not_fail_a_post() {
    // Accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", silent.local_addr().unwrap());
    let app = TestApp::spawn_with(&[("CHAT_WEBHOOK_URL", url.as_str())]).await;
    let thread = app.thread_for(1, 7).await;
    for n in 0..5 {
        let posted = app
            .post(
                &token(7, "client"),
                thread,
                serde_json::json!({"type": "text", "text": format!("hello {n}")}),
            )
            .await;
        assert_eq!(posted.status(), 200);
    }
    assert_eq!(app.all_texts(&token(7, "client"), thread).await.len(), 5);
    drop(silent);
}

/// Events of the same moment leave together (`CHAT_WEBHOOK_BATCH_MS`): thirty posts
/// made back to back reach the host in a few deliveries, not thirty, each event once.
#[tokio::test(flavor = "multi_thread")]
async fn webhook_events_of_the_same_moment_leave_in_one_delivery() {
    let (url, host) = receiver().await;
    let app = TestApp::spawn_with(&[
        ("CHAT_WEBHOOK_URL", url.as_str()),
        ("CHAT_WEBHOOK_BATCH_MS", "500"),
    ])
    .await;
    let thread = app.thread_for(5, 7).await;
    let client = token(7, "client");
    let mut posted = Vec::new();
    for i in 0..30 {
        posted.push(app.post_text(&client, thread, &format!("m{i}")).await);
    }
    // Each delivery fails once at this host, then is retried 5 s later by the clock.
    let delivered = eventually(Duration::from_secs(20), "every event", || async {
        app.clock.advance(Duration::from_secs(6));
        let mut by_delivery = std::collections::BTreeMap::new();
        for (id, body) in deliveries_named(&host, "message_created") {
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            let ids: Vec<i64> = body["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["name"] == "message_created")
                .map(|e| e["message_id"].as_i64().unwrap())
                .collect();
            by_delivery.insert(id, ids);
        }
        let events: usize = by_delivery.values().map(Vec::len).sum();
        (events == posted.len()).then_some(by_delivery)
    })
    .await;
    assert!(
        delivered.len() < posted.len() / 2,
        "{} deliveries for {} events",
        delivered.len(),
        posted.len()
    );
    let mut events: Vec<i64> = delivered.into_values().flatten().collect();
    events.sort_unstable();
    assert_eq!(events, posted, "each event once");
}
