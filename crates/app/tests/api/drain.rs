//! Draining on `SIGTERM` (SPEC §8): `/readyz` fails at once while requests are still
//! served, sockets are told to reconnect (4200), a job in hand is given back (and
//! another instance runs it), no request is cut off, and the process exits within
//! `CHAT_SHUTDOWN_GRACE_SECS`.

use crate::helpers::*;
use crate::realtime::{signed, Socket};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_within_the_grace() {
    let db = database();
    // A webhook host that accepts and never answers: its delivery is in hand at SIGTERM.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/hook", silent.local_addr().unwrap());
    let mut vars = postgres_vars(&db);
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
        || async { (db.psql(claimed).unwrap().trim() == "1").then_some(()) },
    )
    .await;

    // Load through the drain, each request on a new connection (as through a load
    // balancer): every request that reached the server gets a whole answer; once it
    // stopped listening, connecting is refused. Never a reset or a half answer.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, base) = (stop.clone(), api.base.clone());
        let path = format!("{base}/api/chat/threads/{thread}/messages");
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let (mut answered, mut unaccepted, mut broken) = (0, 0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match client
                    .get(&path)
                    .bearer_auth(token(7, "client"))
                    .send()
                    .await
                {
                    Ok(r) => match r.bytes().await {
                        Ok(_) => answered += 1,
                        Err(e) => broken.push(format!("a half answer: {e:?}")),
                    },
                    Err(e) if e.is_connect() => {}
                    // The kernel completes a connection before the server accepts it;
                    // one still queued when the listener closes is reset unanswered, as
                    // a refused one. One request at a time: at most one can be queued.
                    Err(e) if is_reset(&e) && unaccepted == 0 => unaccepted += 1,
                    Err(e) => broken.push(format!("{e:?}")),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (answered, broken)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

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
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answered, broken) = load.await.unwrap();
    assert!(answered > 20, "the load ran through the notice: {answered}");
    assert!(
        broken.is_empty(),
        "requests broken by the drain: {broken:?}"
    );
    // The job it held is due again, for another instance.
    let kept = db
        .psql(
            "SELECT leased_until IS NULL, run_at <= now(), last_error FROM chat_jobs \
             WHERE payload LIKE '%message_created%'",
        )
        .unwrap();
    assert!(kept.trim().starts_with("t|t|released"), "{kept}");
    drop(silent);

    // Another instance runs it.
    let (hook, received) = crate::host::receiver().await;
    let mut other_vars = vars.clone();
    other_vars.retain(|(k, _)| *k != "CHAT_WEBHOOK_URL");
    other_vars.push(("CHAT_WEBHOOK_URL", hook));
    let _other = TestApp::spawn_with(&borrowed(&other_vars)).await;
    eventually(
        Duration::from_secs(10),
        "the other instance delivered the released webhook",
        || async {
            let delivered = crate::host::deliveries_named(&received, "message_created");
            (!delivered.is_empty()).then_some(())
        },
    )
    .await;
}

/// A connection reset by the server, found while sending the request (no answer began).
fn is_reset(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionReset;
        }
        source = cause.source();
    }
    false
}
