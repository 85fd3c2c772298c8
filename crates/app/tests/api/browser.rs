//! The example page (`examples/web`) in a real browser: Debian's chromium driven by
//! playwright-core, the page served from an origin of its own (SPEC §3.11, §6).

use crate::helpers::*;
use crate::realtime::{echo_client_installed, ECHO_DIR};
use std::path::Path;
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

/// `npm ci` in examples/web once: the page loads laravel-echo and pusher-js from there.
fn page_installed() -> std::path::PathBuf {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/web");
    let web = web.canonicalize().unwrap();
    if !web.join("node_modules/laravel-echo").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&web)
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci in examples/web");
    }
    web
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_page_works_in_chromium_from_its_own_origin() {
    echo_client_installed();
    let web = page_installed();
    assert!(
        Path::new(CHROMIUM).exists(),
        "chromium is installed by scripts/test.sh"
    );
    let web_port = chat_testkit::free_port().unwrap();
    let other_port = chat_testkit::free_port().unwrap();
    let origin = format!("http://127.0.0.1:{web_port}");
    let app = TestApp::spawn_with(&[("CHAT_ALLOWED_ORIGINS", origin.as_str())]).await;
    let registered = app
        .register(
            &admin(),
            5,
            serde_json::json!({"client_id": 7, "staff_ids": [11]}),
        )
        .await;
    json_of(registered, 200).await;

    let api = app.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("browser.mjs")
            .current_dir(ECHO_DIR)
            .env("API", api)
            .env("WEB_DIR", web)
            .env("WEB_PORT", web_port.to_string())
            .env("OTHER_PORT", other_port.to_string())
            .env("CLIENT_TOKEN", token(7, "client"))
            .env("NURSE_TOKEN", token(11, "nurse"))
            .env("REQUEST", "5")
            .env("CHROMIUM", CHROMIUM)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
