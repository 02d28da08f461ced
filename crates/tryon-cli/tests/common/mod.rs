//! Helpers shared by the end-to-end tests of the `tryon` binary: the
//! command against an in-process mock, running it off the async runtime,
//! manifests, and reading the CLI's journal.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt as _;
use tryon_mock::MockServer;

/// The API key the tests use.
pub(crate) const KEY: &str = "sk-cli-test";

/// The workspace's sample images.
pub(crate) fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets")
}

/// `tryon` with the key set and the mock as base URL.
pub(crate) fn tryon(server: &MockServer) -> Command {
    let mut cmd = Command::cargo_bin("tryon").expect("the tryon binary is built");
    cmd.env("SEGMIND_API_KEY", KEY)
        .env_remove("RUST_LOG")
        .env_remove("TRYON_CHAOS_KILL_AFTER_JOURNAL_WRITES")
        .env_remove("TRYON_CHAOS_TRACE")
        .arg("--base-url")
        .arg(server.uri())
        .arg("--upload-base-url")
        .arg(server.uri());
    cmd
}

/// `tryon batch MANIFEST --out-dir OUT_DIR EXTRA...` against `server`.
pub(crate) fn batch(
    server: &MockServer,
    manifest: &Path,
    out_dir: &Path,
    extra: &[&str],
) -> std::process::Command {
    let mut cmd = tryon(server);
    cmd.arg("batch")
        .arg(manifest)
        .arg("--out-dir")
        .arg(out_dir)
        .args(extra);
    cmd
}

/// `tryon batch MANIFEST --out-dir OUT_DIR EXTRA...` run in `dir`, both
/// paths as given (relative to `dir`, or absolute).
pub(crate) fn batch_in(
    server: &MockServer,
    dir: &Path,
    manifest: &str,
    out_dir: &str,
    extra: &[&str],
) -> Command {
    let mut cmd = batch(server, Path::new(manifest), Path::new(out_dir), extra);
    cmd.current_dir(dir);
    cmd
}

/// The command printed after `marker` on a line of `stream` (a recovery
/// or rerun command, `tryon ...`), split as a POSIX shell would split it, and a
/// `Command` that runs it exactly as printed (the key from the
/// environment, as a person's shell would have it).
pub(crate) fn printed_command(stream: &str, marker: &str) -> (Vec<String>, Command) {
    let line = stream
        .lines()
        .find_map(|l| {
            l.split_once(marker)
                .map(|(_, rest)| rest)
                .filter(|rest| rest.starts_with("tryon "))
        })
        .unwrap_or_else(|| panic!("no `{marker}` line in: {stream}"));
    let words = shlex::split(line).unwrap_or_else(|| panic!("not a shell line: {line}"));
    assert_eq!(words.first().map(String::as_str), Some("tryon"), "{line}");
    let mut cmd = Command::cargo_bin("tryon").expect("the tryon binary is built");
    cmd.args(&words[1..])
        .env("SEGMIND_API_KEY", KEY)
        .env_remove("RUST_LOG")
        .env_remove("TRYON_CHAOS_KILL_AFTER_JOURNAL_WRITES");
    (words, cmd)
}

/// A temporary folder holding `sub/m.csv`, one row `r1` whose images are
/// the workspace's samples copied beside it and named relatively (so how
/// the manifest's path is typed is how they are joined). `extra_columns`
/// (`seed=7`) adds columns with their values. Returns the folder and `sub`.
pub(crate) fn relative_manifest(extra_columns: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).expect("sub");
    for name in ["person.png", "garment.png"] {
        std::fs::copy(assets().join(name), sub.join(name)).expect("copied");
    }
    let (head, values) = extra_columns
        .split_once('=')
        .map_or((String::new(), String::new()), |(h, v)| {
            (format!(",{h}"), format!(",{v}"))
        });
    std::fs::write(
        sub.join("m.csv"),
        format!("id,person,garments{head}\nr1,person.png,garment.png{values}\n"),
    )
    .expect("manifest written");
    (dir, sub)
}

/// A mock on a virtual clock: accepted jobs stay queued until the test
/// advances it (1 s queued, 2 s processing).
pub(crate) async fn queued_mock() -> MockServer {
    MockServer::builder()
        .virtual_time()
        .stages(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(2),
        )
        .start()
        .await
}

/// Runs `batch m.csv --out-dir out` in `dir` (see [`relative_manifest`])
/// and kills it (SIGKILL, its own chaos hook) right after its second
/// journal record, the first row's accepted id, is durable: its job is
/// paid for and queued. Returns that request id.
pub(crate) async fn interrupt_after_submit(server: &MockServer, dir: &Path) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    let mut first = batch_in(server, dir, "m.csv", "out", &[]);
    first.env("TRYON_CHAOS_KILL_AFTER_JOURNAL_WRITES", "2");
    let killed = output(first).await;
    assert_eq!(killed.status.signal(), Some(9), "{}", text(&killed.stderr));
    journal_ids(&dir.join("out"))
        .get("r1")
        .and_then(|ids| ids.first().cloned())
        .expect("r1's accepted id in the journal")
}

/// `run` of a one-garment try-on from URLs (`-o` to follow).
pub(crate) const RUN_FROM_URLS: [&str; 5] = [
    "run",
    "--person",
    "https://example.com/p.jpg",
    "--garment",
    "https://example.com/g.jpg",
];

/// `tryon run` of a one-garment try-on from URLs, saving to `out`.
pub(crate) fn run_to(server: &MockServer, out: &Path) -> Command {
    let mut cmd = tryon(server);
    cmd.args(RUN_FROM_URLS).arg("-o").arg(out);
    cmd
}

/// Reruns the batch and checks that it sends nothing: it exits `code`,
/// reports its `done` completed rows as all done earlier, and the mock has
/// billed `billed` submits in all.
pub(crate) async fn assert_rerun_sends_nothing(
    server: &MockServer,
    manifest: &Path,
    out_dir: &Path,
    code: i32,
    done: usize,
    billed: u64,
) {
    let rerun = output(batch(server, manifest, out_dir, &[])).await;
    let (stdout, stderr) = (text(&rerun.stdout), text(&rerun.stderr));
    assert_eq!(rerun.status.code(), Some(code), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("completed  {done} (0 this run, {done} earlier)")),
        "{stdout}"
    );
    assert_eq!(server.billed_submits(), billed);
}

/// Run a command to its end in a blocking task (the mock keeps serving on
/// the test's runtime meanwhile).
pub(crate) async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("tryon runs"))
        .await
        .expect("the blocking task finishes")
}

/// Bytes as text, for messages.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that the output stream `bytes` contains `needle`, showing the
/// stream when it does not.
pub(crate) fn assert_has(bytes: &[u8], needle: &str) {
    let shown = text(bytes);
    assert!(shown.contains(needle), "{shown}");
}

/// A CSV manifest of `rows` two-garment rows `look-0..`; the row at
/// `failing_seed` gets seed 13 (which the tests make fail).
pub(crate) fn write_manifest(dir: &Path, rows: usize, failing_seed: Option<u64>) -> PathBuf {
    let mut csv = String::from("id,person,garments,seed\n");
    for i in 0..rows {
        let seed = if Some(i as u64) == failing_seed {
            13
        } else {
            1000 + i as u64
        };
        writeln!(csv, "look-{i},https://example.com/p{i}.jpg,https://example.com/g{i}.jpg|https://example.com/h{i}.jpg,{seed}").expect("write to a String");
    }
    let path = dir.join("manifest.csv");
    std::fs::write(&path, csv).expect("manifest written");
    path
}

/// A JSONL manifest `m.jsonl` in `dir`, one line per row.
pub(crate) fn write_jsonl(
    dir: &Path,
    rows: impl IntoIterator<Item = serde_json::Value>,
) -> PathBuf {
    let mut jsonl = String::new();
    for row in rows {
        writeln!(jsonl, "{row}").expect("write to a String");
    }
    let path = dir.join("m.jsonl");
    std::fs::write(&path, jsonl).expect("manifest written");
    path
}

/// A temporary folder for a batch, the manifest written in it by
/// [`write_manifest`] and the path of its `out` folder (not created).
pub(crate) fn batch_dir(
    rows: usize,
    failing_seed: Option<u64>,
) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let manifest = write_manifest(dir.path(), rows, failing_seed);
    let out_dir = dir.path().join("out");
    (dir, manifest, out_dir)
}

/// Row id -> request ids, from the CLI's journal.
pub(crate) fn journal_ids(out_dir: &Path) -> HashMap<String, Vec<String>> {
    let mut ids: HashMap<String, Vec<String>> = HashMap::new();
    let text = std::fs::read_to_string(out_dir.join("tryon-journal.jsonl")).expect("journal");
    for line in text.lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect("a JSON journal line");
        if event["event"] == "submitted" {
            let field = |name: &str| event[name].as_str().expect("a string field").to_string();
            ids.entry(field("row"))
                .or_default()
                .push(field("request_id"));
        }
    }
    ids
}

/// A `tryon mock` child process, killed (SIGKILL) and reaped when dropped.
pub(crate) struct MockProcess {
    child: std::process::Child,
    ready: serde_json::Value,
}

impl MockProcess {
    /// Kills it now (SIGKILL: nothing it has not finished gets written).
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its readiness line: `{"url": ..., "control": ...}`.
    pub(crate) fn ready(&self) -> &serde_json::Value {
        &self.ready
    }

    /// Its stderr, when it was started with one to read.
    pub(crate) fn stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `tryon mock --port 0 --json ARGS` (stderr discarded); returns it
/// and its base URL, read from its readiness line.
pub(crate) fn start_mock(args: &[&str]) -> (MockProcess, String) {
    start_mock_with(args, std::process::Stdio::null())
}

/// [`start_mock`] with its stderr going to `stderr` (`Stdio::piped()` to
/// read it with [`MockProcess::stderr`]).
pub(crate) fn start_mock_with(args: &[&str], stderr: std::process::Stdio) -> (MockProcess, String) {
    use std::io::BufRead as _;
    let mut child = Command::cargo_bin("tryon")
        .expect("the tryon binary is built")
        .arg("mock")
        .args(args)
        .args(["--port", "0", "--json"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("tryon mock starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("a readiness line");
    let ready: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("readiness line {line:?}: {e}"));
    let url = ready["url"].as_str().expect("a url").to_string();
    (MockProcess { child, ready }, url)
}

/// `tryon` with the key set and `url` as its base URL (for a mock child).
pub(crate) fn tryon_at(url: &str) -> Command {
    let mut cmd = Command::cargo_bin("tryon").expect("the tryon binary is built");
    cmd.env("SEGMIND_API_KEY", KEY)
        .env_remove("RUST_LOG")
        .args(["--base-url", url]);
    cmd
}

/// A mock on this test's runtime and a temporary folder, the start of
/// most tests here.
pub(crate) async fn mock_and_dir() -> (MockServer, tempfile::TempDir) {
    let server = MockServer::start().await;
    (server, tempfile::tempdir().expect("a temporary folder"))
}
