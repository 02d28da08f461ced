//! The page and running batches: one stopped by a signal writes its page
//! on the way out; `tryon report` while one runs reads a snapshot and
//! leaves it alone.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::common::{self, batch, batch_dir, output, text};
use tryon_mock::MockServer;

/// Start `cmd`, read its stderr until `rows` rows say `submitted`, then
/// hand the child back with the stderr read so far (the rest of it is
/// drained on a thread, so the child never blocks on a full pipe).
async fn start_until_submitted(
    mut cmd: std::process::Command,
    rows: usize,
) -> (Child, std::thread::JoinHandle<String>) {
    cmd.env("TRYON_CHAOS_TRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("tryon starts");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut seen = String::new();
        let mut submitted = 0;
        while submitted < rows {
            let mut line = String::new();
            let read = stderr.read_line(&mut line).expect("stderr");
            assert!(read > 0, "the batch ended before {rows} submits: {seen}");
            submitted += usize::from(line.contains(": submitted "));
            seen.push_str(&line);
        }
        let rest = std::thread::spawn(move || {
            let _ = stderr.read_to_string(&mut seen);
            seen
        });
        (child, rest)
    })
    .await
    .expect("the blocking task")
}

/// Wait for `child` (at most a minute): its exit code and stdout.
async fn finish(
    mut child: Child,
    stderr: std::thread::JoinHandle<String>,
) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let (done, wait) = std::sync::mpsc::channel();
        let pid = child.id();
        let waiter = std::thread::spawn(move || {
            let mut stdout = String::new();
            if let Some(mut out) = child.stdout.take() {
                let _ = out.read_to_string(&mut stdout);
            }
            let status = child.wait().expect("tryon ends");
            let _ = done.send(());
            (status, stdout)
        });
        if wait.recv_timeout(Duration::from_mins(1)).is_err() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the batch did not end within a minute");
        }
        let (status, stdout) = waiter.join().expect("the waiter");
        let stderr = stderr.join().expect("the stderr reader");
        (status.code().unwrap_or(-1), stdout, stderr)
    })
    .await
    .expect("the blocking task")
}

fn signal(child: &Child, name: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

fn page(out_dir: &Path) -> String {
    std::fs::read_to_string(out_dir.join("report.html")).expect("the page")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_stops_the_run_and_it_still_prints_its_summary_and_page() {
    for (name, code) in [("INT", 130), ("TERM", 143)] {
        // Virtual time: the jobs wait until the test moves the clock.
        let server = MockServer::builder().virtual_time().start().await;
        let (_dir, manifest, out_dir) = batch_dir(4, None);
        let (child, stderr) =
            start_until_submitted(batch(&server, &manifest, &out_dir, &[]), 4).await;
        signal(&child, name);
        let (status, stdout, stderr) = finish(child, stderr).await;
        assert_eq!(status, code, "SIG{name}: {stdout}\n{stderr}");
        assert!(stdout.contains("\n  pending    4 "), "{stdout}");
        assert!(
            stdout.contains(&format!(
                "\nreport: {}",
                out_dir.join("report.html").display()
            )),
            "{stdout}"
        );
        let html = page(&out_dir);
        assert!(html.contains("This run was interrupted"), "{html}");
        assert!(
            html.contains(&format!("stopped by SIG{name} after")),
            "{html}"
        );
        assert_eq!(
            html.matches(&format!("tryon --base-url {} wait ", server.uri()))
                .count(),
            4,
            "each pending row's fetch command, naming the batch's server"
        );
        let record = std::fs::read_to_string(out_dir.join(".tryon-report/run.json")).unwrap();
        assert!(
            record.contains(&format!("\"stopped_by\": \"SIG{name}\"")),
            "{record}"
        );

        // The jobs finish; a rerun collects them and pays for none again.
        server.advance(Duration::from_secs(30));
        let rerun = output(batch(&server, &manifest, &out_dir, &[])).await;
        let stdout = text(&rerun.stdout);
        assert!(rerun.status.success(), "{stdout}{}", text(&rerun.stderr));
        assert!(
            stdout.contains("completed  4 (4 this run, 0 earlier)"),
            "{stdout}"
        );
        assert_eq!(server.billed_submits(), 4);
        assert!(!page(&out_dir).contains("interrupted"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_while_a_batch_runs_is_a_snapshot_and_leaves_the_batch_alone() {
    let server = MockServer::builder().virtual_time().start().await;
    let (_dir, manifest, out_dir) = batch_dir(3, None);
    let (child, stderr) = start_until_submitted(batch(&server, &manifest, &out_dir, &[]), 3).await;

    let mut report = assert_cmd::Command::cargo_bin("tryon").unwrap();
    report
        .env_remove("SEGMIND_API_KEY")
        .arg("report")
        .arg(&out_dir);
    let snapshot = report.timeout(Duration::from_mins(1)).output().unwrap();
    let shown = text(&snapshot.stdout);
    assert!(
        snapshot.status.success(),
        "{shown}{}",
        text(&snapshot.stderr)
    );
    assert!(shown.ends_with("(3 rows: 3 pending)\n"), "{shown}");
    assert!(page(&out_dir).contains("A `tryon batch` is running in this folder"));

    // The batch goes on as if nothing happened.
    server.advance(Duration::from_secs(30));
    let (status, stdout, stderr) = finish(child, stderr).await;
    assert_eq!(status, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("completed  3 (3 this run, 0 earlier)"),
        "{stdout}"
    );
    assert_eq!(server.billed_submits(), 3);
    let html = page(&out_dir);
    assert!(
        !html.contains("is running"),
        "its own page replaced the snapshot"
    );
    assert_eq!(html.matches("<section class=\"r completed\"").count(), 3);
    assert!(
        common::journal_ids(&out_dir)
            .values()
            .all(|ids| ids.len() == 1)
    );
}
