//! Real-time (issue 5) with real clients nobody here wrote: Laravel Echo and pusher-js
//! from npm (`crates/app/tests/echo/`), against two `chat-server` processes sharing
//! PostgreSQL and Redis.

use crate::helpers::*;
use chat_testkit::TestRedis;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub(crate) const ECHO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/echo");

/// `npm ci` once, when the client libraries are not installed yet.
pub(crate) fn echo_client_installed() {
    let modules = Path::new(ECHO_DIR).join("node_modules");
    if ["laravel-echo", "pusher", "playwright-core"]
        .iter()
        .all(|m| modules.join(m).exists())
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(ECHO_DIR)
        .status()
        .expect("npm (Node.js) runs the Echo client tests");
    assert!(status.success(), "npm ci in {ECHO_DIR}");
}

#[tokio::test(flavor = "multi_thread")]
async fn laravel_echo_receives_events_from_either_instance() {
    let redis = TestRedis::start().unwrap();
    echo_across_two_instances(vec![("CHAT_REDIS_URL", redis.url())]).await;
}

/// The Laravel Echo walk-through (`echo.mjs`) against two instances sharing PostgreSQL
/// and the Redis that `redis` configures.
pub(crate) async fn echo_across_two_instances(redis: Vec<(&'static str, String)>) {
    echo_client_installed();
    let db = database();
    let mut vars = postgres_vars(&db);
    vars.extend(redis);
    vars.push(("CHAT_PUSHER_APP_KEY", "echo-test-key".into()));
    let one = ServerProcess::start(&borrowed(&vars));
    // The second instance also serves its sockets on a dedicated listener, which the
    // Echo client on that side uses.
    let ws2 = format!("127.0.0.1:{}", chat_testkit::free_port().unwrap());
    let mut vars2 = vars.clone();
    vars2.push(("CHAT_WS_BIND", ws2.clone()));
    let two = ServerProcess::start(&borrowed(&vars2));

    let client = reqwest::Client::new();
    let mut threads = Vec::new();
    for request in [1, 2] {
        threads.push(open_thread_over_http(&client, &one.base, request).await);
    }

    let out = Command::new("node")
        .arg("echo.mjs")
        .current_dir(ECHO_DIR)
        .env("BASE", &one.base)
        .env("BASE2", &two.base)
        .env("WS2", format!("http://{ws2}"))
        .env("KEY", "echo-test-key")
        .env("THREAD_A", threads[0].to_string())
        .env("THREAD_B", threads[1].to_string())
        .env("TOKEN_CLIENT", token(7, "client"))
        .env("TOKEN_ADMIN", admin())
        .env("TOKEN_STRANGER", token(8, "client"))
        .output()
        .expect("node runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let logs = format!("{}\n{}", one.stop(), two.stop());
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "{stdout}\n{stderr}\n--- server logs ---\n{logs}"
    );
    assert!(stdout.contains("a forged signature is refused"), "{stdout}");
}

/// Runs `script` of `crates/app/tests/echo/` with Node.js and `vars`, off the async
/// workers; fails the test unless it exits well having printed `all checks passed`.
/// Returns what it printed.
pub(crate) async fn run_node(script: &'static str, vars: Vec<(&'static str, String)>) -> String {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .current_dir(ECHO_DIR)
            .envs(vars)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "{script}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A raw Pusher-protocol client, for the cases Echo never produces.
pub(crate) struct Socket {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// The close code the server sent, once it closed.
    pub(crate) closed: Option<u16>,
}

impl Socket {
    pub(crate) async fn connect(base: &str, path: &str, origin: Option<&str>) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("{}{path}", base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("Origin", origin.parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        Self { ws, closed: None }
    }

    pub(crate) async fn send(&mut self, frame: serde_json::Value) {
        use futures::SinkExt;
        let text = frame.to_string();
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next text frame as JSON, with `data` decoded when it is a JSON string;
    /// `None` when the server closed (its close code in `closed`).
    pub(crate) async fn next(&mut self) -> Option<serde_json::Value> {
        self.next_within(Duration::from_secs(5))
            .await
            .expect("a frame within 5 s")
    }

    /// As [`next`](Self::next), or `Err` when nothing came within `within`.
    pub(crate) async fn next_within(
        &mut self,
        within: Duration,
    ) -> Result<Option<serde_json::Value>, tokio::time::error::Elapsed> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next()).await?;
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
                    if let Some(data) = value["data"].as_str() {
                        if let Ok(decoded) = serde_json::from_str::<serde_json::Value>(data) {
                            value["data"] = decoded;
                        }
                    }
                    return Ok(Some(value));
                }
                Some(Ok(Message::Close(frame))) => {
                    self.closed = frame.map(|f| u16::from(f.code));
                    return Ok(None);
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Ok(None),
            }
        }
    }
}

impl Socket {
    /// Connects to `/app/chat-key?protocol=7` and returns the socket id.
    pub(crate) async fn established(base: &str) -> (Self, String) {
        let mut socket = Self::connect(base, "/app/chat-key?protocol=7", None).await;
        let hello = socket.next().await.unwrap();
        assert_eq!(hello["event"], "pusher:connection_established");
        assert_eq!(hello["data"]["activity_timeout"], 30);
        let id = hello["data"]["socket_id"].as_str().unwrap().to_owned();
        (socket, id)
    }

    /// Subscribes with what `/broadcasting/auth` answered (`auth` and `channel_data`),
    /// as pusher-js does.
    pub(crate) async fn subscribe(
        &mut self,
        channel: &str,
        grant: &serde_json::Value,
    ) -> serde_json::Value {
        let mut data = json!({"channel": channel, "auth": grant["auth"]});
        if let Some(channel_data) = grant.get("channel_data") {
            data["channel_data"] = channel_data.clone();
        }
        self.send(json!({"event": "pusher:subscribe", "data": data}))
            .await;
        self.next().await.unwrap()
    }
}

/// What `/broadcasting/auth` answers: `auth` and `channel_data`.
pub(crate) async fn signed(
    app: &Api,
    token: &str,
    socket_id: &str,
    channel: &str,
) -> serde_json::Value {
    json_of(app.authorize(token, socket_id, channel).await, 200).await
}

/// Which WebSocket server a test's sockets use: `/app/{key}` inside the API's HTTP
/// server, or the dedicated listener of `CHAT_WS_BIND`.
#[derive(Clone, Copy, Debug)]
enum Server {
    Api,
    Dedicated,
}

async fn spawn_for(server: Server, vars: &[(&str, &str)]) -> (TestApp, String) {
    let mut vars = vars.to_vec();
    vars.push(("CHAT_WS_BIND", "127.0.0.1:0"));
    let app = TestApp::spawn_with(&vars).await;
    let base = match server {
        Server::Api => app.base.clone(),
        Server::Dedicated => app.ws_base.clone().unwrap(),
    };
    (app, base)
}

/// Runs a socket test once on each WebSocket server.
macro_rules! on_both_servers {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn api_port() {
                super::$name(super::Server::Api).await;
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn dedicated_listener() {
                super::$name(super::Server::Dedicated).await;
            }
        }
    };
}

on_both_servers!(handshakes_are_refused_with_the_protocols_codes);
on_both_servers!(subscriptions_need_a_signature_for_this_socket_and_channel);
on_both_servers!(client_events_go_to_other_subscribers_only_within_the_rate_limit);
on_both_servers!(a_silent_socket_is_pinged_then_closed);

/// Automatic logoff: a socket that stops answering is pinged after the activity
/// timeout and closed with 4201 when it stays silent; one that answers stays.
async fn a_silent_socket_is_pinged_then_closed(server: Server) {
    // 2 s, not 1: the pong must reach the server within the grace (as long as the
    // timeout), which a loaded two-core CI machine once missed at 1 s.
    let (_app, ws) = spawn_for(server, &[("CHAT_PUSHER_ACTIVITY_TIMEOUT_SECS", "2")]).await;
    let hello = |socket: serde_json::Value| assert_eq!(socket["data"]["activity_timeout"], 2);
    // Answering every ping keeps a socket open past several timeouts.
    let mut answering = Socket::connect(&ws, "/app/chat-key?protocol=7", None).await;
    hello(answering.next().await.unwrap());
    for _ in 0..2 {
        assert_eq!(answering.next().await.unwrap()["event"], "pusher:ping");
        answering
            .send(json!({"event": "pusher:pong", "data": {}}))
            .await;
    }
    answering
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    assert_eq!(answering.next().await.unwrap()["event"], "pusher:pong");
    assert_eq!(answering.closed, None);

    let mut silent = Socket::connect(&ws, "/app/chat-key?protocol=7", None).await;
    hello(silent.next().await.unwrap());
    assert_eq!(silent.next().await.unwrap()["event"], "pusher:ping");
    assert_eq!(silent.next().await, None, "closed after the grace");
    assert_eq!(silent.closed, Some(4201));
}

async fn handshakes_are_refused_with_the_protocols_codes(server: Server) {
    let (_app, ws) = spawn_for(server, &[("CHAT_ALLOWED_ORIGINS", "https://app.example")]).await;
    for (path, origin, code) in [
        ("/app/wrong-key?protocol=7", None, 4001),
        ("/app/chat-key", None, 4008),
        ("/app/chat-key?protocol=6", None, 4007),
        (
            "/app/chat-key?protocol=7",
            Some("https://evil.example"),
            4009,
        ),
    ] {
        let mut socket = Socket::connect(&ws, path, origin).await;
        let error = socket.next().await.unwrap();
        assert_eq!(error["event"], "pusher:error", "{path}");
        assert_eq!(error["data"]["code"], code, "{path}");
        assert_eq!(socket.next().await, None);
        assert_eq!(socket.closed, Some(code), "{path}");
    }
    let mut allowed =
        Socket::connect(&ws, "/app/chat-key?protocol=7", Some("https://app.example")).await;
    assert_eq!(
        allowed.next().await.unwrap()["event"],
        "pusher:connection_established"
    );
}

async fn subscriptions_need_a_signature_for_this_socket_and_channel(server: Server) {
    let (app, ws) = spawn_for(server, &[]).await;
    let mine = app.thread_for(1, 7).await;
    let other = app.thread_for(2, 7).await;
    let client = token(7, "client");
    let (mut socket, id) = Socket::established(&ws).await;

    socket
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    assert_eq!(socket.next().await.unwrap()["event"], "pusher:pong");

    let public = socket.subscribe("news", &json!({"auth": ""})).await;
    assert_eq!(public["event"], "pusher:subscription_error");
    assert_eq!(public["data"]["status"], 403);

    // A signature for another socket, or for another channel, opens nothing.
    let (_elsewhere, other_id) = Socket::established(&ws).await;
    let channel = format!("private-chat.{mine}");
    let theirs = signed(&app, &client, &other_id, &channel).await;
    let refused = socket.subscribe(&channel, &theirs).await;
    assert_eq!(refused["event"], "pusher:subscription_error");
    assert_eq!(refused["data"]["status"], 401);
    let for_other = signed(&app, &client, &id, &format!("private-chat.{other}")).await;
    assert_eq!(
        socket.subscribe(&channel, &for_other).await["data"]["status"],
        401
    );

    let auth = signed(&app, &client, &id, &channel).await;
    let ok = socket.subscribe(&channel, &auth).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(ok["channel"], channel);

    // Events of the subscribed thread only, named with the prefix.
    app.post_text(&client, other, "elsewhere").await;
    app.post_text(&client, mine, "here").await;
    let event = socket.next().await.unwrap();
    assert_eq!(event["event"], "App\\Events\\MessageCreated");
    assert_eq!(event["data"]["text"], "here");
    assert_eq!(event["data"]["thread_id"], mine);

    // Unsubscribed (the pong proves the server has read the unsubscribe): no more events.
    socket
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}))
        .await;
    socket
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    assert_eq!(socket.next().await.unwrap()["event"], "pusher:pong");
    app.post_text(&client, mine, "after").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    socket
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    assert_eq!(socket.next().await.unwrap()["event"], "pusher:pong");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_authorizer_signs_only_for_users_who_may_view() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    let channel = format!("private-chat.{thread}");
    let unauthenticated = app
        .client
        .post(app.url("/broadcasting/auth"))
        .body(format!("socket_id=1.2&channel_name={channel}"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    for (who, channel) in [
        (token(8, "client"), channel.clone()),
        (token(7, "client"), "private-chat.999999".to_owned()),
        (token(7, "client"), "private-chat.abc".to_owned()),
        // Presence channels have the same access as the private one (SPEC §6).
        (
            token(8, "client"),
            channel.replacen("private", "presence", 1),
        ),
        (token(7, "client"), "presence-chat.999999".to_owned()),
        (token(7, "client"), "chat.1".to_owned()),
    ] {
        assert_error(app.authorize(&who, "1.2", &channel).await, 403, "forbidden").await;
    }
    for bad in ["", "12", "1.", "a.b", "1.2.3", "1.2;x"] {
        assert_invalid(
            app.authorize(&token(7, "client"), bad, &channel).await,
            "socket_id",
        )
        .await;
    }
    let json_body = app
        .client
        .post(app.url("/broadcasting/auth"))
        .bearer_auth(admin())
        .json(&json!({"socket_id": "123.456", "channel_name": channel}))
        .send()
        .await
        .unwrap();
    let auth = json_of(json_body, 200).await["auth"]
        .as_str()
        .unwrap()
        .to_owned();
    let (key, signature) = auth.split_once(':').unwrap();
    assert_eq!(key, "chat-key");
    assert_eq!(signature.len(), 64);
    assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));
}

/// The second subscriber is on the API's port either way: whispers cross between the
/// two servers, which share one hub.
async fn client_events_go_to_other_subscribers_only_within_the_rate_limit(server: Server) {
    let (app, ws) = spawn_for(server, &[]).await;
    let thread = app.thread_for(1, 7).await;
    let channel = format!("private-chat.{thread}");
    let mut joined = Vec::new();
    for base in [ws.as_str(), app.base.as_str()] {
        let (mut socket, id) = Socket::established(base).await;
        let auth = signed(&app, &token(7, "client"), &id, &channel).await;
        assert_eq!(
            socket.subscribe(&channel, &auth).await["event"],
            "pusher_internal:subscription_succeeded"
        );
        joined.push(socket);
    }
    let (mut outsider, _) = Socket::established(&ws).await;
    let typing = |n: u32| json!({"event": "client-typing", "channel": channel, "data": {"n": n}});

    outsider.send(typing(0)).await;
    let refused = outsider.next().await.unwrap();
    assert_eq!(refused["event"], "pusher:error");

    // A burst of 15 from one subscriber: the first 10 are relayed (the limit), the rest
    // refused with 4301 (one more may pass if the burst straddles a refill).
    for n in 1..=15 {
        joined[0].send(typing(n)).await;
    }
    joined[0]
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    let mut refusals = 0;
    loop {
        let frame = joined[0].next().await.unwrap();
        if frame["event"] == "pusher:pong" {
            break; // the sender never hears its own whispers
        }
        assert_eq!(frame["data"]["code"], 4301, "{frame}");
        refusals += 1;
    }
    assert!((4..=5).contains(&refusals), "{refusals} refused");
    for n in 1..=(15 - refusals) {
        let relayed = joined[1].next().await.unwrap();
        assert_eq!(relayed["event"], "client-typing");
        assert_eq!(relayed["data"]["n"], n);
    }
    // Whispers are never stored.
    assert!(app.stored_messages(thread).await.is_empty());
}

/// The dedicated listener serves `/app/{key}` only, and nothing without the upgrade.
#[tokio::test(flavor = "multi_thread")]
async fn the_dedicated_listener_serves_only_websockets() {
    let (app, ws) = spawn_for(Server::Dedicated, &[]).await;
    use tokio_tungstenite::tungstenite::Error;
    let url = format!(
        "{}/api/chat/threads/1/messages",
        ws.replacen("http", "ws", 1)
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(Error::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("expected a 404, got {:?}", other.map(|_| ())),
    }
    let plain = app
        .client
        .get(format!("{ws}/app/chat-key?protocol=7"))
        .send()
        .await;
    assert!(
        plain.map_or(true, |r| !r.status().is_success()),
        "no upgrade, no socket"
    );
}
