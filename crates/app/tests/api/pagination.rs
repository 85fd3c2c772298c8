//! Cursor pagination (SPEC §3.3).

use crate::helpers::*;
use serde_json::Value;

fn ids(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn empty_thread() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    let page = json_of(app.list(&admin(), thread, "").await, 200).await;
    assert_eq!(
        page,
        serde_json::json!({"messages": [], "nextCursor": null, "reads": {}})
    );
}

#[tokio::test]
async fn pages_walk_from_newest_to_oldest_in_chronological_order() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    let t = token(7, "client");
    let mut posted = Vec::new();
    for i in 0..25 {
        posted.push(app.post_text(&t, thread, &format!("m{i}")).await);
    }
    // Default limit 20: the newest 20, ascending, cursor = smallest id as a string.
    let p1 = json_of(app.list(&t, thread, "").await, 200).await;
    assert_eq!(ids(&p1), posted[5..]);
    assert_eq!(p1["nextCursor"], posted[5].to_string());
    let p2 = json_of(
        app.list(&t, thread, &format!("?cursor={}", posted[5]))
            .await,
        200,
    )
    .await;
    assert_eq!(ids(&p2), posted[..5]);
    assert_eq!(p2["nextCursor"], Value::Null);
    // Exactly `limit` remaining: no next cursor.
    let exact = json_of(
        app.list(&t, thread, &format!("?cursor={}&limit=5", posted[5]))
            .await,
        200,
    )
    .await;
    assert_eq!(ids(&exact), posted[..5]);
    assert_eq!(exact["nextCursor"], Value::Null);
    // The cursor at the oldest message: nothing older.
    let oldest = json_of(
        app.list(&t, thread, &format!("?cursor={}", posted[0]))
            .await,
        200,
    )
    .await;
    assert_eq!(ids(&oldest), Vec::<i64>::new());
    assert_eq!(oldest["nextCursor"], Value::Null);
    // Limits at the edges, and texts in order.
    let one = json_of(app.list(&t, thread, "?limit=1").await, 200).await;
    assert_eq!(ids(&one), [posted[24]]);
    assert_eq!(one["messages"][0]["text"], "m24");
    let fifty = json_of(app.list(&t, thread, "?limit=50").await, 200).await;
    assert_eq!(ids(&fifty), posted);
    // A cursor beyond the newest, and one below every id.
    let beyond = json_of(app.list(&t, thread, "?cursor=999999999&limit=3").await, 200).await;
    assert_eq!(ids(&beyond), posted[22..]);
    let below = json_of(app.list(&t, thread, "?cursor=-5").await, 200).await;
    assert_eq!(ids(&below), Vec::<i64>::new());
}

#[tokio::test]
async fn exactly_limit_messages_has_no_next_cursor() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    for i in 0..20 {
        app.post_text(&admin(), thread, &format!("{i}")).await;
    }
    let page = json_of(app.list(&admin(), thread, "").await, 200).await;
    assert_eq!(ids(&page).len(), 20);
    assert_eq!(page["nextCursor"], Value::Null);
}

#[tokio::test]
async fn bad_limits_and_cursors_are_422() {
    let app = TestApp::spawn().await;
    let thread = app.thread_for(1, 7).await;
    for q in [
        "?limit=0",
        "?limit=51",
        "?limit=abc",
        "?limit=1.5",
        "?limit=-1",
        "?limit=",
        "?limit=5%20",
        "?limit=%205",
        "?limit=5%0A",
    ] {
        assert_invalid(app.list(&admin(), thread, q).await, "limit").await;
    }
    for q in [
        "?cursor=abc",
        "?cursor=1.5",
        "?cursor=",
        "?cursor=12abc",
        "?cursor=12%20",
    ] {
        assert_invalid(app.list(&admin(), thread, q).await, "cursor").await;
    }
}

#[tokio::test]
async fn threads_never_mix() {
    let app = TestApp::spawn().await;
    let a = app.thread_for(1, 7).await;
    let b = app.thread_for(2, 8).await;
    let in_a = app.post_text(&token(7, "client"), a, "for a").await;
    let in_b = app.post_text(&token(8, "client"), b, "for b").await;
    assert_eq!(
        ids(&json_of(app.list(&admin(), a, "").await, 200).await),
        [in_a]
    );
    assert_eq!(
        ids(&json_of(app.list(&admin(), b, "").await, 200).await),
        [in_b]
    );
    // The client of A cannot read or write B.
    assert_error(app.list(&token(7, "client"), b, "").await, 403, "forbidden").await;
}
