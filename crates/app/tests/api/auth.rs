//! Bearer tokens (SPEC §2): only valid HS256 tokens with the configured secret pass.

use crate::helpers::*;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::json;

async fn status_with(app: &TestApp, token: &str) -> u16 {
    let r = app.list(token, 1, "").await;
    let status = r.status().as_u16();
    if status == 401 {
        assert_error(r, 401, "unauthenticated").await;
    }
    status
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let app = TestApp::spawn().await;
    app.thread_for(1, 7).await;
    let exp = now_secs() + 3600;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let claims = json!({"sub": "7", "role": "client", "exp": exp});
    let alg_none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims.clone())
    );
    let cases = [
        ("garbage", "not-a-jwt".to_owned()),
        (
            "wrong secret",
            sign(
                &claims,
                "another-secret-another-secret-000000",
                Algorithm::HS256,
            ),
        ),
        (
            "expired",
            sign(
                &json!({"sub": "7", "exp": now_secs() - 3600}),
                SECRET,
                Algorithm::HS256,
            ),
        ),
        (
            "no exp",
            sign(&json!({"sub": "7"}), SECRET, Algorithm::HS256),
        ),
        (
            "no sub",
            sign(&json!({"exp": exp}), SECRET, Algorithm::HS256),
        ),
        (
            "sub not an integer",
            sign(
                &json!({"sub": "alice", "exp": exp}),
                SECRET,
                Algorithm::HS256,
            ),
        ),
        (
            "sub zero",
            sign(&json!({"sub": 0, "exp": exp}), SECRET, Algorithm::HS256),
        ),
        (
            "not yet valid",
            sign(
                &json!({"sub": "7", "exp": exp, "nbf": now_secs() + 600}),
                SECRET,
                Algorithm::HS256,
            ),
        ),
        (
            "HS512, same secret",
            sign(&claims, SECRET, Algorithm::HS512),
        ),
        ("alg none", alg_none),
        ("tampered payload", {
            let good = token(7, "client");
            let parts: Vec<&str> = good.split('.').collect();
            format!(
                "{}.{}.{}",
                parts[0],
                b64(json!({"sub": "1", "role": "admin", "exp": exp})),
                parts[2]
            )
        }),
    ];
    for (name, t) in cases {
        assert_eq!(status_with(&app, &t).await, 401, "{name}");
    }
    // No header, an empty one, another scheme.
    let no_header = app
        .client
        .get(app.url("/api/chat/threads/1/messages"))
        .send()
        .await
        .unwrap();
    assert_error(no_header, 401, "unauthenticated").await;
    for header in ["Bearer ", "Basic dXNlcjpwYXNz", &token(7, "client")] {
        let r = app
            .client
            .get(app.url("/api/chat/threads/1/messages"))
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_error(r, 401, "unauthenticated").await;
    }
}

#[tokio::test]
async fn good_tokens_pass_with_sub_as_string_or_number() {
    let app = TestApp::spawn().await;
    app.thread_for(1, 7).await;
    let exp = now_secs() + 3600;
    assert_eq!(
        status_with(
            &app,
            &sign(&json!({"sub": "7", "exp": exp}), SECRET, Algorithm::HS256)
        )
        .await,
        200
    );
    assert_eq!(
        status_with(
            &app,
            &sign(&json!({"sub": 7, "exp": exp}), SECRET, Algorithm::HS256)
        )
        .await,
        200
    );
    // Another user's token passes authentication and is refused by the policy.
    assert_eq!(status_with(&app, &token(8, "client")).await, 403);
}

#[tokio::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let app = TestApp::spawn_with(&[
        ("CHAT_JWT_ISSUER", "care-app"),
        ("CHAT_JWT_AUDIENCE", "chat"),
    ])
    .await;
    // No thread exists: an accepted token gets as far as 404.
    let exp = now_secs() + 3600;
    let with = |claims| sign(&claims, SECRET, Algorithm::HS256);
    assert_eq!(
        status_with(
            &app,
            &with(json!({"sub": "7", "exp": exp, "iss": "care-app", "aud": "chat"}))
        )
        .await,
        404
    );
    assert_eq!(
        status_with(
            &app,
            &with(json!({"sub": "7", "exp": exp, "iss": "evil", "aud": "chat"}))
        )
        .await,
        401
    );
    assert_eq!(
        status_with(
            &app,
            &with(json!({"sub": "7", "exp": exp, "iss": "care-app", "aud": "other"}))
        )
        .await,
        401
    );
    assert_eq!(
        status_with(&app, &with(json!({"sub": "7", "exp": exp}))).await,
        401,
        "missing iss/aud"
    );
}

#[tokio::test]
async fn the_token_subcommand_signs_a_working_token() {
    let app = TestApp::spawn().await;
    app.thread_for(1, 7).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["token", "--sub", "7", "--role", "client", "--ttl", "600"])
        .env("CHAT_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(out.status.success());
    let t = String::from_utf8(out.stdout).unwrap();
    assert_eq!(status_with(&app, t.trim()).await, 200);
}
