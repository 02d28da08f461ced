//! End-to-end tests of what careless or hostile use does to the `tryon`
//! binary: closed pipes, damaged journals, colliding output names, outputs
//! that cannot be saved, control characters. Each checks the promise from
//! the mock's billing: nothing billed twice, nothing billed lost.

mod common;

use std::process::Stdio;

use common::{output, text, tryon, write_manifest};
use tryon_mock::MockServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_stdout_and_stderr_do_not_stop_a_batch() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), 16, None);
    let out_dir = dir.path().join("out");
    let mut cmd = tryon(&server);
    // `-v` makes the client log too, so the tracing writer meets the
    // closed pipe as well as the progress lines and the summary.
    cmd.args(["-v", "batch"])
        .arg(&manifest)
        .args(["--concurrency", "8", "--out-dir"])
        .arg(&out_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let status = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        // Close both pipes' read ends before the child writes anything:
        // every write it makes gets EPIPE.
        drop(child.stdout.take());
        drop(child.stderr.take());
        child.wait().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0), "finished cleanly, no panic (101)");
    assert_eq!(server.billed_submits(), 16, "every row billed once");
    for i in 0..16 {
        image::open(out_dir.join(format!("look-{i}.png"))).expect("output saved");
    }
    // The journal is truthful: a rerun has nothing to send.
    let mut cmd = tryon(&server);
    cmd.args(["batch"])
        .arg(&manifest)
        .args(["--out-dir"])
        .arg(&out_dir);
    let rerun = output(cmd).await;
    assert!(rerun.status.success(), "{}", text(&rerun.stderr));
    assert!(
        text(&rerun.stdout).contains("completed  16 (0 this run, 16 earlier)"),
        "{}",
        text(&rerun.stdout)
    );
    assert_eq!(server.billed_submits(), 16);
}
