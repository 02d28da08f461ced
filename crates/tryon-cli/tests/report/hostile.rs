//! `tryon report DIR` on folders a person (or an attacker) has changed:
//! outputs swapped for a FIFO or a link to `/dev/zero` (a PNG bomb: the
//! thumbnailer's unit tests), a
//! damaged or missing journal, no record of the manifest. Each ends, fast,
//! with a placeholder saying why or an error naming the problem.

use std::fmt::Write as _;
use std::path::Path;

use super::common::{assets, batch, output, text};
use super::tryon_report as report;
use tryon_mock::MockServer;

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_outputs_get_a_placeholder_with_the_reason_and_never_hang() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let person = assets().join("person.png");
    let garment = assets().join("garment.png");
    let mut csv = String::from("id,person,garments\n");
    for id in ["fifo", "zero", "fine"] {
        writeln!(csv, "{id},{},{}", person.display(), garment.display()).unwrap();
    }
    let manifest = dir.path().join("m.csv");
    std::fs::write(&manifest, csv).unwrap();
    let out_dir = dir.path().join("out");
    let run = output(batch(&server, &manifest, &out_dir, &[])).await;
    assert!(run.status.success(), "{}", text(&run.stdout));
    drop(server);

    for name in ["fifo.png", "zero.png"] {
        std::fs::remove_file(out_dir.join(name)).unwrap();
    }
    mkfifo(&out_dir.join("fifo.png"));
    std::os::unix::fs::symlink("/dev/zero", out_dir.join("zero.png")).unwrap();

    let again = report(&[out_dir.as_os_str()]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    for reason in [
        "is a FIFO (named pipe), not a regular file",
        "is a character device, not a regular file",
    ] {
        assert!(html.contains(reason), "{reason}: {html}");
    }
    // The good row keeps its thumbnail, and the rows still count as done.
    assert_eq!(html.matches("aria-label=\"result\"").count(), 1);
    assert!(text(&again.stdout).ends_with("(3 rows: 3 completed)\n"));
}

#[test]
fn a_missing_or_damaged_journal_or_an_unknown_manifest_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = report(&[dir.path().join("nowhere").as_os_str()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("no batch journal (tryon-journal.jsonl is missing)"));

    // A journal but no run record: which manifest is unknown.
    let journal = dir.path().join("tryon-journal.jsonl");
    std::fs::write(
        &journal,
        "{\"event\":\"submitting\",\"row\":\"a\",\"fingerprint\":\"f\",\"at\":1}\n",
    )
    .unwrap();
    let unknown = report(&[dir.path().as_os_str()]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown.stderr).contains("give it with --manifest FILE"),
        "{}",
        text(&unknown.stderr)
    );

    let manifest = dir.path().join("m.csv");
    std::fs::write(
        &manifest,
        "id,person,garments\na,https://x.test/p,https://x.test/g\n",
    )
    .unwrap();
    let with = |journal_text: &str| {
        std::fs::write(&journal, journal_text).unwrap();
        report(&[
            dir.path().as_os_str(),
            "--manifest".as_ref(),
            manifest.as_os_str(),
        ])
    };
    let fine = with("{\"event\":\"submitting\",\"row\":\"a\",\"fingerprint\":\"f\",\"at\":1}\n");
    assert!(fine.status.success(), "{}", text(&fine.stderr));
    // A manifest that is a device (a run record can name any path) is
    // refused, not read.
    let zero = report(&[
        dir.path().as_os_str(),
        "--manifest".as_ref(),
        "/dev/zero".as_ref(),
    ]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(
        text(&zero.stderr)
            .contains("/dev/zero: cannot read: is a character device, not a regular file"),
        "{}",
        text(&zero.stderr)
    );

    let damaged = with(
        "{\"event\":\"submitting\",\"row\":\"a\",\"fingerprint\":\"f\",\"at\":1}\nnot json\n{\"event\":\"failed\",\"row\":\"a\",\"fingerprint\":\"f\",\"at\":2}\n",
    );
    assert_eq!(damaged.status.code(), Some(2));
    assert!(
        text(&damaged.stderr).contains("tryon-journal.jsonl line 2"),
        "{}",
        text(&damaged.stderr)
    );

    // A FIFO in the journal's place is refused, not opened.
    std::fs::remove_file(&journal).unwrap();
    mkfifo(&journal);
    let fifo = report(&[
        dir.path().as_os_str(),
        "--manifest".as_ref(),
        manifest.as_os_str(),
    ]);
    assert_eq!(fifo.status.code(), Some(2));
    assert!(
        text(&fifo.stderr).contains("not a regular file"),
        "{}",
        text(&fifo.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_cannot_be_written_leaves_the_run_as_it_was() {
    let server = MockServer::start().await;
    let (_dir, manifest, out_dir) = super::common::batch_dir(3, None);
    // A folder, not empty, where the page goes: the rename fails.
    std::fs::create_dir_all(out_dir.join("report.html/taken")).unwrap();
    let run = output(batch(&server, &manifest, &out_dir, &["--concurrency", "1"])).await;
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert_eq!(
        run.status.code(),
        Some(0),
        "the run's code: {stdout}{stderr}"
    );
    assert!(
        stderr.contains("warning: the report page was not written: cannot write"),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "\nreport: not written (cannot write {}",
            out_dir.join("report.html").display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "`tryon --base-url {} report {}` writes it",
            server.uri(),
            out_dir.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("completed  3 (3 this run"), "{stdout}");
    let leftovers: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // --json says so too, and the journal is whole: a rerun pays for nothing.
    let mut again = batch(&server, &manifest, &out_dir, &[]);
    again.arg("--json");
    let rerun = output(again).await;
    let summary: serde_json::Value = serde_json::from_slice(&rerun.stdout).unwrap();
    assert!(
        summary["report"]["error"]
            .as_str()
            .unwrap()
            .contains("cannot write"),
        "{summary}"
    );
    assert_eq!(summary["completed_earlier"], 3);
    assert_eq!(server.billed_submits(), 3);
}
