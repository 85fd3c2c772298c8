//! Draining on `SIGTERM` (SPEC §8): `/readyz` fails at once while requests are still
//! served, sockets are told to reconnect (4200), a job in hand is given back, and the
//! process exits within `CHAT_SHUTDOWN_GRACE_SECS`.

use crate::helpers::*;
use crate::realtime::{signed, Socket};
use chat_testkit::TestPostgres;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_within_the_grace() {
    let pg = TestPostgres::start().unwrap();
    // A webhook host that accepts and never answers: its delivery is in hand at SIGTERM.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/hook", silent.local_addr().unwrap());
    let mut vars = postgres_vars(&pg, "chat");
    vars.push(("CHAT_WEBHOOK_URL", hook));
    vars.push(("CHAT_SHUTDOWN_GRACE_SECS", "4".into()));
    let mut server = ServerProcess::start(&borrowed(&vars));
    let api = server.api();
    let thread = open_thread_over_http(&api.client, &api.base, 5).await;
    let channel = format!("private-chat.{thread}");
    let (mut socket, id) = Socket::established(&api.base).await;
    let grant = signed(&api, &token(7, "client"), &id, &channel).await;
    assert_eq!(
        socket.subscribe(&channel, &grant).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    api.post_text(&token(7, "client"), thread, "hello").await;
    let claimed = "SELECT count(*) FROM chat_jobs WHERE payload LIKE '%message_created%' \
                   AND leased_until IS NOT NULL";
    eventually(
        Duration::from_secs(10),
        "the webhook job claimed",
        || async { (pg.psql("chat", claimed).unwrap().trim() == "1").then_some(()) },
    )
    .await;

    server.terminate();
    let signalled = Instant::now();
    // At once: not ready, though still serving.
    let not_ready = eventually(Duration::from_secs(2), "/readyz fails", || async {
        let answer = api.client.get(api.url("/readyz")).send().await.ok()?;
        (answer.status() == 503).then_some(answer)
    })
    .await;
    assert_eq!(
        json_of(not_ready, 503).await["checks"]["instance"],
        "draining"
    );
    let served = api.client.get(api.url("/healthz")).send().await.unwrap();
    assert_eq!(
        served.status(),
        200,
        "requests are still answered during the notice"
    );
    // The socket is told to reconnect elsewhere.
    while socket.next().await.is_some() {}
    assert_eq!(socket.closed, Some(4200));

    assert!(
        server.exits_within(Duration::from_secs(6)),
        "exited within the grace: {}",
        server.log()
    );
    assert!(signalled.elapsed() < Duration::from_secs(6));
    // The job it held is due again, for another instance.
    let kept = pg
        .psql(
            "chat",
            "SELECT leased_until IS NULL, run_at <= now(), last_error FROM chat_jobs \
             WHERE payload LIKE '%message_created%'",
        )
        .unwrap();
    assert!(kept.trim().starts_with("t|t|released"), "{kept}");
    drop(silent);
}
