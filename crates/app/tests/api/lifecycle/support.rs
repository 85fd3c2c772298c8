//! What the lifecycle tests share: a media store that fails on purpose, the service
//! wired as `serve` wires it, and helpers that look into the stores and the binary.

use crate::helpers::*;
use chat_core::ports::MediaStore;
use chat_core::{
    ChatService, MediaPath, MessageContent, Ports, RequestId, TextBody, ThreadId, User, UserId,
};
use chat_memory::{Faulty, ManualClock};
use chat_server::{build_service, Config, Overrides};
use chat_testkit::TestDatabase;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// The service as `chat-server serve` wires it over PostgreSQL and a media directory,
/// but with a manual clock, a media store failing `failures` deletions, and no
/// background worker: the test runs the jobs itself.
pub(super) async fn service_over(
    db: &TestDatabase<'_>,
    media_dir: &Path,
    failures: u32,
) -> (ChatService, Ports, Arc<ManualClock>) {
    let mut vars = postgres_vars(db);
    vars.push(("CHAT_JWT_SECRET", SECRET.into()));
    vars.push((
        "CHAT_OBJECT_STORE_URL",
        format!("file://{}", media_dir.display()),
    ));
    let config = Config::from_vars(vars.into_iter().map(|(k, v)| (k.to_owned(), v))).unwrap();
    let media = chat_server::open_media(&config, config.bind).unwrap();
    let inner: Arc<dyn MediaStore> = media.store;
    let flaky = Arc::new(Faulty::new(inner));
    flaky.fail_prefix_deletions(failures);
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let overrides = Overrides {
        clock: Some(clock.clone()),
        ..Overrides::default()
    };
    let wired = build_service(&config, overrides, Some(flaky))
        .await
        .unwrap();
    (wired.service, wired.ports, clock)
}

/// A closed thread with a message and an object under its media prefix.
pub(super) async fn closed_thread_with_media(service: &ChatService, media_dir: &Path) -> ThreadId {
    let admin = User::new(UserId::new(1).unwrap(), "admin");
    let client = UserId::new(7).unwrap();
    let request = RequestId::new(1).unwrap();
    service
        .register_request(&admin, request, client, Vec::new(), false)
        .await
        .unwrap();
    let thread = service.open_thread(&admin, request).await.unwrap().id;
    service
        .post_message(&admin, thread, None, || {
            Ok(MessageContent::Text(TextBody::parse("hello", 100).unwrap()))
        })
        .await
        .unwrap();
    let prefix = media_dir.join(MediaPath::thread_prefix(thread));
    std::fs::create_dir_all(&prefix).unwrap();
    std::fs::write(prefix.join("photo.png"), b"\x89PNG\r\n\x1a\n").unwrap();
    service.close_thread(&admin, thread).await.unwrap();
    thread
}

/// One SQL query's rows on the test database, trimmed.
pub(super) fn sql(db: &TestDatabase<'_>, query: &str) -> String {
    db.psql(query).unwrap().trim().to_owned()
}

pub(super) fn objects_of(media_dir: &Path, thread: ThreadId) -> usize {
    files_in(&media_dir.join(MediaPath::thread_prefix(thread)))
}

/// The files below `dir` (the objects of a store that keeps one file per key; empty
/// directories a deletion leaves do not count).
pub(super) fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => files_in(&e.path()),
                    _ => 1,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// `chat-server <args>` with `vars`; returns (success, stdout, stderr).
pub(crate) fn chat_server(args: &[&str], vars: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(args)
        .env("CHAT_JWT_SECRET", SECRET)
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every key the service can still use: each stored wrapped key, unwrapped.
pub(super) async fn keys_the_service_holds(
    ports: &Ports,
) -> Vec<(ThreadId, Box<dyn chat_core::crypto::ThreadKey>)> {
    let wrapped = ports
        .keys
        .wrapped_under_other_than("", None, 10_000)
        .await
        .unwrap();
    let mut keys = Vec::new();
    for (thread, key) in &wrapped {
        keys.push((*thread, ports.key_ring.unwrap(*thread, key).await.unwrap()));
    }
    keys
}

/// How many sweeps the log reports.
pub(super) fn sweeps_in(log: &str) -> usize {
    log.lines().filter(|l| l.contains("sweep finished")).count()
}
