use chat_memory::ManualClock;
use chat_server::{Application, Config, Overrides};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod process;
pub use process::*;

/// A whole 1×1 red PNG (IHDR, IDAT, IEND), with no metadata: what the service serves of
/// it is the same bytes.
pub const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\
    \0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// The HTTP API of a running server, as a client calls it.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

/// A server in this process, with its clock and adapters at hand; its API methods come
/// through [`Api`].
pub struct TestApp {
    api: Api,
    /// `http://` + the dedicated WebSocket listener, with `CHAT_WS_BIND` set.
    pub ws_base: Option<String>,
    pub clock: Arc<ManualClock>,
    /// The adapters under the server's service, to look into a store.
    pub ports: chat_core::Ports,
}

impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// Claims as a test wants to forge them.
pub fn sign(claims: &Value, secret: &str, alg: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn token(sub: i64, role: &str) -> String {
    sign(
        &json!({"sub": sub.to_string(), "role": role, "exp": now_secs() + 3600}),
        SECRET,
        jsonwebtoken::Algorithm::HS256,
    )
}

pub fn admin() -> String {
    token(1, "admin")
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// With extra `CHAT_*` variables on top of the test defaults.
    pub async fn spawn_with(vars: &[(&str, &str)]) -> Self {
        Self::spawn_over(vars, Overrides::default()).await
    }

    /// With some adapters swapped in.
    pub async fn spawn_over(vars: &[(&str, &str)], overrides: Overrides) -> Self {
        let mut env = vec![
            ("CHAT_BIND".to_owned(), "127.0.0.1:0".to_owned()),
            ("CHAT_JWT_SECRET".to_owned(), SECRET.to_owned()),
            // Media in memory unless a test chooses a backend (no files left behind).
            ("CHAT_OBJECT_STORE_URL".to_owned(), "memory://".to_owned()),
            // No rate limits unless a test sets them: many tests post in bulk.
            ("CHAT_RATE_LIMIT_POSTS".to_owned(), "0".to_owned()),
            ("CHAT_RATE_LIMIT_UPLOADS".to_owned(), "0".to_owned()),
            ("CHAT_RATE_LIMIT_AUTH".to_owned(), "0".to_owned()),
        ];
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_vars(env).unwrap();
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let overrides = Overrides {
            clock: Some(clock.clone()),
            ..overrides
        };
        let app = Application::build(&config, overrides).await.unwrap();
        let base = format!("http://{}", app.addr);
        let ws_base = app.ws_addr.map(|addr| format!("http://{addr}"));
        let ports = app.ports.clone();
        tokio::spawn(app.run());
        Self {
            api: Api::new(base),
            ws_base,
            clock,
            ports,
        }
    }

    /// What the message store holds for the thread, expired or not, as sealed rows.
    pub async fn stored_messages(&self, thread: i64) -> Vec<chat_core::StoredMessage> {
        let thread = chat_core::ThreadId::new(thread).unwrap();
        let page = self
            .ports
            .messages
            .page(thread, None, 1000, None)
            .await
            .unwrap();
        page.messages
    }
}

impl Api {
    pub fn new(base: String) -> Self {
        Self {
            base,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn register(&self, token: &str, request: i64, body: Value) -> Response {
        self.client
            .put(self.url(&format!("/api/requests/{request}")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn open(&self, token: &str, request: i64) -> Response {
        self.client
            .post(self.url(&format!("/api/requests/{request}/chat/open")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, token: &str, thread: i64, body: Value) -> Response {
        self.post_raw(token, &thread.to_string(), body.to_string())
            .await
    }

    pub async fn post_raw(
        &self,
        token: &str,
        thread: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.client
            .post(self.url(&format!("/api/chat/threads/{thread}/messages")))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// A post with an `Idempotency-Key` header.
    pub async fn post_keyed(&self, token: &str, thread: i64, key: &str, body: Value) -> Response {
        self.client
            .post(self.url(&format!("/api/chat/threads/{thread}/messages")))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn list(&self, token: &str, thread: i64, query: &str) -> Response {
        self.client
            .get(self.url(&format!("/api/chat/threads/{thread}/messages{query}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn close(&self, token: &str, thread: i64) -> Response {
        self.client
            .patch(self.url(&format!("/api/chat/threads/{thread}/close")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Registers `request` for `client` and opens its thread as an admin.
    pub async fn thread_for(&self, request: i64, client: i64) -> i64 {
        assert_eq!(
            self.register(&admin(), request, json!({"client_id": client}))
                .await
                .status(),
            200
        );
        let opened = json_of(self.open(&admin(), request).await, 200).await;
        opened["threadId"].as_i64().unwrap()
    }

    pub async fn post_text(&self, token: &str, thread: i64, text: &str) -> i64 {
        let body = json_of(
            self.post(token, thread, json!({"type": "text", "text": text}))
                .await,
            200,
        )
        .await;
        body["id"].as_i64().unwrap()
    }

    /// The thread's messages as `(id, text)`, oldest first.
    pub async fn ids_and_texts(&self, token: &str, thread: i64) -> Vec<(i64, String)> {
        self.all_messages(token, thread)
            .await
            .iter()
            .map(|m| {
                (
                    m["id"].as_i64().unwrap(),
                    m["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// `POST /api/chat/threads/{thread}/media` for an upload of `content_type`.
    pub async fn upload_url(&self, token: &str, thread: i64, content_type: &str) -> Response {
        self.client
            .post(self.url(&format!("/api/chat/threads/{thread}/media")))
            .bearer_auth(token)
            .json(&json!({"contentType": content_type}))
            .send()
            .await
            .unwrap()
    }

    /// `POST /broadcasting/auth` as pusher-js sends it (form-encoded).
    pub async fn authorize(&self, token: &str, socket_id: &str, channel: &str) -> Response {
        self.client
            .post(self.url("/broadcasting/auth"))
            .bearer_auth(token)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("socket_id={socket_id}&channel_name={channel}"))
            .send()
            .await
            .unwrap()
    }

    /// `GET path` without a token (health, readiness, metrics).
    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// `n` opens of `request` at once, half by an admin, half by client 7; every one
    /// must succeed. Returns the thread ids they answered.
    pub async fn concurrent_opens(&self, request: i64, n: usize) -> Vec<i64> {
        let opens = (0..n).map(|i| {
            let t = if i % 2 == 0 {
                admin()
            } else {
                token(7, "client")
            };
            async move {
                json_of(self.open(&t, request).await, 200).await["threadId"]
                    .as_i64()
                    .unwrap()
            }
        });
        futures::future::join_all(opens).await
    }

    /// The texts of every message of the thread, oldest first.
    pub async fn all_texts(&self, token: &str, thread: i64) -> Vec<String> {
        let messages = self.all_messages(token, thread).await;
        messages
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Every message of the thread, walking the cursor.
    pub async fn all_messages(&self, token: &str, thread: i64) -> Vec<Value> {
        let mut out = Vec::new();
        let mut query = "?limit=50".to_owned();
        loop {
            let page = json_of(self.list(token, thread, &query).await, 200).await;
            let mut messages = page["messages"].as_array().unwrap().clone();
            messages.extend(out);
            out = messages;
            match page["nextCursor"].as_str() {
                Some(cursor) => query = format!("?limit=50&cursor={cursor}"),
                None => return out,
            }
        }
    }
}

/// The coordinates [`Api::post_canaries`] posts, as they would appear in plaintext.
pub const CANARY_COORDINATES: [&str; 2] = ["12.3456789", "98.7654321"];

impl Api {
    /// Posts a unique canary text and a location at [`CANARY_COORDINATES`]; returns the
    /// text, for a test to search every store and log for.
    pub async fn post_canaries(&self, token: &str, thread: i64, label: &str) -> String {
        let canary = format!(
            "CANARY-{label}-{}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap()
        );
        self.post_text(token, thread, &canary).await;
        let location = json!({"type": "location", "lat": 12.3456789, "lng": 98.7654321});
        json_of(self.post(token, thread, location).await, 200).await;
        canary
    }

    /// Waits up to 10 s for the thread to list again after a store came back.
    pub async fn recovers(&self, token: &str, thread: i64) -> bool {
        for _ in 0..100 {
            if self.list(token, thread, "").await.status() == 200 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

/// Asserts the status and returns the JSON body.
pub async fn json_of(response: Response, status: u16) -> Value {
    let got = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(got, StatusCode::from_u16(status).unwrap(), "body: {body}");
    body
}

/// Asserts an error answer: status, `code`, a message.
pub async fn assert_error(response: Response, status: u16, code: &str) -> Value {
    let body = json_of(response, status).await;
    assert_eq!(body["code"], code, "body: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
    body
}

/// Asserts a 422 with an error on exactly `field`.
pub async fn assert_invalid(response: Response, field: &str) {
    let body = assert_error(response, 422, "validation_failed").await;
    let errors = body["errors"].as_object().unwrap();
    assert!(
        errors.contains_key(field),
        "expected an error on {field}: {body}"
    );
    assert!(errors[field][0].as_str().is_some_and(|m| !m.is_empty()));
}

/// Registers request `request` for client 7 and opens its thread, over HTTP.
pub async fn open_thread_over_http(client: &reqwest::Client, base: &str, request: i64) -> i64 {
    let registered = client
        .put(format!("{base}/api/requests/{request}"))
        .bearer_auth(admin())
        .json(&json!({"client_id": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 200);
    let opened = client
        .post(format!("{base}/api/requests/{request}/chat/open"))
        .bearer_auth(token(7, "client"))
        .send()
        .await
        .unwrap();
    json_of(opened, 200).await["threadId"].as_i64().unwrap()
}

/// Uploads a PNG (the whole [`PNG`], then `tail` after its end) through an upload URL
/// and posts it as an image message from client 7; returns its media path and the
/// upload URL.
pub async fn upload_png(
    client: &reqwest::Client,
    base: &str,
    thread: i64,
    tail: &[u8],
) -> (String, String) {
    let t = token(7, "client");
    let ticket = client
        .post(format!("{base}/api/chat/threads/{thread}/media"))
        .bearer_auth(&t)
        .json(&json!({"contentType": "image/png"}))
        .send()
        .await
        .unwrap();
    let ticket = json_of(ticket, 200).await;
    let mut png = PNG.to_vec();
    png.extend_from_slice(tail);
    let upload_url = ticket["uploadUrl"].as_str().unwrap().to_owned();
    let mut put = client.put(&upload_url).body(png);
    for (name, value) in ticket["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    let uploaded = put.send().await.unwrap();
    assert_eq!(uploaded.status(), 200);
    let path = ticket["mediaPath"].as_str().unwrap().to_owned();
    let posted = client
        .post(format!("{base}/api/chat/threads/{thread}/messages"))
        .bearer_auth(&t)
        .json(&json!({"type": "image", "mediaPath": path}))
        .send()
        .await
        .unwrap();
    json_of(posted, 200).await;
    (path, upload_url)
}

/// `n` texts posted to `thread` at once, in turn through each of `instances`; returns
/// what was acknowledged, `(id, text)` sorted by id.
pub async fn concurrent_posts(
    instances: &[TestApp],
    token: &str,
    thread: i64,
    n: usize,
) -> Vec<(i64, String)> {
    let posts = (0..n).map(|i| {
        let app = &instances[i % instances.len()];
        async move {
            let text = format!("m{i}");
            (app.post_text(token, thread, &text).await, text)
        }
    });
    let mut acknowledged = futures::future::join_all(posts).await;
    acknowledged.sort();
    acknowledged
}
