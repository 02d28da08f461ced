//! `tryon mock --proxy URL`: the CLI starts the validating proxy, prints its
//! readiness line, and a client run through it reaches the upstream.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;

use common::{output, text};
use tryon_mock::MockServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tryon_mock_proxy_starts_prints_its_url_and_forwards() {
    let upstream = MockServer::builder().virtual_time().start().await;
    let (mut proxy, url) = common::start_mock(&["--proxy", &upstream.uri()]);
    assert!(url.starts_with("http://127.0.0.1:"), "{}", proxy.ready());
    assert_ne!(url, upstream.uri());
    assert_eq!(proxy.ready()["control"], format!("{url}/__mock/"));

    let mut cmd = common::tryon_at(&url);
    cmd.arg("submit")
        .args(["--person", "https://example.com/p.jpg"])
        .args(["--garment", "https://example.com/g.jpg"]);
    let submitted = output(cmd).await;
    proxy.kill();
    assert!(submitted.status.success(), "{}", text(&submitted.stderr));
    assert_eq!(
        upstream.billed_submits(),
        1,
        "the submit went through to the upstream"
    );
}
