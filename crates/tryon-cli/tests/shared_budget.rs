//! `--shared-budget`: `tryon batch` processes sharing one budget, on a file
//! and on a `redis-server` of the test's own, against one in-process mock
//! in real time (short jobs, a small bucket; each test takes seconds).
//! Under `CI=true` a test that cannot start `redis-server` fails; outside
//! CI it skips, saying why.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{batch, batch_dir, journal_ids, output, run_to, text};
use tryon_client::test_util::RedisServer;
use tryon_mock::{MockServer, RateLimitRule};

const ROWS: usize = 6;

/// A mock of quick jobs behind a bucket of 20 calls a second (burst 5)
/// on every keyed call.
async fn mock() -> MockServer {
    MockServer::builder()
        .stages(Duration::ZERO, Duration::from_millis(300))
        .rate_limit(RateLimitRule::new(20.0, 5))
        .start()
        .await
}

/// Three batches of `ROWS` rows at once, sharing `url`; the third (at
/// concurrency 1, so that no submit of it is in flight then) is killed
/// (SIGKILL) after its fifth journal record (row 1 submitted), then run
/// again to resume. Every row ends completed and billed once, and few
/// keyed calls were refused.
async fn three_batches_share_a_budget_and_a_killed_one_resumes(url: &str) {
    let server = mock().await;
    let dirs: Vec<_> = (0..3).map(|_| batch_dir(ROWS, None)).collect();
    let flags = ["--rate", "1200/min", "--shared-budget", url];
    let mut runs = Vec::new();
    for (i, (_, manifest, out)) in dirs.iter().enumerate() {
        let concurrency = if i == 2 { "1" } else { "4" };
        let mut cmd = batch(&server, manifest, out, &flags);
        cmd.args(["--concurrency", concurrency]);
        if i == 2 {
            cmd.env("TRYON_CHAOS_KILL_AFTER_JOURNAL_WRITES", "5");
        }
        runs.push(output(cmd));
    }
    let outs = futures::future::join_all(runs).await;
    for (i, o) in outs.iter().enumerate() {
        let expected = if i == 2 { None } else { Some(0) };
        assert_eq!(
            o.status.code(),
            expected,
            "batch {i}: {}\n{}",
            text(&o.stdout),
            text(&o.stderr)
        );
    }
    // The killed one resumes, paying for nothing twice.
    let (_, manifest, out) = &dirs[2];
    let again = output(batch(&server, manifest, out, &flags)).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    for (_, _, out) in &dirs {
        let ids = journal_ids(out);
        assert_eq!(ids.len(), ROWS);
        assert!(
            ids.values().all(|v| v.len() == 1),
            "a row submitted twice: {ids:?}"
        );
    }
    assert_eq!(server.billed_submits(), 3 * ROWS as u64, "billed == rows");
    let log = server.request_log();
    let keyed = log.iter().filter(|e| e.path.starts_with("/v2/")).count();
    let refused = log.iter().filter(|e| e.status == Some(429)).count();
    assert!(
        refused * 50 <= keyed,
        "{refused} of {keyed} keyed calls refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_three_batches_share_a_budget_and_a_killed_one_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file:{}", dir.path().join("budget").display());
    three_batches_share_a_budget_and_a_killed_one_resumes(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_three_batches_share_a_budget_and_a_killed_one_resumes() {
    let Some(redis) =
        RedisServer::start_or_skip("redis_three_batches_share_a_budget_and_a_killed_one_resumes")
    else {
        return;
    };
    three_batches_share_a_budget_and_a_killed_one_resumes(&redis.url()).await;
}

/// A budget that cannot be reached (or a bad URL) stops the command before
/// anything is sent: exit 2, naming the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_shared_budget_is_a_usage_error_naming_it() {
    let server = mock().await;
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let missing: PathBuf = tempfile::tempdir().unwrap().path().join("no/such/budget");
    let (_dir, manifest, out) = batch_dir(2, None);
    for url in [
        format!("redis://127.0.0.1:{free}/0"),
        format!("file:{}", missing.display()),
    ] {
        let o = output(batch(&server, &manifest, &out, &["--shared-budget", &url])).await;
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        let stderr = text(&o.stderr);
        assert!(
            stderr.contains("shared_budget") && stderr.contains(&url),
            "{stderr}"
        );
        // `tryon run` too, and from the environment.
        let mut run = run_to(&server, &out.with_extension("png"));
        run.env("TRYON_SHARED_BUDGET", &url);
        let o = output(run).await;
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains(&url));
    }
    let o = output(batch(
        &server,
        &manifest,
        &out,
        &["--shared-budget", "rediss://h:1/0"],
    ))
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("TLS"), "{}", text(&o.stderr));
    let o = output(batch(
        &server,
        &manifest,
        &out,
        &["--shared-budget", "file:/tmp/b", "--budget-name", "a b"],
    ))
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("budget_name"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(server.billed_submits(), 0, "nothing sent");
}
