//! The standalone `tryon-mock` binary as other languages use it: one
//! readiness line on stdout, `/__mock/health`, a clean exit on SIGTERM and
//! SIGINT, serving on with its stderr closed, and under a low open-file
//! limit with many idle sockets.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tryon-mock");

/// A started mock, killed on drop so a failing test leaves no process.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Starts `command` and reads its readiness line (`--json`).
fn start(mut command: Command) -> (Running, Value, BufReader<std::process::ChildStdout>) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let child = Running(child);
    let ready: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("readiness line {line:?} is not JSON: {e}"));
    (child, ready, stdout)
}

/// Everything `child` wrote on its (piped) stderr, once it has exited.
fn stderr_of(child: &mut Running) -> String {
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

fn mock() -> Command {
    let mut c = Command::new(BIN);
    c.args(["--port", "0", "--json"]);
    c
}

fn signal(child: &Running, name: &str) {
    let ok = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name}");
}

#[tokio::test]
async fn one_json_line_then_health_then_a_clean_exit_on_sigterm_and_sigint() {
    for sig in ["TERM", "INT"] {
        let (mut child, ready, mut stdout) = start(mock());
        let url = ready["url"].as_str().unwrap().to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{ready}");
        assert_eq!(ready["control"], format!("{url}/__mock/"));
        assert_eq!(ready.as_object().unwrap().len(), 2, "{ready}");
        assert_eq!(health(&url).await, 200);
        submit(&url, &body(1)).await;
        signal(&child, sig);
        let status = child.wait().unwrap();
        assert!(status.success(), "SIG{sig}: {status:?}");
        // Nothing else was written on stdout.
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "", "SIG{sig}");
    }
}

#[tokio::test]
async fn a_closed_stderr_does_not_stop_serving() {
    let (mut child, ready, _stdout) = start(mock());
    let url = ready["url"].as_str().unwrap().to_string();
    // The reader of stderr goes away: every log line now meets EPIPE.
    drop(child.stderr.take());
    for _ in 0..20 {
        let v = submit(&url, &body(1)).await;
        let id = v["request_id"].as_str().unwrap();
        assert_eq!(status_of(&url, id).await.0, 200);
    }
    assert_eq!(health(&url).await, 200);
    signal(&child, "TERM");
    assert!(child.wait().unwrap().success());
}

#[tokio::test]
async fn many_idle_sockets_under_a_low_open_file_limit_do_not_stop_service() {
    let mut command = Command::new("sh");
    command.args([
        "-c",
        &format!("ulimit -n 128 && exec {BIN} --port 0 --json"),
    ]);
    let (mut child, ready, _stdout) = start(command);
    let url = ready["url"].as_str().unwrap().to_string();
    let addr = url.trim_start_matches("http://").to_string();
    let idle: Vec<std::net::TcpStream> = (0..200)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    let answer = tokio::time::timeout(Duration::from_secs(20), async {
        let v = submit(&url, &body(1)).await;
        status_of(&url, v["request_id"].as_str().unwrap()).await.0
    })
    .await
    .expect("the mock must serve past 200 idle sockets");
    assert_eq!(answer, 200);
    drop(idle);
    signal(&child, "TERM");
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_bad_config_value_is_refused_at_start_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("tryon-mock-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mock.toml");
    std::fs::write(&path, "retention = 1e15\n").unwrap();
    let out = Command::new(BIN)
        .args(["--port", "0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("retention: 1000000000000000 s given, at most"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// `--config` reads only a regular file, at most 1 MiB: `/dev/zero` grew
/// the mock's memory without end before, and an oversized file is refused
/// before it is read. Each exits 2 naming the path and why.
#[test]
fn a_config_that_is_a_device_or_too_large_is_refused_unread() {
    let dir = std::env::temp_dir().join(format!("tryon-mock-cfg-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let huge = dir.join("mock.toml");
    // Sparse: no disk is spent.
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1024 * 1024 + 1)
        .unwrap();
    for (path, expected) in [
        (
            std::path::PathBuf::from("/dev/zero"),
            "/dev/zero: is a character device, not a regular file",
        ),
        (
            huge.clone(),
            "mock.toml: is over 1048576 bytes, the most read",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["--port", "0", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", path.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Off loopback: a loud warning, a generated control token (printed), and
/// URLs from `--public-url`. Only reached over loopback here.
#[tokio::test]
async fn off_loopback_the_control_api_needs_a_token_and_urls_come_from_a_flag() {
    let mut command = mock();
    command.args(["--host", "0.0.0.0", "--public-url", "http://mock.test:8787"]);
    let (mut child, ready, _stdout) = start(command);
    let url = ready["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{ready}");
    let token = ready["control_token"].as_str().unwrap().to_string();
    assert!(token.len() >= 32, "{ready}");
    let now = |token: Option<String>| {
        let mut r = client().get(format!("{url}/__mock/now"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(now(None).await.unwrap().status(), 401);
    assert_eq!(now(Some(token.clone())).await.unwrap().status(), 200);
    assert_eq!(health(&url).await, 200);
    let v = submit(&url, &body(1)).await;
    assert!(
        v["status_url"]
            .as_str()
            .unwrap()
            .starts_with("http://mock.test:8787/v2/requests/"),
        "{v}"
    );
    signal(&child, "TERM");
    assert!(child.wait().unwrap().success());
    let stderr = stderr_of(&mut child);
    assert!(stderr.contains("WARNING: listening on 0.0.0.0"), "{stderr}");
    assert!(stderr.contains(&token), "{stderr}");
}

/// Waits for `child` to exit, at most `within` (a guard: the test fails
/// instead of hanging); `None`, and the process killed, if it had not.
fn exit_within(child: Running, within: Duration) -> Option<std::process::ExitStatus> {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut child = child;
        let _ = tx.send(child.0.wait());
    });
    if let Ok(status) = rx.recv_timeout(within) {
        Some(status.unwrap())
    } else {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        None
    }
}

#[tokio::test]
async fn with_exit_with_parent_the_mock_stops_when_its_stdin_closes() {
    // What a wrapper does: the mock's stdin is a pipe the wrapper holds.
    // When the wrapper dies (kill -9), the kernel closes its end.
    let mut command = mock();
    command.arg("--exit-with-parent");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    let url = ready["url"].as_str().unwrap().to_string();
    let mut child = Running(child);
    assert_eq!(health(&url).await, 200, "serving while the pipe is open");
    drop(child.stdin.take());
    let status = exit_within(child, Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "the mock outlived its parent's pipe: {status:?}"
    );
}

#[tokio::test]
async fn keys_that_accept_nothing_are_warned_about_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mock.toml");
    std::fs::write(&path, "keys = []\n").unwrap();
    let mut command = mock();
    command.arg("--config").arg(&path);
    let (mut child, ready, _stdout) = start(command);
    let url = ready["url"].as_str().unwrap().to_string();
    assert_eq!(submit_status(&url, &body(1)).await, 401);
    signal(&child, "TERM");
    assert!(child.wait().unwrap().success());
    let stderr = stderr_of(&mut child);
    // Before: nothing said why every key is refused.
    assert!(
        stderr.contains("WARNING: keys = [] accepts no API key"),
        "{stderr}"
    );
}
