//! The example page (`examples/web`) in a real browser: Debian's chromium driven by
//! playwright-core, the page served from an origin of its own (SPEC §3.11, §6).

use crate::helpers::*;
use crate::realtime::{echo_client_installed, run_node};
use std::path::Path;
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

/// `npm ci` in examples/web once: the page loads the client (clients/js, built),
/// laravel-echo and pusher-js from there.
fn page_installed() -> std::path::PathBuf {
    crate::client_js::client_built();
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/web");
    let web = web.canonicalize().unwrap();
    if !web.join("node_modules/laravel-echo").exists()
        || !web.join("node_modules/@chat-server/client").exists()
    {
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

    run_node(
        "browser.mjs",
        vec![
            ("API", app.base.clone()),
            ("WEB_DIR", web.display().to_string()),
            ("WEB_PORT", web_port.to_string()),
            ("OTHER_PORT", other_port.to_string()),
            ("CLIENT_TOKEN", token(7, "client")),
            ("NURSE_TOKEN", token(11, "nurse")),
            ("REQUEST", "5".into()),
            ("CHROMIUM", CHROMIUM.into()),
        ],
    )
    .await;
}
