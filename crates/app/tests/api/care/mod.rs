//! Care teams, the inbox, read markers and retraction (SPEC §1, §3.1, §3.8–§3.10, §6).

mod inbox;
mod live_access;
mod presence;
mod retraction;
pub(crate) mod support;

use crate::helpers::*;
use serde_json::json;
use support::*;

#[tokio::test]
async fn the_care_team_may_open_follow_and_post_and_a_removed_member_loses_it_at_once() {
    let app = TestApp::spawn().await;
    let body = json_of(
        app.register(
            &admin(),
            5,
            json!({"client_id": 7, "staff_ids": [12, 11, 12]}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        body,
        json!({"id": 5, "client_id": 7, "staff_ids": [11, 12], "record": false})
    );
    let (nurse, colleague, outsider) = (token(11, "nurse"), token(12, "nurse"), token(13, "nurse"));

    // Staff of the request may open its thread; other staff may not.
    assert_error(app.open(&outsider, 5).await, 403, "forbidden").await;
    let thread = json_of(app.open(&nurse, 5).await, 200).await["threadId"]
        .as_i64()
        .unwrap();
    app.post_text(&nurse, thread, "on my way").await;
    assert_eq!(app.all_texts(&colleague, thread).await, vec!["on my way"]);
    assert_eq!(
        app.all_texts(&token(7, "client"), thread).await,
        vec!["on my way"]
    );
    assert_error(app.list(&outsider, thread, "").await, 403, "forbidden").await;
    let posted = app
        .post(&outsider, thread, json!({"type": "text", "text": "hi"}))
        .await;
    assert_error(posted, 403, "forbidden").await;
    assert_eq!(
        app.authorize(&outsider, "1.2", &channel(thread))
            .await
            .status(),
        403
    );

    // A new team applies to the next request: the removed nurse is a stranger now.
    json_of(
        app.register(&admin(), 5, json!({"client_id": 7, "staff_ids": [12]}))
            .await,
        200,
    )
    .await;
    assert_error(app.list(&nurse, thread, "").await, 403, "forbidden").await;
    let posted = app
        .post(
            &nurse,
            thread,
            json!({"type": "text", "text": "still here?"}),
        )
        .await;
    assert_error(posted, 403, "forbidden").await;
    assert_eq!(
        app.authorize(&nurse, "1.2", &channel(thread))
            .await
            .status(),
        403
    );
    assert_error(app.open(&nurse, 5).await, 403, "forbidden").await;
    assert_eq!(app.all_texts(&colleague, thread).await, vec!["on my way"]);
    // Without staff_ids the team is empty again.
    json_of(
        app.register(&admin(), 5, json!({"client_id": 7})).await,
        200,
    )
    .await;
    assert_error(app.list(&colleague, thread, "").await, 403, "forbidden").await;
}

#[tokio::test]
async fn bad_staff_ids_are_422_with_the_field_named() {
    let app = TestApp::spawn().await;
    let many: Vec<i64> = (1..=51).collect();
    for (staff, field) in [
        (json!("11"), "staff_ids"),
        (json!({"a": 1}), "staff_ids"),
        (json!([0]), "staff_ids.0"),
        (json!([11, -1]), "staff_ids.1"),
        (json!([11, "nurse"]), "staff_ids.1"),
        (json!([1.5]), "staff_ids.0"),
        (json!(many), "staff_ids"),
    ] {
        let response = app
            .register(&admin(), 5, json!({"client_id": 7, "staff_ids": staff}))
            .await;
        assert_invalid(response, field).await;
    }
    // Fifty distinct, repeated: accepted, stored once each.
    let mut fifty: Vec<i64> = (1..=50).collect();
    fifty.extend(1..=50);
    let body = json_of(
        app.register(&admin(), 5, json!({"client_id": 7, "staff_ids": fifty}))
            .await,
        200,
    )
    .await;
    assert_eq!(body["staff_ids"].as_array().unwrap().len(), 50);
}
