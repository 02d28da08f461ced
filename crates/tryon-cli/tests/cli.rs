//! End-to-end tests of the `tryon` binary against an in-process `tryon-mock`
//! on loopback. The mock runs on this test's runtime while the binary runs
//! in a blocking task.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt as _;
use common::{
    KEY, assert_has, assert_rerun_sends_nothing, assets, batch, batch_dir, journal_ids, output,
    run_to, text, tryon, write_manifest,
};
use tryon_mock::{FailRule, JobMatch, MockServer, RateLimitRule, Stages, Timing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_writes_a_real_image_and_prints_path_size_and_id() {
    let (server, dir) = common::mock_and_dir().await;
    let out = dir.path().join("out.png");
    let mut cmd = tryon(&server);
    cmd.args(["run", "--person"])
        .arg(assets().join("person.png"))
        .arg("--garment")
        .arg(assets().join("garment.png"))
        .args(["--seed", "7", "-o"])
        .arg(&out);
    let result = output(cmd).await;
    let stdout = text(&result.stdout);
    assert!(
        result.status.success(),
        "{stdout}\n{}",
        text(&result.stderr)
    );
    let image = image::open(&out).expect("a decodable image was written");
    assert!(image.width() > 0);
    assert!(stdout.contains(&out.display().to_string()), "{stdout}");
    assert!(stdout.contains("KiB") || stdout.contains(" B"), "{stdout}");
    let billed_id = server
        .request_log()
        .into_iter()
        .find(|e| e.method == "POST")
        .unwrap();
    assert_eq!(billed_id.status, Some(200));
    assert_eq!(server.billed_submits_for(KEY), 1);
    assert!(stdout.contains("request_id "), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_json_output_is_machine_readable() {
    let (server, dir) = common::mock_and_dir().await;
    let out = dir.path().join("out.webp");
    let mut cmd = run_to(&server, &out);
    cmd.args(["--json", "--format", "webp"]);
    let result = output(cmd).await;
    assert!(result.status.success(), "{}", text(&result.stderr));
    let json: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(json["status"], "COMPLETED");
    assert_eq!(
        json["bytes"].as_u64(),
        Some(std::fs::metadata(&out).unwrap().len())
    );
    assert!(json["request_id"].as_str().is_some_and(|s| s.len() == 36));
    assert_eq!(&std::fs::read(&out).unwrap()[8..12], b"WEBP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_then_status_wait_and_result_reattach() {
    let server = MockServer::start().await;
    let mut cmd = tryon(&server);
    cmd.args([
        "submit",
        "--person",
        "https://example.com/p.jpg",
        "--garment",
        "https://example.com/g.jpg",
    ]);
    let submitted = output(cmd).await;
    assert!(submitted.status.success(), "{}", text(&submitted.stderr));
    let id = text(&submitted.stdout).trim().to_string();
    assert_eq!(id.len(), 36, "the request id alone on stdout: {id:?}");

    let mut cmd = tryon(&server);
    cmd.args(["--json", "status", &id]);
    let status = output(cmd).await;
    assert!(status.status.success());
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["request_id"], id.as_str());
    assert!(["QUEUED", "PROCESSING", "COMPLETED"].contains(&json["status"].as_str().unwrap()));

    let mut cmd = tryon(&server);
    cmd.args(["wait", &id]);
    let waited = output(cmd).await;
    assert!(waited.status.success(), "{}", text(&waited.stderr));
    assert!(
        text(&waited.stdout).starts_with(&server.uri()),
        "output URL on the mock"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.png");
    let mut cmd = tryon(&server);
    cmd.args(["result", &id, "-o"]).arg(&file);
    let result = output(cmd).await;
    assert!(result.status.success(), "{}", text(&result.stderr));
    image::open(&file).expect("decodable");
    assert_eq!(server.billed_submits(), 1, "re-attaching never submits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_job_exits_1_with_the_reason() {
    let server = MockServer::builder()
        .fail(FailRule::new(JobMatch::Seed(13), "garment not detected"))
        .start()
        .await;
    // A real file path: `-o /dev/null` is refused before sending (saving
    // renames a file over the target, which must not replace a device).
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_to(&server, &dir.path().join("out.png"));
    cmd.args(["--seed", "13"]);
    let result = output(cmd).await;
    assert_eq!(result.status.code(), Some(1));
    assert_has(&result.stderr, "garment not detected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_key_exits_3_and_says_how_to_fix_it() {
    let mut cmd = Command::cargo_bin("tryon").unwrap();
    cmd.env_remove("SEGMIND_API_KEY")
        .args(common::RUN_FROM_URLS)
        .args(["-o", "x.png"]);
    let result = output(cmd).await;
    assert_eq!(result.status.code(), Some(3));
    let stderr = text(&result.stderr);
    assert!(stderr.contains("SEGMIND_API_KEY is not set"), "{stderr}");
    assert!(stderr.contains("export SEGMIND_API_KEY="), "{stderr}");
    assert!(stderr.contains("--mock"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_exit_2_naming_the_field() {
    let server = MockServer::start().await;
    let twelve: Vec<String> = (0..12)
        .flat_map(|i| {
            [
                "--garment".to_string(),
                format!("https://example.com/{i}.jpg"),
            ]
        })
        .collect();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            [
                "run",
                "--person",
                "https://example.com/p.jpg",
                "--garment",
                "https://example.com/g.jpg",
                "--quality",
                "101",
                "-o",
                "x.png",
            ]
            .map(String::from)
            .to_vec(),
            "output_quality",
        ),
        (
            ["run", "--person", "https://example.com/p.jpg"]
                .map(String::from)
                .into_iter()
                .chain(twelve)
                .chain(["-o".into(), "x.png".into()])
                .collect(),
            "garment_images: 12 given, at most 11 allowed",
        ),
        (
            ["run", "--person", "p.png", "-o", "x.png"]
                .map(String::from)
                .to_vec(),
            "--garment",
        ),
        (
            [
                "run",
                "--person",
                "/nonexistent/person.png",
                "--garment",
                "https://example.com/g.jpg",
                "-o",
                "x.png",
            ]
            .map(String::from)
            .to_vec(),
            "/nonexistent/person.png",
        ),
        (
            [
                "run",
                "--person",
                "ftp://example.com/p.jpg",
                "--garment",
                "https://example.com/g.jpg",
                "-o",
                "x.png",
            ]
            .map(String::from)
            .to_vec(),
            "person_image",
        ),
    ];
    for (args, needle) in cases {
        let mut cmd = tryon(&server);
        cmd.args(&args);
        let result = output(cmd).await;
        let stderr = text(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?} should name {needle:?}: {stderr}"
        );
    }
    assert_eq!(server.billed_submits(), 0, "nothing invalid was sent");
    assert!(
        server.request_log().is_empty(),
        "no request reached the server"
    );
}

/// Request ids the mock accepted (200 submits), from its journal.
fn accepted_ids(server: &MockServer) -> BTreeSet<String> {
    server
        .request_log()
        .into_iter()
        .filter(|e| e.method == "POST" && e.path == "/v2/p-image-try-on" && e.status == Some(200))
        .map(|e| {
            let body: serde_json::Value =
                serde_json::from_slice(e.body.as_deref().expect("bodies recorded"))
                    .expect("a JSON submit answer");
            body["request_id"]
                .as_str()
                .expect("a request_id")
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_with_a_failed_row_and_a_429_storm() {
    let server = MockServer::builder()
        .fail(FailRule::new(JobMatch::Seed(13), "no person found"))
        .rate_limit(RateLimitRule::new(8.0, 3))
        .record_bodies(true)
        .start()
        .await;
    let (_dir, manifest, out_dir) = batch_dir(12, Some(4));
    let result = output(batch(
        &server,
        &manifest,
        &out_dir,
        &["--concurrency", "12"],
    ))
    .await;
    let stdout = text(&result.stdout);
    assert_eq!(
        result.status.code(),
        Some(1),
        "a failed row exits 1\n{stdout}\n{}",
        text(&result.stderr)
    );
    assert!(stdout.contains("completed  11"), "{stdout}");
    assert!(stdout.contains("failed     1"), "{stdout}");
    assert!(
        stdout.contains("look-4") && stdout.contains("no person found"),
        "{stdout}"
    );
    let throttled = server
        .request_log()
        .iter()
        .filter(|e| e.status == Some(429))
        .count();
    assert!(throttled > 0, "the storm happened");
    assert_eq!(
        server.billed_submits(),
        12,
        "every row billed once despite 429s"
    );
    let journal = journal_ids(&out_dir);
    assert_eq!(journal.len(), 12);
    assert!(journal.values().all(|ids| ids.len() == 1));
    for i in (0..12).filter(|i| *i != 4) {
        image::open(out_dir.join(format!("look-{i}.png"))).expect("output decodes");
    }

    // A rerun sends nothing: finished rows are skipped, the failed one too.
    assert_rerun_sends_nothing(&server, &manifest, &out_dir, 1, 11, 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_killed_mid_run_resumes_and_bills_each_row_once() {
    // Virtual time: accepted jobs stay QUEUED until the test advances the
    // clock, so the run is reliably mid-flight when it is killed.
    let server = MockServer::builder()
        .virtual_time()
        .stages(Duration::from_secs(1), Duration::from_secs(2))
        .record_bodies(true)
        .start()
        .await;
    let (_dir, manifest, out_dir) = batch_dir(12, None);

    let mut cmd = batch(&server, &manifest, &out_dir, &["--concurrency", "4"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let submitted = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut seen = 0;
        // Each "submitted" line is printed after its id is in the journal.
        for line in BufReader::new(stderr).lines() {
            if line.unwrap().contains(": submitted ") {
                seen += 1;
                if seen == 4 {
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        seen
    })
    .await
    .unwrap();
    assert_eq!(submitted, 4);
    assert_eq!(
        server.billed_submits(),
        4,
        "four jobs in flight when killed"
    );

    // The four accepted jobs finish while the CLI is down; new ones finish
    // at once.
    server.advance(Duration::from_secs(10));
    server.set_timing(Timing::Fixed(Stages::new(Duration::ZERO, Duration::ZERO)));

    let resumed = output(batch(
        &server,
        &manifest,
        &out_dir,
        &["--concurrency", "12"],
    ))
    .await;
    let stdout = text(&resumed.stdout);
    let stderr = text(&resumed.stderr);
    assert!(resumed.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("completed  12"), "{stdout}");
    assert_eq!(stderr.matches("re-attaching to").count(), 4, "{stderr}");
    assert_eq!(stderr.matches(": submitted ").count(), 8, "{stderr}");

    // The mock's journal proves it: 12 accepted jobs, each the one job of
    // exactly one row.
    assert_eq!(server.billed_submits(), 12);
    let accepted = accepted_ids(&server);
    let journal = journal_ids(&out_dir);
    assert_eq!(journal.len(), 12);
    assert!(journal.values().all(|ids| ids.len() == 1), "{journal:?}");
    let recorded: BTreeSet<String> = journal.into_values().flatten().collect();
    assert_eq!(accepted, recorded);
    for i in 0..12 {
        image::open(out_dir.join(format!("look-{i}.png"))).expect("output decodes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_dry_run_validates_and_estimates_without_sending() {
    let (server, dir) = common::mock_and_dir().await;
    let manifest = write_manifest(dir.path(), 3, None);
    let result = output(batch(
        &server,
        &manifest,
        &dir.path().join("out"),
        &["--dry-run"],
    ))
    .await;
    let stdout = text(&result.stdout);
    assert!(result.status.success(), "{}", text(&result.stderr));
    assert!(
        stdout.contains("jobs to submit: 3  garments: 6"),
        "{stdout}"
    );
    // 3 jobs x (0.015 + 0.008) = 0.069
    assert!(stdout.contains("estimated cost: $0.069"), "{stdout}");
    assert!(stdout.contains("estimate"), "{stdout}");
    assert!(server.request_log().is_empty());
    assert!(!dir.path().join("out").exists(), "a dry run writes nothing");

    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "person,garments,quality\nhttps://e.com/p.jpg,https://e.com/g.jpg,101\n",
    )
    .unwrap();
    let mut cmd = tryon(&server);
    cmd.args(["batch", "--dry-run"]).arg(&bad);
    let result = output(cmd).await;
    assert_eq!(result.status.code(), Some(2));
    assert_has(&result.stderr, "row 1");
}
