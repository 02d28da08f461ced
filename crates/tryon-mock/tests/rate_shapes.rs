//! The rate-limit shapes beyond the token bucket: a limit on submits only,
//! a fixed window, and a change of budget through the control API, with old
//! bodies still accepted.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;

use std::time::Duration;

use serde_json::json;
use tryon_mock::{MockServer, RateLimitRule};

const SUBMIT: &str = "/v2/p-image-try-on";

#[tokio::test]
async fn submits_only_limits_submits_and_lets_reads_through() {
    let server = MockServer::builder()
        .virtual_time()
        .rate_limit(RateLimitRule::new(1.0, 1).submits_only())
        .start()
        .await;
    let uri = server.uri();
    let id = common::submit(&uri, &common::body(1)).await["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = common::post(&uri, SUBMIT, &common::body(1)).await;
    assert_eq!(second.status(), 429);
    for _ in 0..20 {
        assert_eq!(common::status_of(&uri, &id).await.0, 200);
    }
    server.advance(Duration::from_secs(1));
    assert_eq!(
        common::post(&uri, SUBMIT, &common::body(1)).await.status(),
        200
    );
}

#[tokio::test]
async fn a_window_allows_its_count_then_says_when_it_ends() {
    let server = MockServer::builder()
        .virtual_time()
        .rate_limit(RateLimitRule::new(0.5, 1).per_window(Duration::from_secs(10)))
        .start()
        .await;
    let uri = server.uri();
    server.advance(Duration::from_secs(3));
    // 0.5/s over 10 s: five requests per window, whatever the burst.
    for _ in 0..5 {
        assert_eq!(
            common::post(&uri, SUBMIT, &common::body(1)).await.status(),
            200
        );
    }
    let refused = common::post(&uri, SUBMIT, &common::body(1)).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "7");
    server.advance(Duration::from_secs(7));
    assert_eq!(
        common::post(&uri, SUBMIT, &common::body(1)).await.status(),
        200
    );
}

#[tokio::test]
async fn the_control_api_takes_the_new_shapes_and_the_old_body() {
    let server = MockServer::builder().virtual_time().start().await;
    let http = common::client();
    let url = format!("{}/__mock/rate_limit", server.uri());
    let old = json!({"per_second": 1, "burst": 2});
    let r = http.put(&url).json(&old).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // One submit per 10 s window, reads free.
    let new = json!({"per_second": 0.1, "burst": 5, "scope": "submits_only", "window_secs": 10});
    let r = http.put(&url).json(&new).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let uri = server.uri();
    let id = common::submit(&uri, &common::body(1)).await["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        common::post(&uri, SUBMIT, &common::body(1)).await.status(),
        429
    );
    for _ in 0..5 {
        assert_eq!(common::status_of(&uri, &id).await.0, 200);
    }
    for bad in [
        json!({"per_second": 1, "burst": 2, "scope": "reads"}),
        json!({"per_second": 1, "burst": 2, "window_secs": 0}),
    ] {
        let r = http.put(&url).json(&bad).send().await.unwrap();
        assert!(matches!(r.status().as_u16(), 400 | 422), "{bad}");
    }
}
