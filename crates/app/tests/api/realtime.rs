//! Real-time (issue 5) with real clients nobody here wrote: Laravel Echo and pusher-js
//! from npm (`crates/app/tests/echo/`), against two `chat-server` processes sharing
//! PostgreSQL and Redis.

use crate::helpers::*;
use chat_testkit::{TestPostgres, TestRedis};
use std::path::Path;
use std::process::Command;

const ECHO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/echo");

/// `npm ci` once, when the client libraries are not installed yet.
fn echo_client_installed() {
    if Path::new(ECHO_DIR)
        .join("node_modules/laravel-echo")
        .exists()
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
    echo_client_installed();
    let pg = TestPostgres::start().unwrap();
    let redis = TestRedis::start().unwrap();
    let mut vars = postgres_vars(&pg, "chat");
    vars.push(("CHAT_REDIS_URL", redis.url()));
    vars.push(("CHAT_PUSHER_APP_KEY", "echo-test-key".into()));
    let one = ServerProcess::start(&borrowed(&vars));
    let two = ServerProcess::start(&borrowed(&vars));

    let client = reqwest::Client::new();
    let mut threads = Vec::new();
    for request in [1, 2] {
        let registered = client
            .put(format!("{}/api/requests/{request}", one.base))
            .bearer_auth(admin())
            .json(&serde_json::json!({"client_id": 7}))
            .send()
            .await
            .unwrap();
        assert_eq!(registered.status(), 200);
        let opened = client
            .post(format!("{}/api/requests/{request}/chat/open", one.base))
            .bearer_auth(admin())
            .send()
            .await
            .unwrap();
        threads.push(json_of(opened, 200).await["threadId"].as_i64().unwrap());
    }

    let out = Command::new("node")
        .arg("echo.mjs")
        .current_dir(ECHO_DIR)
        .env("BASE", &one.base)
        .env("BASE2", &two.base)
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
