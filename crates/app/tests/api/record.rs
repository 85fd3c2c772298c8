//! The clinical record (SPEC §10, issue 31): the export of a thread as an HL7 FHIR R4
//! Bundle, checked by an independent validator (PyPI's fhir.resources, run by
//! `tests/fhir/validate.py`) on every message store.

use crate::helpers::*;
use base64::Engine;
use chat_testkit::TestRedis;
use serde_json::{json, Value};

const VALIDATOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fhir/validate.py");

/// Runs the FHIR validator on `bundle`; panics with its verdict unless it is valid.
pub(crate) fn assert_valid_fhir(bundle: &Value) {
    let (valid, said) = fhir_verdict(bundle);
    assert!(valid, "{said}");
}

/// What the FHIR validator says of `bundle`: whether it is valid, and its words.
fn fhir_verdict(bundle: &Value) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .arg(VALIDATOR)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the FHIR validator");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(bundle.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let valid = out.status.success() && said.trim() == "valid";
    (valid, said + &String::from_utf8_lossy(&out.stderr))
}

async fn export(api: &Api, token: &str, thread: i64) -> reqwest::Response {
    api.client
        .get(api.url(&format!("/api/chat/threads/{thread}/export")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// A thread with a text, a location, an image and a retracted text, exported by a
/// staff participant: one Communication per message, in order, each as SPEC §10 says,
/// and a Bundle the validator accepts. Its client may not export it; a stranger
/// neither.
async fn the_export_is_a_valid_fhir_bundle(vars: Vec<(&'static str, String)>) -> Api {
    let app = TestApp::spawn_with(&borrowed(&vars)).await;
    json_of(
        app.register(&admin(), 5, json!({"client_id": 7, "staff_ids": [11]}))
            .await,
        200,
    )
    .await;
    let thread = json_of(app.open(&token(7, "client"), 5).await, 200).await["threadId"]
        .as_i64()
        .unwrap();
    let (client, nurse) = (token(7, "client"), token(11, "nurse"));
    app.post_text(&client, thread, "The wound is healing well")
        .await;
    json_of(
        app.post(
            &nurse,
            thread,
            json!({"type": "location", "lat": 40.7128, "lng": -74.006}),
        )
        .await,
        200,
    )
    .await;
    upload_png(&app.client, &app.base, thread, b"").await;
    let retracted = app.post_text(&client, thread, "sent by mistake").await;
    let answer = app
        .client
        .delete(app.url(&format!("/api/chat/threads/{thread}/messages/{retracted}")))
        .bearer_auth(&client)
        .send()
        .await
        .unwrap();
    json_of(answer, 200).await;

    let answer = export(&app, &nurse, thread).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/fhir+json");
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let bundle: Value = answer.json().await.unwrap();
    assert_valid_fhir(&bundle);
    // The validator can say no: the same Bundle with a status FHIR does not have, a
    // field Communication does not have, or two payload kinds at once.
    for corrupt in [
        ("/entry/0/resource/status", json!("sent")),
        ("/entry/0/resource/note2", json!("x")),
        (
            "/entry/0/resource/payload/0/contentReference",
            json!({"reference": "#x"}),
        ),
    ] {
        let mut broken = bundle.clone();
        let (parent, field) = corrupt.0.rsplit_once('/').unwrap();
        broken.pointer_mut(parent).unwrap()[field] = corrupt.1;
        assert!(!fhir_verdict(&broken).0, "{} accepted", corrupt.0);
    }
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    let entries: Vec<&Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    assert_eq!(entries.len(), 4);
    for c in &entries {
        assert_eq!(c["resourceType"], "Communication");
        assert_eq!(
            c["about"][0]["identifier"],
            json!({"system": "urn:chat:request", "value": "5"})
        );
        assert!(c["sent"].as_str().unwrap().ends_with('Z'));
    }
    let (text, location, image, gone) = (entries[0], entries[1], entries[2], entries[3]);
    assert_eq!(text["status"], "completed");
    assert_eq!(
        text["sender"]["identifier"],
        json!({"system": "urn:chat:user", "value": "7"})
    );
    let recipients: Vec<&Value> = text["recipient"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["identifier"]["value"])
        .collect();
    // Opened by its client: no admin assigned; the nurse is the other participant.
    assert_eq!(recipients, [&json!("11")], "the other participants");
    assert_eq!(
        text["payload"],
        json!([{"contentString": "The wound is healing well"}])
    );
    let reference = location["payload"][0]["contentReference"]["reference"]
        .as_str()
        .unwrap();
    let contained = &location["contained"][0];
    assert_eq!(format!("#{}", contained["id"].as_str().unwrap()), reference);
    assert_eq!(contained["resourceType"], "Location");
    assert_eq!(
        contained["position"],
        json!({"latitude": 40.7128, "longitude": -74.006})
    );
    let attachment = &image["payload"][0]["contentAttachment"];
    assert_eq!(attachment["contentType"], "image/png");
    let b64 = base64::engine::general_purpose::STANDARD;
    let data = b64.decode(attachment["data"].as_str().unwrap()).unwrap();
    assert_eq!(data, PNG, "the cleaned image's bytes");
    assert_eq!(attachment["size"], PNG.len());
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, PNG);
    assert_eq!(attachment["hash"], b64.encode(sha1.as_ref()));
    assert_eq!(gone["status"], "entered-in-error");
    assert!(gone.get("payload").is_none(), "no payload: {gone}");

    // The thread's client may not export it, a stranger neither; an admin may.
    assert_error(export(&app, &client, thread).await, 403, "forbidden").await;
    assert_error(
        export(&app, &token(99, "nurse"), thread).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(export(&app, &admin(), thread).await.status(), 200);
    assert_error(export(&app, &admin(), 987_654).await, 404, "not_found").await;
    Api::new(app.base.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_export_validates_on_the_memory_store() {
    the_export_is_a_valid_fhir_bundle(Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_export_validates_on_postgres_and_is_audited() {
    let db = database();
    let vars = postgres_vars(&db);
    the_export_is_a_valid_fhir_bundle(vars).await;
    let audited = db
        .psql("SELECT outcome FROM chat_audit_events WHERE action = 'export' ORDER BY at")
        .unwrap();
    let outcomes: Vec<&str> = audited.lines().collect();
    assert_eq!(
        outcomes,
        ["ok", "denied", "denied", "ok", "not_found"],
        "{audited}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_export_validates_on_the_redis_store() {
    let redis = TestRedis::start().unwrap();
    the_export_is_a_valid_fhir_bundle(vec![
        ("CHAT_REDIS_URL", redis.url()),
        ("CHAT_MESSAGE_STORE", "redis".into()),
    ])
    .await;
}

/// The service as `serve` wires it over `vars`, with a manual clock: the test drives
/// the use cases, the jobs and the sweep itself.
async fn service_over(
    vars: &[(&'static str, String)],
) -> (
    chat_core::ChatService,
    std::sync::Arc<chat_memory::ManualClock>,
) {
    let mut all: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    for (k, v) in [
        ("CHAT_JWT_SECRET", SECRET),
        ("CHAT_OBJECT_STORE_URL", "memory://"),
        ("CHAT_MESSAGE_TTL_SECS", "60"),
        ("CHAT_MAX_MESSAGES_PER_THREAD", "3"),
    ] {
        all.push((k.into(), v.into()));
    }
    let config = chat_server::Config::from_vars(all).unwrap();
    let media = chat_server::open_media(&config, config.bind).unwrap();
    let clock = std::sync::Arc::new(chat_memory::ManualClock::new(chrono::Utc::now()));
    let overrides = chat_server::Overrides {
        clock: Some(clock.clone()),
        ..chat_server::Overrides::default()
    };
    let wired = chat_server::build_service(&config, overrides, Some(media.store))
        .await
        .unwrap();
    (wired.service, clock)
}

/// SPEC §10's legal hold, on a message store: only an admin, with a reason, places
/// it; while held nothing expires (the TTL, the sweep), is capped, retracted (`on
/// hold`) or purged (a close's purge waits); lifted, the ordinary rules apply at once
/// and a closed thread is purged.
async fn a_legal_hold_keeps_everything_until_it_is_lifted(
    vars: Vec<(&'static str, String)>,
    redis: Option<&TestRedis>,
) {
    use chat_core::{ChatError, MessageContent, PageRequest, RequestId, TextBody, User, UserId};
    let (service, clock) = service_over(&vars).await;
    let admin = User::new(UserId::new(1).unwrap(), "admin");
    let client = User::new(UserId::new(7).unwrap(), "client");
    let mut threads = Vec::new();
    for request in [1, 2] {
        let request = RequestId::new(request).unwrap();
        service
            .register_request(&admin, request, client.id, Vec::new(), false)
            .await
            .unwrap();
        threads.push(service.open_thread(&admin, request).await.unwrap().id);
    }
    let (open, closing) = (threads[0], threads[1]);
    let reason = || Ok(Some("litigation hold #2026-17".to_owned()));
    assert!(matches!(
        service.set_hold(&client, open, true, reason).await,
        Err(ChatError::Forbidden)
    ));
    let refused = service.set_hold(&admin, open, true, || Ok(None)).await;
    assert!(
        matches!(&refused, Err(ChatError::Invalid(e)) if e.fields().contains_key("reason")),
        "{refused:?}"
    );
    for thread in [open, closing] {
        assert!(
            service
                .set_hold(&admin, thread, true, reason)
                .await
                .unwrap()
                .hold
        );
    }
    let post = |thread, text: String| {
        let service = service.clone();
        let client = client.clone();
        async move {
            service
                .post_message(&client, thread, None, move || {
                    Ok(MessageContent::Text(TextBody::parse(&text, 100).unwrap()))
                })
                .await
                .unwrap()
        }
    };
    let list = |thread| {
        let service = service.clone();
        let admin = admin.clone();
        async move {
            service
                .list_messages(
                    &admin,
                    thread,
                    PageRequest {
                        before: None,
                        limit: 50,
                    },
                )
                .await
                .unwrap()
                .messages
        }
    };
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(post(open, format!("held {n}")).await);
        post(closing, format!("closing {n}")).await;
    }
    assert_eq!(list(open).await.len(), 5, "no cap while held");
    assert!(matches!(
        service.retract_message(&client, open, ids[0]).await,
        Err(ChatError::OnHold)
    ));
    if let Some(redis) = redis {
        let ttl = redis
            .command(&["PTTL", &format!("chat:{{{open}}}:messages")])
            .unwrap();
        assert_eq!(ttl, ":-1", "held keys do not expire in Redis");
    }

    // Past the TTL, and through a sweep: all kept. A close's purge waits.
    clock.advance(std::time::Duration::from_secs(120));
    let swept = service.sweep().await.unwrap();
    assert_eq!(swept.expired_messages, 0, "{swept:?}");
    assert_eq!(list(open).await.len(), 5, "no TTL while held");
    service.close_thread(&admin, closing).await.unwrap();
    while service.run_next_job().await.unwrap().is_some() {}
    let kept = list(closing).await;
    assert_eq!(kept.len(), 5);
    assert!(
        kept.iter().all(|m| m.content.is_some()),
        "not purged while held"
    );

    // Lifted: the rules apply at once, and the closed thread is purged.
    for thread in [open, closing] {
        assert!(
            !service
                .set_hold(&admin, thread, false, || Ok(None))
                .await
                .unwrap()
                .hold
        );
    }
    assert!(list(open).await.is_empty(), "expired now");
    while service.run_next_job().await.unwrap().is_some() {}
    assert!(
        list(closing).await.iter().all(|m| m.content.is_none()),
        "purged once released"
    );
    if let Some(redis) = redis {
        let ttl: i64 = redis
            .command(&["PTTL", &format!("chat:{{{open}}}:messages")])
            .unwrap()[1..]
            .parse()
            .unwrap();
        assert!(ttl > 0 || ttl == -2, "expiring again (or gone): {ttl}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legal_hold_on_the_memory_store() {
    a_legal_hold_keeps_everything_until_it_is_lifted(Vec::new(), None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legal_hold_on_postgres_is_audited_with_its_reason() {
    let db = database();
    let vars = postgres_vars(&db);
    a_legal_hold_keeps_everything_until_it_is_lifted(vars, None).await;
    // The audit table is written in the background.
    let rows = eventually(
        std::time::Duration::from_secs(5),
        "the hold audited",
        || async {
            let rows = db
                .psql(
                    "SELECT action || ':' || outcome || ':' || coalesce(detail, '') \
                 FROM chat_audit_events WHERE action IN ('hold', 'release') ORDER BY id",
                )
                .unwrap();
            (rows.lines().count() >= 6).then_some(rows)
        },
    )
    .await;
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(
        rows,
        [
            "hold:denied:",
            "hold:invalid:",
            "hold:ok:litigation hold #2026-17",
            "hold:ok:litigation hold #2026-17",
            "release:ok:",
            "release:ok:",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legal_hold_on_the_redis_store() {
    let redis = TestRedis::start().unwrap();
    a_legal_hold_keeps_everything_until_it_is_lifted(
        vec![
            ("CHAT_REDIS_URL", redis.url()),
            ("CHAT_MESSAGE_STORE", "redis".into()),
        ],
        Some(&redis),
    )
    .await;
}

/// Over HTTP: `PUT …/hold` for admins (403 otherwise, 422 without a reason), `hold` in
/// the inbox, a retraction `409 on_hold`.
#[tokio::test(flavor = "multi_thread")]
async fn the_hold_route_and_the_inbox() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    let client = token(7, "client");
    let id = app.post_text(&client, thread, "keep me").await;
    let hold = |token: String, body: Value| {
        let app = Api::new(app.base.clone());
        async move {
            app.client
                .put(app.url(&format!("/api/chat/threads/{thread}/hold")))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_error(
        hold(client.clone(), json!({"hold": true, "reason": "x"})).await,
        403,
        "forbidden",
    )
    .await;
    assert_invalid(hold(admin(), json!({"hold": true})).await, "reason").await;
    assert_invalid(
        hold(admin(), json!({"hold": "yes", "reason": "x"})).await,
        "hold",
    )
    .await;
    assert_invalid(
        hold(admin(), json!({"hold": true, "reason": "r".repeat(501)})).await,
        "reason",
    )
    .await;
    let held = json_of(
        hold(admin(), json!({"hold": true, "reason": "subpoena"})).await,
        200,
    )
    .await;
    assert_eq!(held, json!({"threadId": thread, "hold": true}));
    let inbox = json_of(
        app.client
            .get(app.url("/api/chat/threads"))
            .bearer_auth(&client)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(inbox["threads"][0]["hold"], true);
    let retract = app
        .client
        .delete(app.url(&format!("/api/chat/threads/{thread}/messages/{id}")))
        .bearer_auth(&client)
        .send()
        .await
        .unwrap();
    assert_error(retract, 409, "on_hold").await;
    let released = json_of(hold(admin(), json!({"hold": false})).await, 200).await;
    assert_eq!(released["hold"], false);
}

/// A FHIR server stand-in on a free loopback port: it validates every Bundle it
/// receives with the FHIR validator, keeps them with their `Authorization`, and answers
/// `200` with a transaction-response, `500` while failing, or late while hanging.
#[derive(Default)]
struct FhirServer {
    received: std::sync::Mutex<Vec<(Option<String>, Value, bool)>>,
    failing: std::sync::atomic::AtomicBool,
    hanging: std::sync::atomic::AtomicBool,
}

impl FhirServer {
    async fn start() -> (String, std::sync::Arc<Self>) {
        use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
        use std::sync::atomic::Ordering;
        let state = std::sync::Arc::new(Self::default());
        let shared = state.clone();
        let server = HttpServer::new(move || {
            let state = shared.clone();
            App::new().default_service(web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let state = state.clone();
                async move {
                    if state.hanging.load(Ordering::SeqCst) {
                        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    }
                    let bundle: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let valid = fhir_verdict(&bundle).0;
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    state.received.lock().unwrap().push((auth, bundle, valid));
                    if state.failing.load(Ordering::SeqCst) {
                        return HttpResponse::InternalServerError().finish();
                    }
                    HttpResponse::Ok()
                        .content_type("application/fhir+json")
                        .body(r#"{"resourceType":"Bundle","type":"transaction-response"}"#)
                }
            }))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        (format!("http://127.0.0.1:{port}/fhir"), state)
    }

    fn attempts(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    fn fail(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A request that asks for its record, its thread with a text, a location and an
/// image, closed; the thread id.
async fn closed_recorded_thread(app: &Api) -> i64 {
    let registered = json_of(
        app.register(
            &admin(),
            5,
            json!({"client_id": 7, "staff_ids": [11], "record": true}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(registered["record"], true, "echoed");
    let thread = json_of(app.open(&token(7, "client"), 5).await, 200).await["threadId"]
        .as_i64()
        .unwrap();
    let client = token(7, "client");
    app.post_text(&client, thread, "Please note the new dressing")
        .await;
    json_of(
        app.post(
            &client,
            thread,
            json!({"type": "location", "lat": 1.5, "lng": 2.5}),
        )
        .await,
        200,
    )
    .await;
    upload_png(&app.client, &app.base, thread, b"").await;
    let started = std::time::Instant::now();
    json_of(app.close(&admin(), thread).await, 200).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the close does not wait for the FHIR server"
    );
    thread
}

/// Whether the thread's content is gone (its messages redacted, or expired once its
/// record no longer kept them).
async fn purged(app: &Api, thread: i64) -> bool {
    let listed = app.all_messages(&admin(), thread).await;
    listed.iter().all(|m| m["redacted"] == true)
}

/// Closing a thread whose request asked for its record sends the transcript to the
/// FHIR server first, as a transaction Bundle the validator accepts (with the bearer
/// token), then purges it; the host hears `thread_recorded`.
#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_thread_reaches_the_fhir_server_before_its_purge() {
    let (fhir, server) = FhirServer::start().await;
    let (hook, host) = crate::host::receiver().await;
    let app = TestApp::spawn_with(&[
        ("CHAT_FHIR_BASE_URL", fhir.as_str()),
        ("CHAT_FHIR_TOKEN", "fhir-secret-token"),
        ("CHAT_WEBHOOK_URL", hook.as_str()),
    ])
    .await;
    let thread = closed_recorded_thread(&app).await;
    eventually(
        std::time::Duration::from_secs(20),
        "recorded, then purged",
        || async { purged(&app, thread).await.then_some(()) },
    )
    .await;
    let received = server.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "one attempt, which succeeded");
    let (auth, bundle, valid) = &received[0];
    assert!(valid, "the validator accepts it: {bundle}");
    assert_eq!(auth.as_deref(), Some("Bearer fhir-secret-token"));
    assert_eq!(bundle["type"], "transaction");
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for entry in entries {
        assert_eq!(entry["request"]["method"], "POST");
        assert_eq!(entry["request"]["url"], "Communication");
        let guard = entry["request"]["ifNoneExist"].as_str().unwrap();
        assert!(guard.starts_with("identifier=urn:chat:message|"), "{guard}");
        assert_eq!(entry["resource"]["status"], "completed");
    }
    eventually(
        std::time::Duration::from_secs(15),
        "thread_recorded",
        || async {
            let got = crate::host::deliveries_named(&host, "thread_recorded");
            got.iter()
                .any(|(_, body)| body.contains("\"messages\":3"))
                .then_some(())
        },
    )
    .await;
}

/// A FHIR server that fails: the job retries on the purge's schedule, and when every
/// attempt failed the thread keeps its content past its TTL (no purge), the host
/// hears `thread_record_failed`; an admin's `POST …/record` tries again at once, and
/// then the thread is recorded and purged.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_that_fails_keeps_the_content_until_an_admin_retries() {
    a_failed_record_keeps_the_content(None).await;
}

/// The same on the memory-only mode, where Redis expires messages by itself: the
/// thread's keys stop expiring from the close until the record is made.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_that_fails_keeps_the_content_in_redis() {
    let redis = TestRedis::start().unwrap();
    a_failed_record_keeps_the_content(Some(&redis)).await;
}

async fn a_failed_record_keeps_the_content(redis: Option<&TestRedis>) {
    let (fhir, server) = FhirServer::start().await;
    let (hook, host) = crate::host::receiver().await;
    server.fail(true);
    let mut vars = vec![
        ("CHAT_FHIR_BASE_URL", fhir.clone()),
        ("CHAT_WEBHOOK_URL", hook.clone()),
        ("CHAT_MESSAGE_TTL_SECS", "60".to_owned()),
    ];
    if let Some(redis) = redis {
        vars.push(("CHAT_REDIS_URL", redis.url()));
        vars.push(("CHAT_MESSAGE_STORE", "redis".to_owned()));
    }
    let app = TestApp::spawn_with(&borrowed(&vars)).await;
    let thread = closed_recorded_thread(&app).await;
    let ids_ttl = || {
        redis.map(|redis| {
            redis
                .command(&["PTTL", &format!("chat:{{{thread}}}:messages")])
                .unwrap()
        })
    };
    if redis.is_some() {
        assert_eq!(ids_ttl().as_deref(), Some(":-1"), "kept keys do not expire");
    }
    // Five attempts, 5 s, 30 s, 60 s and 120 s apart (the purge's schedule).
    for (attempt, wait) in [(1, 0), (2, 5), (3, 30), (4, 60), (5, 120)] {
        app.clock.advance(std::time::Duration::from_secs(wait));
        eventually(
            std::time::Duration::from_secs(15),
            "the next attempt",
            || async { (server.attempts() >= attempt).then_some(()) },
        )
        .await;
    }
    eventually(
        std::time::Duration::from_secs(15),
        "thread_record_failed",
        || async {
            (!crate::host::deliveries_named(&host, "thread_record_failed").is_empty()).then_some(())
        },
    )
    .await;
    // Past the TTL: the content is kept for the record.
    app.clock.advance(std::time::Duration::from_secs(7200));
    let kept = app.all_messages(&admin(), thread).await;
    assert_eq!(kept.len(), 3);
    assert!(
        kept.iter().all(|m| m["redacted"] == false),
        "kept: {kept:?}"
    );
    if redis.is_some() {
        assert_eq!(ids_ttl().as_deref(), Some(":-1"), "still not expiring");
    }
    assert!(server
        .received
        .lock()
        .unwrap()
        .iter()
        .all(|(_, _, valid)| *valid));

    // An admin retries at once (no one else may); the server works again.
    let retry = |token: String| {
        let api = Api::new(app.base.clone());
        async move {
            api.client
                .post(api.url(&format!("/api/chat/threads/{thread}/record")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_error(retry(token(11, "nurse")).await, 403, "forbidden").await;
    server.fail(false);
    let queued = json_of_status(retry(admin()).await, 202).await;
    assert_eq!(queued, json!({"threadId": thread, "record": "pending"}));
    eventually(
        std::time::Duration::from_secs(20),
        "recorded, then purged",
        || async { purged(&app, thread).await.then_some(()) },
    )
    .await;
    assert_eq!(server.attempts(), 6);
    if redis.is_some() {
        let ttl: i64 = ids_ttl().unwrap()[1..].parse().unwrap();
        assert!(ttl > 0 || ttl == -2, "expiring again once recorded: {ttl}");
    }
    eventually(
        std::time::Duration::from_secs(15),
        "thread_recorded",
        || async {
            (!crate::host::deliveries_named(&host, "thread_recorded").is_empty()).then_some(())
        },
    )
    .await;
}

/// A FHIR server that never answers slows no post and no close: the record is a job.
#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_fhir_server_slows_no_post_and_no_close() {
    let (fhir, server) = FhirServer::start().await;
    server
        .hanging
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let app = TestApp::spawn_with(&[("CHAT_FHIR_BASE_URL", fhir.as_str())]).await;
    closed_recorded_thread(&app).await; // asserts the close answered within 2 s
    let other = app.thread_for(9, 7).await;
    for n in 0..5 {
        let started = std::time::Instant::now();
        app.post_text(&token(7, "client"), other, &format!("meanwhile {n}"))
            .await;
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}

/// A record job pending when its instance stops is resumed by the next one (jobs are
/// durable on PostgreSQL), and the thread is recorded, then purged.
#[tokio::test(flavor = "multi_thread")]
async fn a_pending_record_survives_a_restart() {
    let (fhir, server) = FhirServer::start().await;
    server.fail(true);
    let db = database();
    let mut vars = postgres_vars(&db);
    vars.push(("CHAT_FHIR_BASE_URL", fhir.clone()));
    // Media that outlive the process, as the thread's image must.
    let media = tempfile::tempdir().unwrap();
    vars.push((
        "CHAT_OBJECT_STORE_URL",
        format!("file://{}", media.path().display()),
    ));
    let first = ServerProcess::start(&borrowed(&vars));
    let thread = closed_recorded_thread(&first.api()).await;
    // Stopped once its first failure is stored: killed while the attempt was still in
    // hand, the job would wait for its lease (two minutes) before another instance
    // could take it.
    let failure_stored = "SELECT count(*) FROM chat_jobs WHERE kind = 'record_thread' \
                          AND last_error IS NOT NULL AND leased_until IS NULL";
    eventually(
        std::time::Duration::from_secs(15),
        "a first, failed attempt",
        || async {
            let stored = db.psql(failure_stored).unwrap().trim() == "1";
            (server.attempts() >= 1 && stored).then_some(())
        },
    )
    .await;
    drop(first.stop());
    server.fail(false);
    let second = ServerProcess::start(&borrowed(&vars));
    let api = second.api();
    // The job keeps its retry schedule across the restart: the next attempt is due 5 s
    // after the first failure, or 30 s after a second one (a slow first instance).
    let resumed = tokio::time::timeout(std::time::Duration::from_secs(70), async {
        while !purged(&api, thread).await {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        resumed.is_ok(),
        "not resumed within 70 s:\n{}",
        second.log()
    );
    assert!(server.attempts() >= 2);
    let (_, bundle, valid) = server.received.lock().unwrap().last().cloned().unwrap();
    assert!(valid, "{bundle}");
    drop(second.stop());
}

/// `json_of`, for a status other than 200.
async fn json_of_status(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!(got, status, "{body}");
    body
}
