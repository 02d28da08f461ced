//! `tryon mock --proxy URL`: the CLI starts the validating proxy, prints its
//! readiness line, and a client run through it reaches the upstream.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use common::{output, text};
use tryon_mock::MockServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tryon_mock_proxy_starts_prints_its_url_and_forwards() {
    let upstream = MockServer::builder().virtual_time().start().await;
    let mut proxy = std::process::Command::new(assert_cmd::cargo::cargo_bin("tryon"));
    proxy
        .args(["mock", "--proxy", &upstream.uri(), "--port", "0", "--json"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = proxy.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let url = ready["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    assert_ne!(url, upstream.uri());
    assert_eq!(ready["control"], format!("{url}/__mock/"));

    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("tryon"));
    cmd.env("SEGMIND_API_KEY", common::KEY)
        .args(["--base-url", &url, "submit"])
        .args(["--person", "https://example.com/p.jpg"])
        .args(["--garment", "https://example.com/g.jpg"]);
    let submitted = output(cmd).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(submitted.status.success(), "{}", text(&submitted.stderr));
    assert_eq!(
        upstream.billed_submits(),
        1,
        "the submit went through to the upstream"
    );
}
