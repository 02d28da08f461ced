//! `tryon parity --target URL`: zero differences against a `tryon mock`,
//! every planted departure against the drifted upstream
//! (`tryon_mock::test_util::DriftedUpstream`, the one tryon-mock's proxy
//! tests use), refusals before anything is sent, and
//! failure modes as report lines or clear errors. All offline, on loopback.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]
// The two reports are printed (shown with `--nocapture`): they are the
// README's transcripts.
#![allow(clippy::print_stdout)]

mod common;

use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt as _;
use common::{MockProcess, output, start_mock, text};
use serde_json::Value;
use tryon_mock::test_util::DriftedUpstream;

/// The steps every report lists, in order, each with the status a `tryon
/// mock` answers it with (for a poll, its last answer).
const EXPECTED: [(&str, u16); 17] = [
    ("submit_1", 200),
    ("submit_3", 200),
    ("result_early", 200),
    ("poll_1", 200),
    ("poll_3", 200),
    ("result_1", 200),
    ("output_1", 200),
    ("result_3", 200),
    ("output_3", 200),
    ("unknown_id", 404),
    ("garments_12", 422),
    ("missing_key", 401),
    ("malformed_body", 400),
    ("credits", 200),
    ("history", 200),
    ("history_entry_1", 200),
    ("history_unknown", 404),
];

/// `tryon parity --target TARGET ARGS...`, stdin closed (no terminal),
/// no key in the environment unless the test sets one.
fn parity(target: &str, args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("tryon").unwrap();
    cmd.env_remove("SEGMIND_API_KEY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .args(["parity", "--target", target])
        .args(args);
    cmd
}

/// `tryon mock --port 0` and its URL.
fn tryon_mock() -> (MockProcess, String) {
    start_mock(&[])
}

#[tokio::test]
async fn against_a_tryon_mock_every_step_is_listed_and_nothing_differs() {
    let (_mock, url) = tryon_mock();
    let run = output(parity(&url, &["--interval", "20ms"])).await;
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    println!("$ tryon parity --target {url} --interval 20ms\n{stdout}");
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("\ndifferences: 0\n"), "{stdout}");
    assert!(!stdout.contains("DIFF"), "{stdout}");
    for (step, _) in EXPECTED {
        assert!(stdout.contains(&format!("\n  {step} ")), "{step}: {stdout}");
    }
    assert!(
        stdout.contains("QUEUED -> PROCESSING -> COMPLETED")
            || stdout.contains("PROCESSING -> COMPLETED")
            || stdout.contains("COMPLETED in 1 poll"),
        "{stdout}"
    );

    // With a key in the environment too: a tryon mock bills nothing, so
    // it needs no --live.
    let mut cmd = parity(&url, &["--interval", "20ms", "--json"]);
    cmd.env("SEGMIND_API_KEY", "sk-cli-test");
    let run = output(cmd).await;
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert_eq!(text(&run.stderr), "");
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["version"], 1);
    assert_eq!(report["difference_count"], 0);
    assert_eq!(report["differences"], serde_json::json!([]));
    let seen: Vec<(&str, u16)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let status = s["target"]["answer"]["status"].as_u64().unwrap();
            (s["step"].as_str().unwrap(), u16::try_from(status).unwrap())
        })
        .collect();
    assert_eq!(seen, EXPECTED);
    let submit = &report["steps"][0]["target"]["answer"];
    assert_eq!(submit["body"]["request_id"], "<id>");
    assert_eq!(submit["body"]["status_url"], "<url>");
}

/// The step "result URL before completion" settles the contract's
/// assumption: a target whose result URL answers 404 before completion
/// (a `tryon mock` told so) differs on that step alone, as a status, and
/// every other step still matches.
#[tokio::test]
async fn a_target_whose_result_url_answers_404_before_completion_differs_on_result_early() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mock.toml");
    // Jobs that take a while, so the step surely comes before completion.
    std::fs::write(
        &config,
        "result_before_completion = \"not_found\"\n[timing]\nmode = \"fixed\"\nqueued = 0.5\nprocessing = 0.5\n",
    )
    .unwrap();
    let (_mock, url) = start_mock(&["--config", config.to_str().unwrap()]);
    let run = output(parity(&url, &["--interval", "20ms", "--json"])).await;
    assert_eq!(run.status.code(), Some(7), "{}", text(&run.stderr));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    let steps: Vec<&str> = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["step"].as_str().unwrap())
        .collect();
    assert!(!steps.is_empty());
    assert!(steps.iter().all(|s| *s == "result_early"), "{report:#}");
    let early = &report["steps"][2];
    assert_eq!(early["step"], "result_early");
    assert_eq!(early["target"]["answer"]["status"], 404);
    assert_eq!(early["mock"]["answer"]["status"], 200);
    assert_eq!(
        early["mock"]["answer"]["body"],
        serde_json::json!({"status": "<a status>"})
    );
}

/// `(step, against, pointer, expected, actual)` of every difference.
/// `--record DIR` records the target's side of the run as it goes; the
/// replay of that recording then passes the same parity run, with the
/// same ids, without the target.
#[tokio::test]
async fn a_recorded_parity_run_replays_with_zero_differences() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let rec_arg = rec.to_str().unwrap();
    let (mock, url) = tryon_mock();
    let run = output(parity(
        &url,
        &["--interval", "20ms", "--json", "--record", rec_arg],
    ))
    .await;
    drop(mock);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let recorded: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(rec.join("recording.json").is_file());
    let jobs: Value =
        serde_json::from_slice(&std::fs::read(rec.join("jobs.json")).unwrap()).unwrap();
    assert_eq!(
        jobs.as_array().unwrap().len(),
        2,
        "the two accepted submits: {jobs}"
    );

    let (_replay, url) = start_mock(&["--replay", rec_arg, "--replay-speed", "100"]);
    let run = output(parity(&url, &["--interval", "20ms", "--json"])).await;
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stdout));
    let replayed: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(replayed["difference_count"], 0);
    for (a, b) in recorded["steps"]
        .as_array()
        .unwrap()
        .iter()
        .zip(replayed["steps"].as_array().unwrap())
    {
        let step = &a["step"];
        assert_eq!(
            a["target"]["answer"]["status"], b["target"]["answer"]["status"],
            "{step}"
        );
        assert_eq!(
            a["target"]["answer"]["body"], b["target"]["answer"]["body"],
            "{step}"
        );
    }
    // A second recording into the same directory is refused: a recording
    // is never appended to or overwritten.
    let (_mock, url) = tryon_mock();
    let run = output(parity(&url, &["--interval", "20ms", "--record", rec_arg])).await;
    assert_eq!(run.status.code(), Some(2), "{}", text(&run.stderr));
    assert!(
        text(&run.stderr).contains("recording"),
        "{}",
        text(&run.stderr)
    );
}

fn differences(report: &Value) -> Vec<(String, String, String, String, String)> {
    report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let f = |k: &str| d[k].as_str().unwrap().to_string();
            (
                f("step"),
                f("against"),
                f("pointer"),
                f("expected"),
                f("actual"),
            )
        })
        .collect()
}

#[tokio::test]
async fn against_the_drifted_upstream_each_planted_departure_is_reported_and_the_key_never_shown() {
    let drifted = DriftedUpstream::start().await.unwrap();
    let upstream = drifted.uri();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parity.json");
    let mut cmd = parity(
        &upstream,
        &[
            "--live",
            "--yes",
            "--interval",
            "10ms",
            "--json",
            "-vv",
            "--report",
        ],
    );
    cmd.arg(&path)
        .env("SEGMIND_API_KEY", DriftedUpstream::SECRET);
    let run = output(cmd).await;
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert_eq!(run.status.code(), Some(7), "{stdout}\n{stderr}");
    let written = std::fs::read_to_string(&path).unwrap();
    let report: Value = serde_json::from_str(&written).unwrap();
    let got = differences(&report);
    let has = |step: &str, against: &str, pointer: &str, actual: &str| {
        assert!(
            got.iter()
                .any(|d| d.0 == step && d.1 == against && d.2 == pointer && d.4.contains(actual)),
            "{step} {against} {pointer} {actual}: {got:#?}"
        );
    };
    // The four departures on the scenario's routes (the fifth, the v1 run's
    // 418, is on a route the scenario does not call: a live run would bill it).
    has("poll_1", "spec", "/body/requestId", "job-1");
    has("poll_1", "spec", "/body/status", "QUEUED");
    has("output_1", "spec", "/headers/content-type", "text/plain");
    has("submit_3", "spec", "/headers/retry-after", "absent");
    // And as differences from the mock: the backwards sequence, the 429.
    has(
        "poll_1",
        "mock",
        "/statuses",
        "PROCESSING -> QUEUED -> COMPLETED",
    );
    has("submit_3", "mock", "/status", "429");
    has("output_1", "mock", "/headers/content-type", "text/plain");
    has("poll_3", "run", "/", "skipped: the submit was not accepted");
    // The mock itself matches the spec.
    assert!(got.iter().all(|d| d.1 != "mock-spec"), "{got:#?}");
    assert_eq!(report["difference_count"], got.len());
    assert!(
        stderr.contains(&format!("parity: {} difference(s)", got.len())),
        "{stderr}"
    );

    // Text mode, for the transcript; the same differences, one per line.
    let mut cmd = parity(&upstream, &["--live", "--yes", "--interval", "10ms"]);
    cmd.env("SEGMIND_API_KEY", DriftedUpstream::SECRET);
    drifted.reset();
    let text_run = output(cmd).await;
    let shown = text(&text_run.stdout);
    println!(
        "$ SEGMIND_API_KEY=<the drifted upstream's key> tryon parity --target {upstream} --live --yes --interval 10ms\n{shown}"
    );
    assert_eq!(text_run.status.code(), Some(7), "{shown}");
    assert_eq!(
        shown.lines().filter(|l| l.starts_with("DIFF ")).count(),
        got.len(),
        "{shown}"
    );
    assert!(
        shown.contains("DIFF poll_1 spec /body/requestId: expected no such property"),
        "{shown}"
    );

    // The upstream echoed the key in its 429 bodies; no output shows it.
    let echoed = drifted.seen().submits > 1;
    assert!(echoed, "the 429s (which echo the key) were answered");
    for (what, t) in [
        ("stdout", stdout),
        ("stderr", stderr),
        ("report", written),
        ("text report", shown),
        ("text stderr", text(&text_run.stderr)),
    ] {
        assert!(
            !t.contains(DriftedUpstream::SECRET),
            "the key is in the {what}: {t}"
        );
    }
    assert!(
        report.to_string().contains("[key removed]"),
        "the echo was scrubbed, not missed"
    );
}

#[tokio::test]
async fn a_target_off_loopback_needs_live_and_is_refused_before_anything_is_sent() {
    // TEST-NET-1: nothing is there, so nothing could ever be sent.
    let run = output(parity("https://192.0.2.1", &[])).await;
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(stderr.contains("--live"), "{stderr}");
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    assert!(stderr.contains("$0.046"), "{stderr}");
    // Plain http off loopback is refused whatever the flags.
    let mut cmd = parity("http://192.0.2.1", &["--live", "--yes"]);
    cmd.env("SEGMIND_API_KEY", "sk-x");
    let run = output(cmd).await;
    assert_eq!(run.status.code(), Some(2), "{}", text(&run.stderr));
    assert!(
        text(&run.stderr).contains("plain http"),
        "{}",
        text(&run.stderr)
    );
}

#[tokio::test]
async fn a_loopback_proxy_with_a_key_in_the_environment_needs_live() {
    // A validating proxy on loopback may front the real service: with a
    // key set, it is treated as live.
    // Real time (20 ms queued, 80 ms processing): the jobs finish.
    let upstream = tryon_mock::MockServer::start().await;
    let proxy = tryon_mock::Proxy::start(
        tryon_mock::ProxyOptions::new(upstream.uri()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let mut cmd = parity(&proxy.uri(), &[]);
    cmd.env("SEGMIND_API_KEY", "sk-cli-test");
    let run = output(cmd).await;
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a tryon mock"), "{stderr}");
    assert!(stderr.contains("Pass --live"), "{stderr}");
    assert_eq!(upstream.billed_submits(), 0);
    assert!(
        upstream.request_log().is_empty(),
        "{:?}",
        upstream.request_log()
    );
    // Without a key, a placeholder goes: nothing can be billed.
    let run = output(parity(
        &proxy.uri(),
        &["--interval", "10ms", "--timeout", "20s"],
    ))
    .await;
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stdout));
    assert_eq!(
        upstream.billed_submits(),
        2,
        "the placeholder is a key the mock takes"
    );
}

/// A loopback listener that counts connections without answering.
fn silent_listener() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

fn connections(listener: &std::net::TcpListener) -> usize {
    std::iter::from_fn(|| listener.accept().ok()).count()
}

#[tokio::test]
async fn live_without_yes_and_without_a_terminal_refuses_and_sends_nothing() {
    let (listener, url) = silent_listener();
    let mut cmd = parity(&url, &["--live"]);
    cmd.env("SEGMIND_API_KEY", "sk-live-test-3c1d");
    let run = output(cmd).await;
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no terminal"), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    // The estimate came first: both billed submits, Pruna's figures, the
    // credits caveat.
    for part in [
        "submit, 1 garment    $0.015",
        "submit, 3 garments   $0.031",
        "estimated total      $0.046",
        "Segmind bills in its own credits",
    ] {
        assert!(stderr.contains(part), "{part}: {stderr}");
    }
    assert!(!stderr.contains("sk-live-test-3c1d"), "{stderr}");
    // A live run without a key stops before the estimate too.
    let run = output(parity(&url, &["--live", "--yes"])).await;
    assert_eq!(run.status.code(), Some(3), "{}", text(&run.stderr));
    assert!(text(&run.stderr).contains("SEGMIND_API_KEY is not set"));
    assert_eq!(connections(&listener), 0, "a request was sent");
}

#[tokio::test]
async fn failure_modes_are_report_lines_or_clear_errors() {
    // Nothing listening: a clear error, exit 5.
    let url = {
        let (listener, url) = silent_listener();
        drop(listener);
        url
    };
    let run = output(parity(&url, &[])).await;
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("no step got an answer"), "{stderr}");

    // A job that never finishes (a virtual clock nobody moves): the poll
    // deadline becomes a report line.
    let frozen = tryon_mock::MockServer::builder()
        .virtual_time()
        .start()
        .await;
    let run = output(parity(
        &frozen.uri(),
        &["--timeout", "100ms", "--interval", "20ms"],
    ))
    .await;
    let stdout = text(&run.stdout);
    assert_eq!(run.status.code(), Some(7), "{stdout}");
    assert!(
        stdout.contains(
            "DIFF poll_1 run /: expected an answer, got no final status within --timeout 0.1 s"
        ),
        "{stdout}"
    );

    // Answers that are not JSON: report lines, no panic.
    let html = httpmock::MockServer::start_async().await;
    html.mock_async(|when, then| {
        when.any_request();
        then.status(200)
            .header("content-type", "text/html")
            .body("<html>hello</html>");
    })
    .await;
    let run = output(parity(&html.base_url(), &[])).await;
    let stdout = text(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(7),
        "{stdout}\n{}",
        text(&run.stderr)
    );
    assert!(
        stdout.contains("DIFF submit_1 spec /headers/content-type: expected one of application/json, got text/html"),
        "{stdout}"
    );
    assert!(
        stdout.contains("skipped: the submit was not accepted"),
        "{stdout}"
    );
}
