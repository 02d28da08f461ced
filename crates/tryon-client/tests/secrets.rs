//! The key never shows in `Debug`, errors or logs, even when a server
//! echoes it back.
//!
//! A test binary of its own, as every test that reads logs
//! (`common/logs.rs` says why).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::logs::Logs;
use common::*;
use tryon_client::test_util::VirtualClock;
use tryon_client::{Client, Error};

#[tokio::test]
async fn the_key_never_shows_in_debug_errors_or_logs() {
    let logs = Logs::capture(tracing::Level::TRACE);

    // A server that echoes the key back in its error text.
    let api = serve(|r, n| {
        let echoed = format!("bad key {}", r.header("x-api-key").unwrap_or(""));
        match (r.method.as_str(), n) {
            ("POST", _) => submitted("https://elsewhere.example"),
            (_, 0) => Reply::Json(503, serde_json::json!({"error": echoed})),
            _ => Reply::Json(401, serde_json::json!({"error": echoed})),
        }
    })
    .await;
    let clock = VirtualClock::new();
    let client = client(&api.url, &clock);
    let err = client.run(&request(2)).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");

    let texts = [
        format!("{client:?}"),
        format!("{:?}", Client::builder().api_key(KEY)),
        format!("{err:?}"),
        err.to_string(),
        logs.text(),
    ];
    for t in &texts {
        assert!(!t.contains(KEY), "key leaked in: {t}");
    }
    let logs = &texts[4];
    assert!(logs.contains(ID), "job span carries the request_id: {logs}");
    assert!(logs.contains("retrying"), "{logs}");
    assert!(texts[2].contains("[REDACTED]"));
}
