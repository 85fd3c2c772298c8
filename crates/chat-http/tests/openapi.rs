//! `docs/openapi.json` is the document the code generates: a change to a route or a
//! body type that is not committed there fails here.
//! `UPDATE_OPENAPI=1 cargo test -p chat-http --test openapi` rewrites it.

use std::path::PathBuf;

#[test]
fn the_committed_document_is_the_generated_one() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = chat_http::openapi::document_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json differs from what the code generates; \
         run `UPDATE_OPENAPI=1 cargo test -p chat-http --test openapi` and commit it"
    );
}

#[test]
fn it_is_openapi_3_1_and_covers_every_api_route() {
    let doc: serde_json::Value =
        serde_json::from_str(&chat_http::openapi::document_json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/requests/{id}", "put"),
        ("/api/requests/{id}/chat/open", "post"),
        ("/api/chat/threads/{thread}/messages", "get"),
        ("/api/chat/threads/{thread}/messages", "post"),
        ("/api/chat/threads/{thread}/close", "patch"),
        ("/api/chat/threads", "get"),
        ("/api/chat/threads/{thread}/read", "post"),
        ("/api/chat/threads/{thread}/messages/{message}", "delete"),
        ("/api/chat/threads/{thread}/media", "post"),
        ("/broadcasting/auth", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} is not described");
        assert!(
            operation["responses"]["200"].is_object(),
            "{method} {path}: 200"
        );
        if path.starts_with("/api") || path.starts_with("/broadcasting") {
            for status in ["401", "403", "404", "422", "429", "503"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path}: {status}"
                );
            }
            assert_eq!(operation["security"][0]["bearer"], serde_json::json!([]));
        }
    }
}

#[test]
fn every_reference_resolves() {
    let text = chat_http::openapi::document_json();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut rest = text.as_str();
    let mut seen = 0;
    while let Some(at) = rest.find("\"#/components/schemas/") {
        rest = &rest[at + 22..];
        let name = &rest[..rest.find('"').unwrap()];
        assert!(schemas.contains_key(name), "dangling $ref to {name}");
        seen += 1;
    }
    assert!(seen > 10, "references were found ({seen})");
}
