//! Privacy (SPEC §4): content and tokens never reach a log, and the store holds only
//! ciphertext.

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

async fn canary_walk(api: &Api, canary: &str) -> Vec<String> {
    let admin = admin();
    let client_token = token(7, "client");
    let thread = open_thread_over_http(&api.client, &api.base, 5).await;
    let post = |body: serde_json::Value| api.post(&client_token, thread, body);
    assert_eq!(
        post(json!({"type": "text", "text": canary})).await.status(),
        200
    );
    assert_eq!(
        post(json!({"type": "location", "lat": 12.3456789, "lng": 98.7654321}))
            .await
            .status(),
        200
    );
    // Refused content must not be echoed or logged either.
    assert_eq!(
        post(json!({"type": "text", "text": format!("{canary}{}", "x".repeat(5000))}))
            .await
            .status(),
        422
    );
    assert_eq!(
        post(json!({"type": "image", "mediaPath": format!("chats/{thread}/{canary}.png")}))
            .await
            .status(),
        422
    );
    assert_eq!(
        post(json!({"type": "location", "lat": canary, "lng": 1}))
            .await
            .status(),
        422
    );
    // An image: its signed upload URL, media key and signed download URL are bearer
    // secrets too.
    let (media_path, upload_url) = upload_png(&api.client, &api.base, thread, b"").await;
    let listed = json_of(api.list(&client_token, thread, "").await, 200).await;
    assert_eq!(
        listed["messages"][0]["text"], canary,
        "the participant reads it back"
    );
    let download_url = listed["messages"][2]["media_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let downloaded = api.client.get(&download_url).send().await.unwrap();
    assert_eq!(downloaded.status(), 200);
    // A forged token is refused; it must not be logged either.
    let forged = format!("{}x", token(7, "client"));
    assert_eq!(api.list(&forged, thread, "").await.status(), 401);
    api.close(&client_token, thread).await;
    let secret_part = |url: &str| url.split_once('?').unwrap().1.to_owned();
    let media_name = media_path.rsplit('/').next().unwrap().to_owned();
    vec![
        admin,
        client_token,
        forged,
        secret_part(&upload_url),
        secret_part(&download_url),
        media_name,
    ]
}

#[tokio::test]
async fn a_canary_never_reaches_the_log() {
    for format in ["text", "json"] {
        let server = ServerProcess::start(&[("CHAT_LOG_FORMAT", format), ("RUST_LOG", "debug")]);
        let canary = format!(
            "CANARY-{}-{format}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap()
        );
        let secrets = canary_walk(&server.api(), &canary).await;
        tokio::time::sleep(Duration::from_millis(1500)).await; // let the purge job log
        let log = server.stop();
        assert!(
            log.contains("message posted"),
            "the log is captured ({format}):\n{log}"
        );
        assert!(log.contains("job finished"), "the purge ran ({format})");
        assert!(!log.contains(&canary), "canary in the {format} log:\n{log}");
        assert!(
            !log.contains("12.3456789") && !log.contains("98.7654321"),
            "coordinates in the log"
        );
        let (tokens, urls) = secrets.split_at(3);
        for t in tokens {
            let signature = t.rsplit('.').next().unwrap();
            assert!(!log.contains(signature), "a token in the {format} log");
        }
        for secret in urls {
            assert!(
                !log.contains(secret.as_str()),
                "{secret} in the {format} log"
            );
        }
        // The audit trail is in the same log, under its own target.
        let audit = |action: &str| match format {
            "json" => log
                .lines()
                .filter(|l| l.contains(r#""target":"chat_audit""#))
                .filter(|l| l.contains(&format!(r#""action":"{action}""#)))
                .count(),
            _ => log
                .lines()
                .filter(|l| l.contains("chat_audit") && l.contains(&format!("action=\"{action}\"")))
                .count(),
        };
        assert_eq!(audit("open"), 1, "{format}:\n{log}");
        assert_eq!(audit("post"), 6, "3 accepted, 3 refused ({format})");
        assert_eq!(audit("upload_url"), 1, "{format}");
        assert_eq!(audit("close"), 1, "{format}");
    }
}

#[tokio::test]
async fn the_store_holds_only_ciphertext() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    let canary = "CANARY-in-the-store-0123456789";
    app.post_text(&token(7, "client"), thread, canary).await;
    let stored = app.stored_messages(thread).await;
    let sealed = stored[0].content.as_ref().unwrap().as_bytes();
    assert!(
        sealed.len() >= canary.len() + 12 + 16,
        "nonce || ciphertext || tag"
    );
    assert!(!sealed.windows(canary.len()).any(|w| w == canary.as_bytes()));
    let debug = format!("{:?}", stored[0]);
    assert!(!debug.contains(canary));
}
