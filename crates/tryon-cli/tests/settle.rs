//! Settling with the account's own records (issue 21): lost answers found
//! in the request history, unsent intents proven unbilled, expired jobs
//! recovered from the history's output URL, the balance checked before
//! anything is sent, and the spend cap. Every rerun here is plain: no
//! `--resubmit-ambiguous`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use serde_json::json;
use tryon_mock::{Credits, Fault, MockServer};

/// The journal's records of one kind, as JSON.
fn records(out: &std::path::Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("tryon-journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == kind)
        .collect()
}

/// Every row has one accepted id, all distinct: nothing was paid twice.
fn one_id_a_row(out: &std::path::Path, rows: usize) {
    let ids = journal_ids(out);
    assert_eq!(ids.len(), rows, "{ids:?}");
    let all: HashSet<&String> = ids.values().flatten().collect();
    assert_eq!(all.len(), rows, "{ids:?}");
    assert!(ids.values().all(|v| v.len() == 1), "{ids:?}");
}

/// The first case: a 6-row batch whose first two submits are
/// accepted and their answers cut off. A plain rerun finds both in the
/// account's history and follows them: 6 billed, 6 images.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_are_found_in_the_history_and_followed() {
    let server = MockServer::builder()
        .fault(Fault::drop_after_accept().times(2))
        .start()
        .await;
    let (_dir, manifest, out) = batch_dir(6, None);
    let first = output(batch(&server, &manifest, &out, &[])).await;
    assert_has(&first.stdout, "ambiguous  2");
    assert_eq!(server.billed_submits(), 6);

    let rerun = output(batch(&server, &manifest, &out, &[])).await;
    let (stdout, stderr) = (text(&rerun.stdout), text(&rerun.stderr));
    assert_eq!(rerun.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("completed  6 (2 this run, 4 earlier)"),
        "{stdout}"
    );
    assert_eq!(
        stderr
            .matches("in the account's history: following it")
            .count(),
        2,
        "{stderr}"
    );
    assert_eq!(server.billed_submits(), 6, "nothing paid twice");
    one_id_a_row(&out, 6);
    let found = records(&out, "submitted")
        .into_iter()
        .filter(|e| e["reason"].as_str().is_some_and(|r| r.contains("found")))
        .count();
    assert_eq!(found, 2);
}

/// Two rows with the same body, both answers lost: each history request
/// settles one row, one to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_rows_settle_one_to_one() {
    let server = MockServer::builder()
        .fault(Fault::drop_after_accept().times(2))
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.csv");
    std::fs::write(
        &manifest,
        "id,person,garments,seed\n\
         a,https://example.com/p.jpg,https://example.com/g.jpg,7\n\
         b,https://example.com/p.jpg,https://example.com/g.jpg,7\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let first = output(batch(&server, &manifest, &out, &["--concurrency", "1"])).await;
    assert_has(&first.stdout, "ambiguous  2");
    let rerun = output(batch(&server, &manifest, &out, &[])).await;
    assert_eq!(rerun.status.code(), Some(0), "{}", text(&rerun.stderr));
    assert_eq!(server.billed_submits(), 2);
    one_id_a_row(&out, 2);
}

/// A run killed right after a row's intent is durable sent nothing. The
/// rerun cannot prove that until the history has landed past the run: it
/// stays unknown and says when to rerun. Once the account's history lists
/// a later request, the rerun journals it unbilled, with the proof, and
/// submits it: billed once. A request of the account in the intent's span
/// that differs keeps it unknown, naming what differs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsent_intent_is_proven_unbilled_once_the_history_has_landed() {
    let server = MockServer::builder()
        .virtual_time()
        .stages(Duration::ZERO, Duration::ZERO)
        .start()
        .await;
    let (_dir, manifest, out) = batch_dir(1, None);
    let mut killed = batch(&server, &manifest, &out, &[]);
    killed.env("TRYON_CHAOS_KILL_AFTER_JOURNAL_WRITES", "1");
    let killed = output(killed).await;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&killed.status),
        Some(9)
    );
    assert_eq!(server.billed_submits(), 0);

    // Another client's request on the account, made around the intent,
    // with another seed: not this row's, and no proof either.
    let other = server
        .place_history(json!({
            "key": KEY,
            "request_body": {"person_image": "https://example.com/p0.jpg",
                "garment_images": ["https://example.com/g0.jpg", "https://example.com/h0.jpg"],
                "seed": 4},
        }))
        .unwrap();
    let rerun = output(batch(&server, &manifest, &out, &[])).await;
    let stdout = text(&rerun.stdout);
    assert_eq!(rerun.status.code(), Some(5), "{stdout}");
    assert!(stdout.contains("ambiguous  1"), "{stdout}");
    assert!(stdout.contains(&other[..8]), "{stdout}");
    assert!(stdout.contains("seed: recorded 1000, got 4"), "{stdout}");
    assert_eq!(server.billed_submits(), 0);

    // That request is ours after all (the journal names nothing like it):
    // say it is another account's. Without it, and with nothing later in
    // the history, the row still cannot be proven unbilled.
    server.reset();
    let rerun = output(batch(&server, &manifest, &out, &[])).await;
    let stdout = text(&rerun.stdout);
    assert_eq!(rerun.status.code(), Some(5), "{stdout}");
    assert!(
        stdout.contains("rerun once it lists a request made after"),
        "{stdout}"
    );
    assert_eq!(server.billed_submits(), 0);

    // An hour on, the account's history lists a later request: proof.
    server.advance(Duration::from_hours(1));
    server.place_history(json!({"key": KEY})).unwrap();
    let rerun = output(batch(&server, &manifest, &out, &[])).await;
    let (stdout, stderr) = (text(&rerun.stdout), text(&rerun.stderr));
    assert_eq!(rerun.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("was not billed"), "{stderr}");
    assert_eq!(server.billed_submits(), 1, "sent once");
    let unbilled = records(&out, "unbilled");
    assert_eq!(unbilled.len(), 1);
    assert!(
        unbilled[0]["reason"]
            .as_str()
            .unwrap()
            .contains("lists requests made after"),
        "{unbilled:?}"
    );
    one_id_a_row(&out, 1);
}

/// The second case: a job accepted, its run killed, rerun after
/// the one-hour retention: its output is fetched from the URL its history
/// record names, and nothing is resubmitted. `tryon result` does the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_job_is_recovered_from_its_history_record() {
    let server = queued_mock().await;
    let (dir, sub) = relative_manifest("");
    let id = interrupt_after_submit(&server, &sub).await;
    server.advance(Duration::from_hours(2));
    let mut status = tryon(&server);
    status.args(["status", &id]);
    let status = output(status).await;
    assert!(!status.status.success(), "the status has expired");

    let rerun = output(batch_in(&server, &sub, "m.csv", "out", &[])).await;
    let (stdout, stderr) = (text(&rerun.stdout), text(&rerun.stderr));
    assert_eq!(rerun.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("from the account's history"), "{stderr}");
    assert_eq!(server.billed_submits(), 1);
    let image = std::fs::read(sub.join("out/r1.png")).unwrap();
    assert!(image.starts_with(b"\x89PNG"));

    let saved = dir.path().join("again.png");
    let mut result = tryon(&server);
    result.args(["result", &id, "-o"]).arg(&saved);
    let result = output(result).await;
    assert!(result.status.success(), "{}", text(&result.stderr));
    assert_eq!(std::fs::read(&saved).unwrap(), image);
    assert_eq!(server.billed_submits(), 1);
}

/// The third case: an estimate above the balance is refused before
/// anything is sent, naming both figures; `--ignore-balance` sends anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balance_below_the_estimate_is_refused_before_sending() {
    let server = MockServer::builder()
        .credits(Credits::with_balance(0.03))
        .start()
        .await;
    let (_dir, manifest, out) = batch_dir(3, None);
    let refused = output(batch(&server, &manifest, &out, &[])).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("$0.0300"), "{stderr}");
    assert!(stderr.contains("$0.0690"), "{stderr}");
    assert!(stderr.contains("--ignore-balance"), "{stderr}");
    assert_eq!(server.billed_submits(), 0);

    let anyway = output(batch(&server, &manifest, &out, &["--ignore-balance"])).await;
    assert_eq!(server.billed_submits(), 1, "{}", text(&anyway.stdout));
}

/// `--max-spend` never sends a job that would take the run past it; the
/// summary shows what was spent by the account's history beside the
/// estimate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spend_cap_stops_sending_and_the_summary_shows_spend() {
    let server = MockServer::start().await;
    let (_dir, manifest, out) = batch_dir(3, None);
    let capped = output(batch(
        &server,
        &manifest,
        &out,
        &["--max-spend", "0.05", "--concurrency", "1"],
    ))
    .await;
    let stdout = text(&capped.stdout);
    assert_eq!(server.billed_submits(), 2, "{stdout}");
    assert!(stdout.contains("spend cap"), "{stdout}");
    assert!(
        stdout.contains("spent: $0.0460 by the account's history for 2 of 2 jobs this run"),
        "{stdout}"
    );
    assert_ne!(capped.status.code(), Some(0));
}

/// A slow landing: the lost answer's record is not in the history yet, so
/// the rerun neither follows nor resubmits it; once it has landed, a plain
/// rerun finds it. Billed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_landing_leaves_the_row_unknown_until_it_lands() {
    let server = MockServer::builder()
        .virtual_time()
        .stages(Duration::ZERO, Duration::ZERO)
        .history_landing(Duration::from_mins(1), false)
        .fault(Fault::drop_after_accept())
        .start()
        .await;
    let (_dir, manifest, out) = batch_dir(1, None);
    let first = output(batch(&server, &manifest, &out, &[])).await;
    assert_has(&first.stdout, "ambiguous  1");
    let early = output(batch(&server, &manifest, &out, &[])).await;
    let stdout = text(&early.stdout);
    assert!(stdout.contains("ambiguous  1"), "{stdout}");
    assert!(
        stdout.contains("not in the account's history yet"),
        "{stdout}"
    );
    assert_eq!(server.billed_submits(), 1);

    server.advance(Duration::from_mins(1));
    let landed = output(batch(&server, &manifest, &out, &[])).await;
    assert_eq!(landed.status.code(), Some(0), "{}", text(&landed.stdout));
    assert_eq!(server.billed_submits(), 1);
    one_id_a_row(&out, 1);
}

/// The history's own faults (a 503, a 429 with `Retry-After`) are retried
/// by the client's one executor; a history that cannot be read at all
/// leaves the row unknown, never resubmitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_historys_faults_never_bill_twice() {
    use tryon_mock::FaultRoute;
    let server = MockServer::builder()
        .fault(Fault::drop_after_accept())
        .start()
        .await;
    let (_dir, manifest, out) = batch_dir(2, None);
    let first = output(batch(&server, &manifest, &out, &["--concurrency", "1"])).await;
    assert_has(&first.stdout, "ambiguous  1");

    // Unreadable: every history call answers 500.
    let mut unreadable = Fault::server_error(FaultRoute::History, 500);
    unreadable.times = None;
    server.push_fault(unreadable);
    let rerun = output(batch(&server, &manifest, &out, &[])).await;
    let stdout = text(&rerun.stdout);
    assert!(stdout.contains("ambiguous  1"), "{stdout}");
    assert!(
        stdout.contains("rerun later, or --resubmit-ambiguous"),
        "{stdout}"
    );
    assert_eq!(server.billed_submits(), 2);

    // Passing trouble: a 503, then a 429 asking for a second's wait.
    server.clear_faults();
    server.push_fault(Fault::server_error(FaultRoute::History, 503));
    server.push_fault(
        Fault::rate_limited(FaultRoute::History).retry_after(tryon_mock::RetryAfter::Seconds(1)),
    );
    let rerun = output(batch(&server, &manifest, &out, &[])).await;
    assert_eq!(rerun.status.code(), Some(0), "{}", text(&rerun.stdout));
    assert_eq!(server.billed_submits(), 2);
    one_id_a_row(&out, 2);
}

/// The cap counts each job at its estimate until the account's history
/// says what it cost: here the service charges a third of the estimate,
/// so once the estimates reach the cap the history is read and the rest
/// fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spend_cap_counts_what_the_history_charged() {
    let server = MockServer::builder()
        .credits(Credits::with_balance(1.0).cost_per_garment(0.005))
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.csv");
    let mut csv = String::from("id,person,garments,seed\n");
    for i in 0..4 {
        use std::fmt::Write as _;
        writeln!(
            csv,
            "r{i},https://example.com/p.jpg,https://example.com/g.jpg,{i}"
        )
        .unwrap();
    }
    std::fs::write(&manifest, csv).unwrap();
    let out = dir.path().join("out");
    let run = output(batch(
        &server,
        &manifest,
        &out,
        &["--max-spend", "0.04", "--concurrency", "1"],
    ))
    .await;
    let stdout = text(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{stdout}");
    assert_eq!(server.billed_submits(), 4, "{stdout}");
    assert!(
        stdout.contains(
            "spent: $0.0200 by the account's history for 4 of 4 jobs this run (estimate $0.0600"
        ),
        "{stdout}"
    );
}
