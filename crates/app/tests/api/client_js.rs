//! The JavaScript client (`clients/js`, SPEC §11) against this build of chat-server:
//! its own test suite (`npm run check` on the build: the generated types are current, they compile, and
//! `node --test` runs the client against servers it starts from this binary).

use std::path::Path;
use std::process::Command;

/// `npm ci` and the build in clients/js, once.
pub(crate) fn client_built() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../clients/js")
        .canonicalize()
        .unwrap();
    if !dir.join("node_modules/typescript").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm (Node.js) builds the client");
        assert!(status.success(), "npm ci in clients/js");
    }
    if !dir.join("dist/index.js").exists() {
        let status = Command::new("npm")
            .args(["run", "build"])
            .current_dir(&dir)
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm run build in clients/js");
    }
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn the_javascript_client_keeps_its_promises() {
    let dir = client_built();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("npm")
            .args(["run", "check"])
            .current_dir(dir)
            .env("CHAT_SERVER_BIN", env!("CARGO_BIN_EXE_chat-server"))
            .output()
            .expect("npm test runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "npm run check in clients/js:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // node --test's summary: every test passed, and there were some.
    assert!(stdout.contains("# fail 0"), "{stdout}");
    assert!(!stdout.contains("# pass 0"), "{stdout}");
}
