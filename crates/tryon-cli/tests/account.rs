//! `tryon credits` and `tryon history` against httpmock on loopback: the
//! global flags (`--base-url`, `--api-key-env`, `--history-url`), the
//! table, the JSON lines, the de-duplicated total, refusals before
//! anything is sent, and a reader that goes away.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::{Command, Output, Stdio};

use assert_cmd::cargo::CommandCargoExt as _;
use httpmock::prelude::*;
use serde_json::{Value, json};

const KEY: &str = "sk-cli-account";
const HISTORY: &str = "/inference-request/request-history";

/// `tryon` with the key in `TRYON_TEST_KEY` (named by `--api-key-env`)
/// and `server` as the base URL.
fn tryon(server: &MockServer) -> Command {
    let mut cmd = Command::cargo_bin("tryon").expect("the tryon binary is built");
    cmd.env("TRYON_TEST_KEY", KEY)
        .env_remove("SEGMIND_API_KEY")
        .env_remove("RUST_LOG")
        .args(["--api-key-env", "TRYON_TEST_KEY"])
        .args(["--base-url", &server.base_url()]);
    cmd
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("tryon runs"))
        .await
        .expect("joined")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn row(id: &str, cost: Option<f64>, url: Option<&str>, status: &str) -> Value {
    json!({
        "request_id": id,
        "model_name": "p-image-try-on",
        "model_status": status,
        "credits_deduction": cost,
        "generation_url": url,
        "created_at": "2026-03-02T10:00:00Z",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_prints_the_balance_as_text_and_as_json() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/v1/get-user-credits")
                .header("x-api-key", KEY);
            then.status(200)
                .json_body(json!({"credits": 0.0, "free-credits": 0.0185}));
        })
        .await;
    let mut cmd = tryon(&server);
    cmd.arg("credits");
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "credits: $0.0000  free credits: $0.0185  total: $0.0185\n"
    );
    let mut cmd = tryon(&server);
    cmd.args(["credits", "--json"]);
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        json!({"credits": 0.0, "free_credits": 0.0185, "total": 0.0185})
    );
    m.assert_calls_async(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_each_request_once_with_the_total_cost() {
    let server = MockServer::start_async().await;
    let base = |when: httpmock::When| {
        when.method(GET)
            .path(HISTORY)
            .header("x-api-key", KEY)
            .query_param("from_date", "2026-03-01")
            .query_param("to_date", "2026-03-07")
            .query_param("status", "COMPLETED")
            .query_param("per_page", "100")
    };
    // One request with two outputs (two rows, each with the full cost),
    // one without a cost yet, one failed.
    let rows = vec![
        row(
            "req-a",
            Some(0.015),
            Some("https://cdn.example/a1.png"),
            "COMPLETED",
        ),
        row(
            "req-a",
            Some(0.015),
            Some("https://cdn.example/a2.png"),
            "COMPLETED",
        ),
        row(
            "req-b",
            Some(0.023),
            Some("https://cdn.example/b.png"),
            "COMPLETED",
        ),
        row("req-c", None, None, "PENDING"),
    ];
    let page = server
        .mock_async(move |when, then| {
            base(when).query_param("page", "1");
            then.status(200)
                .json_body(json!({"data": rows, "page": 1, "per_page": 100, "total": 4}));
        })
        .await;
    let args = [
        "history",
        "--since",
        "2026-03-01",
        "--until",
        "2026-03-07",
        "--status",
        "completed",
    ];
    let mut cmd = tryon(&server);
    cmd.args(args);
    let out = run(cmd).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    for (line, word) in lines[0]
        .split_whitespace()
        .zip(["REQUEST", "ID", "CREATED", "STATUS", "COST", "OUTPUT"])
    {
        assert_eq!(line, word, "{stdout}");
    }
    assert!(lines[1].starts_with("req-a "), "{stdout}");
    assert!(
        lines[1].contains("2026-03-02T10:00:00Z")
            && lines[1].contains("COMPLETED")
            && lines[1].contains("$0.0150")
            && lines[1].ends_with("https://cdn.example/a1.png"),
        "{stdout}"
    );
    assert!(lines[2].starts_with("req-b ") && lines[2].contains("$0.0230"));
    assert!(lines[3].starts_with("req-c ") && lines[3].contains("PENDING"));
    assert_eq!(
        lines[4], "total: 3 requests, $0.0380 (1 without a cost yet)",
        "{stdout}"
    );

    let mut cmd = tryon(&server);
    cmd.args(args).arg("--json");
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let objects: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = objects
        .iter()
        .map(|o| o["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["req-a", "req-b", "req-c"]);
    assert_eq!(objects[1]["credits_deduction"], json!(0.023));
    assert!(
        text(&out.stderr).contains("total: 3 requests, $0.0380"),
        "{}",
        text(&out.stderr)
    );
    page.assert_calls_async(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_url_names_the_history_host() {
    let api = MockServer::start_async().await;
    let history = MockServer::start_async().await;
    let on_api = api
        .mock_async(|when, then| {
            when.path_prefix(HISTORY);
            then.status(200).json_body(json!({"data": []}));
        })
        .await;
    let listed = history
        .mock_async(|when, then| {
            when.method(GET).path(HISTORY).header("x-api-key", KEY);
            then.status(200).json_body(json!({
                "data": [row("req-h", Some(0.015), Some("https://cdn.example/h.png"), "COMPLETED")]
            }));
        })
        .await;
    let mut cmd = tryon(&api);
    cmd.args([
        "--history-url",
        &history.base_url(),
        "history",
        "--limit",
        "5",
    ]);
    let out = run(cmd).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("req-h"), "{stdout}");
    assert!(stdout.ends_with("total: 1 request, $0.0150\n"), "{stdout}");
    listed.assert_calls_async(1).await;
    on_api.assert_calls_async(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_history_flags_are_refused_before_anything_is_sent() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|_when, then| {
            then.status(200).json_body(json!({"data": []}));
        })
        .await;
    for (args, says) in [
        (
            &["history", "--since", "2026-01-01", "--until", "2026-02-15"][..],
            "at most 31 days",
        ),
        (
            &["history", "--since", "2026-03-05", "--until", "2026-03-01"][..],
            "is after until",
        ),
        (&["history", "--since", "2026-3-5"][..], "YYYY-MM-DD"),
        (&["history", "--until", "2026-02-30"][..], "YYYY-MM-DD"),
        (&["history", "--limit", "0"][..], "1 or more"),
        (&["history", "--status", "done"][..], "done"),
    ] {
        let mut cmd = tryon(&server);
        cmd.args(args);
        let out = run(cmd).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    any.assert_calls_async(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_goes_away_stops_the_paging_without_a_panic() {
    let server = MockServer::start_async().await;
    // Full pages for ever.
    let rows: Vec<Value> = (0..100)
        .map(|i| row(&format!("req-{i}"), Some(0.01), None, "COMPLETED"))
        .collect();
    let endless = server
        .mock_async(move |when, then| {
            when.method(GET).path(HISTORY);
            then.status(200)
                .json_body(json!({"data": rows, "per_page": 100}));
        })
        .await;
    let mut cmd = tryon(&server);
    cmd.arg("history")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("tryon starts");
        // `| head -0`: the reader is gone before the first line.
        drop(child.stdout.take());
        child.wait_with_output().expect("tryon ends")
    })
    .await
    .unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    endless.assert_calls_async(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_is_an_auth_error_naming_the_variable() {
    let server = MockServer::start_async().await;
    let mut cmd = tryon(&server);
    cmd.env_remove("TRYON_TEST_KEY").arg("credits");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("TRYON_TEST_KEY is not set"));
}
