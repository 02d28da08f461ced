//! The key never shows in `Debug`, errors or logs, even when a server
//! echoes it back.
//!
//! A test binary of its own: the log capture is a thread-local tracing
//! subscriber, and a callsite first registered by a test running on
//! another thread of the same binary can have its interest cached before
//! this subscriber exists, so its events would be missed now and then.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use tryon_client::test_util::VirtualClock;
use tryon_client::{Client, Error};

/// A `MakeWriter` into a shared buffer, to read what was logged.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_key_never_shows_in_debug_errors_or_logs() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

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
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap(),
    ];
    for t in &texts {
        assert!(!t.contains(KEY), "key leaked in: {t}");
    }
    let logs = &texts[4];
    assert!(logs.contains(ID), "job span carries the request_id: {logs}");
    assert!(logs.contains("retrying"), "{logs}");
    assert!(texts[2].contains("[REDACTED]"));
}
