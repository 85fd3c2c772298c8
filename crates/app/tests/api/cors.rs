//! CORS (SPEC §3.11): one list of browser origins for the API, the channel authorizer
//! and the media URLs.

use crate::helpers::*;
use reqwest::Method;

const PAGE: &str = "https://care.example.com";

async fn preflight(app: &Api, path: &str, origin: &str, method: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_listed_origin_gets_its_preflights_answered_and_its_responses_marked() {
    let app = TestApp::spawn_with(&[(
        "CHAT_ALLOWED_ORIGINS",
        &format!("{PAGE},https://other.example"),
    )])
    .await;
    let thread = app.thread_for(1, 7).await;
    for (path, method) in [
        (format!("/api/chat/threads/{thread}/messages"), "POST"),
        ("/api/requests/1".to_owned(), "PUT"),
        (format!("/api/chat/threads/{thread}/close"), "PATCH"),
        (format!("/api/chat/threads/{thread}/messages/1"), "DELETE"),
        ("/broadcasting/auth".to_owned(), "POST"),
        ("/media/chats/1/x.png".to_owned(), "PUT"),
    ] {
        let answer = preflight(&app, &path, PAGE, method).await;
        assert_eq!(answer.status(), 204, "{method} {path}");
        assert_eq!(header(&answer, "access-control-allow-origin"), Some(PAGE));
        let methods = header(&answer, "access-control-allow-methods").unwrap();
        assert!(methods.contains(method), "{methods}");
        let headers = header(&answer, "access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            headers.contains("authorization") && headers.contains("content-type"),
            "{headers}"
        );
        assert!(header(&answer, "access-control-max-age").is_some());
        assert_eq!(
            header(&answer, "access-control-allow-credentials"),
            None,
            "no cookies"
        );
    }
    // An actual request names the origin, and says the answer depends on it.
    let listed = app
        .client
        .get(app.url(&format!("/api/chat/threads/{thread}/messages")))
        .bearer_auth(token(7, "client"))
        .header("Origin", PAGE)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    assert_eq!(header(&listed, "access-control-allow-origin"), Some(PAGE));
    let exposed = header(&listed, "access-control-expose-headers").unwrap();
    assert!(
        exposed.to_ascii_lowercase().contains("retry-after"),
        "{exposed}"
    );
    assert!(header(&listed, "vary")
        .unwrap()
        .to_ascii_lowercase()
        .contains("origin"));
    // Errors too, or the page could not read why it failed.
    let refused = app
        .client
        .get(app.url(&format!("/api/chat/threads/{thread}/messages")))
        .header("Origin", PAGE)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(header(&refused, "access-control-allow-origin"), Some(PAGE));

    // Another origin gets no CORS headers at all, not even the exposed ones: the
    // browser keeps the answer from its page.
    let stranger = preflight(&app, "/api/requests/1", "https://evil.example", "PUT").await;
    assert_eq!(cors_headers(&stranger), Vec::<String>::new());
    let read = app
        .client
        .get(app.url(&format!("/api/chat/threads/{thread}/messages")))
        .bearer_auth(token(7, "client"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(cors_headers(&read), Vec::<String>::new());
}

/// The names of the `Access-Control-*` headers of an answer.
fn cors_headers(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .keys()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn without_a_list_there_are_no_cors_headers() {
    let app = TestApp::spawn().await;
    let answer = preflight(&app, "/api/requests/1", PAGE, "PUT").await;
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
    let health = app
        .client
        .get(app.url("/healthz"))
        .header("Origin", PAGE)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&health, "access-control-allow-origin"), None);
}
