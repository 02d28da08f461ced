//! End-to-end tests of the batch journal under crashes and damage: the
//! binary is killed after its N-th journal record, its journal is damaged
//! mid-file, lost, or cannot be written; the mock's billing proves no row
//! was paid for twice and no paid result was lost.

mod common;

use std::os::unix::process::ExitStatusExt as _;
use std::time::Duration;

use common::{
    assert_has, batch, batch_dir, batch_in, journal_ids, output, relative_manifest, text, tryon,
};
use tryon_mock::{MockServer, Stages, Timing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_each_journal_write_never_bills_a_row_twice() {
    // Concurrency 1: each row writes its intent, its accepted id and its
    // completion (records 3k+1, 3k+2, 3k+3); the kill lands right after
    // record N is durable, so N = 1 and 4 leave an intent with no id.
    // The six scenarios run side by side (each with its own mock): they
    // spend their time waiting on polls.
    futures::future::join_all((1..=6_u64).map(killed_after)).await;
}

/// One scenario: kill after record `kill_after`, rerun, rerun asking.
#[allow(clippy::unwrap_used)] // a test helper: a panic fails the test
async fn killed_after(kill_after: u64) {
    // Jobs finish as soon as they are polled.
    let server = MockServer::builder()
        .stages(Duration::ZERO, Duration::ZERO)
        .start()
        .await;
    let (_dir, manifest, out_dir) = batch_dir(3, None);
    let mut cmd = batch(&server, &manifest, &out_dir, &["--concurrency", "1"]);
    cmd.env(
        "TRYON_CHAOS_KILL_AFTER_JOURNAL_WRITES",
        kill_after.to_string(),
    )
    .env("TRYON_CHAOS_TRACE", "1");
    let killed = output(cmd).await;
    let stderr = text(&killed.stderr);
    assert_eq!(killed.status.signal(), Some(9), "N={kill_after}: {stderr}");
    assert!(
        stderr.contains(&format!("journal-write {kill_after}\n")),
        "{stderr}"
    );
    assert!(!stderr.contains(&format!("journal-write {}", kill_after + 1)));
    assert_eq!(
        server.billed_submits(),
        kill_after.div_ceil(3) - u64::from(kill_after % 3 == 1)
    );

    // A plain rerun finishes every row whose fate the journal proves,
    // and never pays again for one it cannot.
    let rerun = output(batch(&server, &manifest, &out_dir, &[])).await;
    let ids = journal_ids(&out_dir);
    assert!(
        ids.values().all(|ids| ids.len() == 1),
        "N={kill_after}: {ids:?}"
    );
    assert_eq!(
        server.billed_submits(),
        3 - u64::from(kill_after % 3 == 1),
        "N={kill_after}: {}",
        text(&rerun.stdout)
    );
    // A killed intent leaves its row ambiguous until asked.
    let asked = output(batch(
        &server,
        &manifest,
        &out_dir,
        &["--resubmit-ambiguous"],
    ))
    .await;
    assert!(asked.status.success(), "{}", text(&asked.stdout));
    assert_eq!(server.billed_submits(), 3, "N={kill_after}: each row once");
    for i in 0..3 {
        image::open(out_dir.join(format!("look-{i}.png"))).expect("output saved");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_damaged_mid_file_refuses_to_run_until_repaired() {
    let server = MockServer::start().await;
    let (_dir, manifest, out_dir) = batch_dir(4, None);
    let first = output(batch(&server, &manifest, &out_dir, &[])).await;
    assert!(first.status.success(), "{}", text(&first.stderr));
    let journal = out_dir.join("tryon-journal.jsonl");
    let text_before = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<&str> = text_before.lines().collect();
    let cut = &lines[2][..lines[2].len() / 2];
    lines[2] = cut;
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();

    let refused = output(batch(&server, &manifest, &out_dir, &[])).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tryon-journal.jsonl line 3"), "{stderr}");
    assert!(stderr.contains("--journal-repair"), "{stderr}");
    assert_eq!(server.billed_submits(), 4, "nothing sent");

    let repaired = output(batch(&server, &manifest, &out_dir, &["--journal-repair"])).await;
    let stderr = text(&repaired.stderr);
    assert!(
        repaired.status.success(),
        "{stderr}\n{}",
        text(&repaired.stdout)
    );
    assert!(stderr.contains("repaired: kept"), "{stderr}");
    assert_eq!(server.billed_submits(), 4, "no row paid for again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_without_a_journal_are_not_paid_for_again_unless_asked() {
    let server = MockServer::start().await;
    let (_dir, manifest, out_dir) = batch_dir(3, None);
    let first = output(batch(&server, &manifest, &out_dir, &[])).await;
    assert!(first.status.success());
    std::fs::remove_file(out_dir.join("tryon-journal.jsonl")).unwrap();

    let rerun = output(batch(&server, &manifest, &out_dir, &[])).await;
    let stdout = text(&rerun.stdout);
    assert!(rerun.status.success(), "{stdout}");
    assert!(stdout.contains("skipped    3"), "{stdout}");
    assert!(stdout.contains("--overwrite"), "{stdout}");
    assert_eq!(server.billed_submits(), 3);

    let forced = output(batch(&server, &manifest, &out_dir, &["--overwrite"])).await;
    assert!(forced.status.success());
    assert_eq!(server.billed_submits(), 6, "--overwrite asks for it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_submitting_and_names_every_paid_job() {
    let server = MockServer::start().await;
    let (_dir, manifest, out_dir) = batch_dir(8, None);
    std::fs::create_dir(&out_dir).unwrap();
    // RLIMIT_FSIZE of 1 KiB stands in for a full disk: writes past it fail
    // with EFBIG (SIGXFSZ is ignored, as a shell's `trap` leaves it across
    // `exec`). The journal fills after a few records; every image is
    // bigger than that.
    let program = assert_cmd::cargo::cargo_bin("tryon");
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("trap '' XFSZ; ulimit -f 2; exec \"$0\" \"$@\"")
        .arg(program)
        .args(tryon(&server).get_args())
        .args(["batch", "--concurrency", "2", "--out-dir"])
        .arg(&out_dir)
        .arg(&manifest)
        .env("SEGMIND_API_KEY", common::KEY);
    let full = output(cmd).await;
    let stderr = text(&full.stderr);
    assert_eq!(
        full.status.code(),
        Some(6),
        "{stderr}\n{}",
        text(&full.stdout)
    );
    let billed = server.billed_submits();
    assert!(billed < 8, "submitting stopped: {billed}");
    // Every paid job is either in the journal or printed with its recovery.
    let journal = journal_ids(&out_dir);
    let recorded: usize = journal.values().map(Vec::len).sum();
    let printed = stderr.matches("fetch it with: tryon ").count();
    assert!(
        recorded as u64 + printed as u64 >= billed,
        "billed {billed}, recorded {recorded}, printed {printed}: {stderr}"
    );
    assert!(stderr.contains("but not saved"), "{stderr}");

    // With room again, a rerun never pays twice for a row.
    let rerun = output(batch(&server, &manifest, &out_dir, &[])).await;
    let ids = journal_ids(&out_dir);
    assert!(ids.values().all(|ids| ids.len() == 1), "{ids:?}");
    assert!(server.billed_submits() <= 8, "{}", text(&rerun.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_truncated_mid_file_bills_nothing_again() {
    let server = MockServer::start().await;
    let (_dir, manifest, out_dir) = batch_dir(6, None);
    let first = output(batch(&server, &manifest, &out_dir, &[])).await;
    assert!(first.status.success());
    let journal = out_dir.join("tryon-journal.jsonl");
    let bytes = std::fs::read(&journal).unwrap();
    std::fs::write(&journal, &bytes[..bytes.len() / 2]).unwrap();

    let rerun = output(batch(&server, &manifest, &out_dir, &[])).await;
    let stdout = text(&rerun.stdout);
    let stderr = text(&rerun.stderr);
    assert!(rerun.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("cut off a last record"), "{stderr}");
    assert_eq!(
        server.billed_submits(),
        6,
        "no row paid for again: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_id_the_journal_cannot_record_is_printed_with_its_recovery() {
    let server = MockServer::start().await;
    let (dir, manifest, out_dir) = batch_dir(3, None);
    std::fs::create_dir(&out_dir).unwrap();
    // The journal is filled so that, under a 4096-byte file size limit,
    // the first row's intent fits exactly and its accepted id does not.
    // The intent's size is read from a run killed right after writing it
    // (nothing is sent before the intent is durable).
    let scratch = dir.path().join("scratch");
    let mut probe = batch(&server, &manifest, &scratch, &["--concurrency", "1"]);
    probe.env("TRYON_CHAOS_KILL_AFTER_JOURNAL_WRITES", "1");
    assert_eq!(output(probe).await.status.signal(), Some(9));
    let probed = std::fs::read_to_string(scratch.join("tryon-journal.jsonl")).unwrap();
    // The run's own `started` record, then the intent.
    let started = probed.lines().next().unwrap().to_string();
    assert!(started.contains(r#""event":"started""#), "{started}");
    let intent = probed.lines().nth(1).unwrap().to_string();
    assert!(
        intent.contains(r#""event":"submitting","row":"look-0""#),
        "{intent}"
    );
    assert_eq!(server.billed_submits(), 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let room = 4096 - (started.len() + 1) - (intent.len() + 1);
    let filler_head =
        r#"{"event":"failed","row":"not-in-this-manifest","fingerprint":"f","reason":""#;
    let filler_tail = format!(r#"","at":{now}}}"#);
    let pad = room - filler_head.len() - filler_tail.len() - 1;
    std::fs::write(
        out_dir.join("tryon-journal.jsonl"),
        format!("{filler_head}{}{filler_tail}\n", "x".repeat(pad)),
    )
    .unwrap();
    let run = batch(&server, &manifest, &out_dir, &["--concurrency", "1"]);
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("trap '' XFSZ; ulimit -f 8; exec \"$0\" \"$@\"")
        .arg(run.get_program())
        .args(run.get_args())
        .env("SEGMIND_API_KEY", common::KEY);
    let full = output(cmd).await;
    let stderr = text(&full.stderr);
    let stdout = text(&full.stdout);
    assert_eq!(full.status.code(), Some(6), "{stderr}\n{stdout}");
    assert_eq!(server.billed_submits(), 1, "submitting stopped at once");
    assert!(stderr.contains("cannot write the journal"), "{stderr}");
    let (words, printed) = common::printed_command(&stderr, "fetch it with: ");
    // It names the server this batch ran against, not the default one.
    let uri = server.uri();
    assert_eq!(
        words[1..4],
        ["--base-url", uri.as_str(), "wait"],
        "{words:?}"
    );
    let look0 = out_dir.join("look-0.png");
    assert_eq!(words[5..], ["-o", &*look0.to_string_lossy()], "{words:?}");
    assert!(stdout.contains("not sent   2"), "{stdout}");

    // The printed command, run as printed, gets the paid image; a rerun
    // does not pay for that row again (its intent is on disk: it is
    // ambiguous).
    let fetched = output(printed).await;
    assert!(fetched.status.success(), "{}", text(&fetched.stderr));
    assert!(look0.is_file());
    let rerun = output(batch(&server, &manifest, &out_dir, &[])).await;
    assert!(rerun.status.success(), "{}", text(&rerun.stdout));
    assert_eq!(server.billed_submits(), 3, "{}", text(&rerun.stdout));
}

/// The one file in `dir` whose name holds `~previous-`.
fn previous_image(dir: &std::path::Path) -> std::path::PathBuf {
    let kept: Vec<_> = std::fs::read_dir(dir)
        .expect("the output folder")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.to_string_lossy().contains("~previous-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    kept[0].clone()
}

/// Issue 18, item 4: a row edited while its paid job is queued keeps that
/// job: its image is fetched (no charge) under a name that cannot be taken
/// for the new one, the run says what changed, and the row is resubmitted
/// only with --resubmit-changed. (Before the fix the rerun paid for a new
/// job and never named the old one again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_pending_row_keeps_its_paid_job() {
    let server = common::queued_mock().await;
    let (_dir, sub) = relative_manifest("seed=1");
    let paid = common::interrupt_after_submit(&server, &sub).await;
    std::fs::write(
        sub.join("m.csv"),
        "id,person,garments,seed\nr1,person.png,person.png,2\n",
    )
    .unwrap();
    server.advance(Duration::from_secs(10));

    let dry = output(batch_in(&server, &sub, "m.csv", "out", &["--dry-run"])).await;
    assert_has(&dry.stdout, "jobs to submit: 0");
    assert_has(
        &dry.stdout,
        "1 not resubmitted (--resubmit-changed sends them)",
    );
    let rerun = output(batch_in(&server, &sub, "m.csv", "out", &[])).await;
    let (stdout, stderr) = (text(&rerun.stdout), text(&rerun.stderr));
    assert_eq!(rerun.status.code(), Some(2), "{stdout}\n{stderr}");
    assert_eq!(server.billed_submits(), 1, "nothing new billed: {stdout}");
    let kept = previous_image(&sub.join("out"));
    assert_eq!(
        kept.file_name().unwrap().to_string_lossy(),
        format!("r1~previous-{}.png", &paid[..8])
    );
    image::open(&kept).expect("the paid image, kept");
    assert!(
        !sub.join("out/r1.png").exists(),
        "not taken for the new row's"
    );
    for needed in [
        format!("changed since its job {paid}"),
        "garments[0]: garment.png (sha256 ".to_string(),
        "-> person.png (sha256 ".to_string(),
        "seed: 1 -> 2".to_string(),
        "--resubmit-changed".to_string(),
    ] {
        assert!(stdout.contains(&needed), "{needed}: {stdout}");
    }

    server.set_timing(Timing::Fixed(Stages::new(Duration::ZERO, Duration::ZERO)));
    let asked = output(batch_in(
        &server,
        &sub,
        "m.csv",
        "out",
        &["--resubmit-changed"],
    ))
    .await;
    assert!(asked.status.success(), "{}", text(&asked.stdout));
    assert_eq!(server.billed_submits(), 2, "asked for: the new inputs once");
    image::open(sub.join("out/r1.png")).expect("the new image");
    image::open(&kept).expect("the earlier one is still there");
}

/// Issue 18, item 4: an edited completed row is told for what it is: the
/// journal knows the image's inputs and says what changed; resubmitting
/// it (asked) keeps the earlier image under its previous name. (Before the
/// fix: "out/r1.png exists but the journal does not know it".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_completed_row_says_what_changed_and_keeps_its_image() {
    let server = MockServer::start().await;
    let (dir, manifest, out_dir) = batch_dir(1, None);
    assert!(
        output(batch(&server, &manifest, &out_dir, &[]))
            .await
            .status
            .success()
    );
    let earlier = std::fs::read(out_dir.join("look-0.png")).unwrap();
    let edited = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace(",1000\n", ",7\n");
    std::fs::write(&manifest, edited).unwrap();

    let rerun = output(batch(&server, &manifest, &out_dir, &[])).await;
    let (stdout, stderr) = (text(&rerun.stdout), text(&rerun.stderr));
    assert_eq!(rerun.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(!stdout.contains("does not know it"), "{stdout}");
    assert!(
        stdout.contains("look-0.png is the image of this row's earlier inputs"),
        "{stdout}"
    );
    assert!(stdout.contains("the journal knows them"), "{stdout}");
    assert!(stdout.contains("seed: 1000 -> 7"), "{stdout}");
    assert_eq!(server.billed_submits(), 1);

    let asked = output(batch(&server, &manifest, &out_dir, &["--resubmit-changed"])).await;
    assert!(asked.status.success(), "{}", text(&asked.stdout));
    assert_eq!(server.billed_submits(), 2);
    let kept = previous_image(&out_dir);
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        earlier,
        "the earlier image, moved"
    );
    assert_ne!(std::fs::read(out_dir.join("look-0.png")).unwrap(), earlier);
    // A third run has nothing left to do.
    let again = output(batch(&server, &manifest, &out_dir, &[])).await;
    assert!(again.status.success(), "{}", text(&again.stdout));
    assert_has(&again.stdout, "completed  1 (0 this run, 1 earlier)");
    assert_eq!(server.billed_submits(), 2);
    drop(dir);
}

/// A journal written by tryon before fingerprints hashed the inputs (at
/// e685f7e, run as `batch m.csv` from the manifest's folder) is still
/// honoured, from that folder and from its parent: its completed row is
/// not paid for again. The fingerprint is the one that build wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_written_before_canonical_fingerprints_still_matches() {
    let server = MockServer::start().await;
    let (dir, sub) = relative_manifest("");
    let out = sub.join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::copy(common::assets().join("person.png"), out.join("r1.png")).unwrap();
    let record = |event: &str, extra: &str| {
        format!(
            r#"{{"event":"{event}","row":"r1","fingerprint":"8cb9ead09b45bf0c"{extra},"at":1796346744}}"#
        )
    };
    let journal = [
        record("submitting", ""),
        record("submitted", r#","request_id":"old-job""#),
        record(
            "completed",
            r#","request_id":"old-job","output":"out/r1.png","bytes":791555"#,
        ),
    ]
    .join("\n");
    std::fs::write(out.join("tryon-journal.jsonl"), journal + "\n").unwrap();
    for (cwd, manifest, out_dir) in [
        (sub.as_path(), "m.csv", "out"),
        (dir.path(), "sub/m.csv", "sub/out"),
    ] {
        let run = output(batch_in(&server, cwd, manifest, out_dir, &[])).await;
        let stdout = text(&run.stdout);
        assert!(
            run.status.success(),
            "{manifest}: {stdout}\n{}",
            text(&run.stderr)
        );
        assert!(
            stdout.contains("completed  1 (0 this run, 1 earlier)"),
            "{manifest}: {stdout}"
        );
    }
    assert_eq!(server.billed_submits(), 0);
}
