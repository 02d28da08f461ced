//! `tryon mock --proxy U --record D`, then `tryon mock --replay D`: the same
//! `tryon run` through the recording gets the same request id and writes a
//! byte-identical image, with the upstream gone. The recording proxy is
//! killed (SIGKILL) before the replay: what it wrote is usable as is.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;

use std::path::Path;

use common::{assets, output, start_mock, text};
use tryon_mock::MockServer;

/// `tryon run` through `url`, writing `out`; returns its request id.
async fn run(url: &str, out: &Path) -> String {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("tryon"));
    cmd.env("SEGMIND_API_KEY", common::KEY)
        .env_remove("RUST_LOG")
        .args([
            "--base-url",
            url,
            "--upload-base-url",
            url,
            "run",
            "--person",
        ])
        .arg(assets().join("person.png"))
        .arg("--garment")
        .arg(assets().join("garment.png"))
        .args(["--seed", "7", "-o"])
        .arg(out);
    let result = output(cmd).await;
    assert!(
        result.status.success(),
        "tryon run failed: {}",
        text(&result.stderr)
    );
    let stdout = text(&result.stdout);
    stdout
        .split("request_id ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no request id in {stdout}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_tryon_run_replays_with_the_same_id_and_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("recording");
    let rec = recording.to_str().unwrap();
    let upstream = MockServer::start().await;
    let (mut proxy, url) = start_mock(&["--proxy", &upstream.uri(), "--record", rec]);
    let first = dir.path().join("first.png");
    let id = run(&url, &first).await;
    // Killed, not stopped: every exchange that finished is on disk whole.
    proxy.kill();
    drop(upstream);
    let listed: Vec<String> = std::fs::read_dir(recording.join("exchanges"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // The submit, the poll of the result URL that found the job done (two
    // calls a job), and the output.
    assert!(listed.len() >= 3, "{listed:?}");

    let (mut replay, url) = start_mock(&["--replay", rec]);
    let second = dir.path().join("second.png");
    let replayed = run(&url, &second).await;
    replay.kill();
    assert_eq!(replayed, id);
    let (a, b) = (
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap(),
    );
    assert!(!a.is_empty());
    assert!(a == b, "the replayed image differs from the recorded one");
}

#[test]
fn record_without_proxy_and_replay_with_proxy_are_usage_errors() {
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("tryon"))
        .args(["mock", "--record", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--proxy"),
        "{}",
        text(&out.stderr)
    );
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("tryon"))
        .args([
            "mock",
            "--replay",
            "/tmp/x",
            "--proxy",
            "http://127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
