//! Record and replay (feature `proxy`): the official flows recorded through
//! the proxy in front of a mock, the mock stopped, and the recording
//! replayed: the same requests get the same ids, statuses, bodies and output
//! bytes; a request nothing matches gets the near-miss error; a recording of
//! an unknown version or torn by hand is refused naming the file; and the
//! key is in no recorded file and no log line.
#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::too_many_lines
)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use common::files;
use serde_json::{Value, json};
use tryon_mock::{FailRule, JobMatch, MockServer, Proxy, ProxyOptions, Replay, ReplayOptions};

const SECRET: &str = "sk-record-secret-5d1e8b";

/// A 1×1 PNG, sent inline as a data URI (stored once, by hash).
const PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn one_garment() -> Value {
    json!({
        "person_image": PNG,
        "garment_images": ["https://example.com/shirt.jpg"],
        // The key in a body is masked in the recording.
        "prompt": format!("the shirt, not {SECRET}"),
    })
}

/// Runs the official flows against `base`, one transcript line per step:
/// status, content type and the body (URLs with `base` written `BASE`;
/// binary bodies as their length and a checksum).
struct Flow<'a> {
    base: &'a str,
    advance: &'a dyn Fn(Duration),
    lines: Vec<String>,
}

impl<'a> Flow<'a> {
    fn new(base: &'a str, advance: &'a dyn Fn(Duration)) -> Self {
        Self {
            base,
            advance,
            lines: Vec::new(),
        }
    }

    async fn step(&mut self, method: &str, url: &str, key: bool, body: Option<&Value>) -> Value {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            format!("{}{url}", self.base)
        };
        let mut r = common::client().request(method.parse().unwrap(), &url);
        if key {
            r = r.header("x-api-key", SECRET);
        }
        if let Some(b) = body {
            r = r.json(b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = r.bytes().await.unwrap();
        let (shown, value) = match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => (v.to_string().replace(self.base, "BASE"), v),
            Err(_) => (
                format!(
                    "{} bytes, sum {}",
                    bytes.len(),
                    bytes.iter().map(|b| u64::from(*b)).sum::<u64>()
                ),
                Value::Null,
            ),
        };
        let path = url.replace(self.base, "");
        self.lines
            .push(format!("{method} {path} -> {status} {ct} {shown}"));
        value
    }

    /// Submit, poll, advance, poll, result, output.
    async fn job(&mut self, body: &Value) -> String {
        let submitted = self
            .step("POST", "/v2/p-image-try-on", true, Some(body))
            .await;
        let id = submitted["request_id"].as_str().unwrap().to_string();
        let status_url = submitted["status_url"].as_str().unwrap().to_string();
        self.step("GET", &status_url, true, None).await;
        (self.advance)(Duration::from_mins(10));
        self.step("GET", &status_url, true, None).await;
        let result = self
            .step(
                "GET",
                submitted["response_url"].as_str().unwrap(),
                true,
                None,
            )
            .await;
        if let Some(output) = result["output"].as_str() {
            self.step("GET", output, false, None).await;
        }
        id
    }

    async fn official(&mut self) -> Vec<String> {
        let mut ids = vec![self.job(&one_garment()).await];
        let mut three = common::body(3);
        three["garment_images"][2] = "https://example.com/skirt.jpg".into();
        ids.push(self.job(&three).await);
        let mut failing = common::body(1);
        failing["seed"] = 13.into();
        ids.push(self.job(&failing).await);
        self.step(
            "GET",
            "/v2/requests/00000000-0000-4000-8000-000000000000/status",
            true,
            None,
        )
        .await;
        self.step("POST", "/v1/p-image-try-on", true, Some(&one_garment()))
            .await;
        self.step("POST", "/v2/p-image-try-on", false, Some(&one_garment()))
            .await;
        self.step("POST", "/v2/p-image-try-on", true, Some(&common::body(12)))
            .await;
        // The same request again: a second job.
        ids.push(self.job(&one_garment()).await);
        ids
    }
}

async fn upstream() -> MockServer {
    MockServer::builder()
        .virtual_time()
        .keys([SECRET])
        .fail(FailRule::new(JobMatch::Seed(13), "unlucky seed"))
        .start()
        .await
}

/// Records into `dir` (at most `limit` bytes) the official flows, or (not
/// `all`) one job; returns the transcript and the job ids.
async fn record_some(dir: &Path, limit: Option<u64>, all: bool) -> (Vec<String>, Vec<String>) {
    let mock = upstream().await;
    let mut options = ProxyOptions::new(mock.uri());
    options.record = Some(dir.to_path_buf());
    if let Some(l) = limit {
        options.record_limit = l;
    }
    let proxy = Proxy::start(options, loopback()).await.unwrap();
    let base = proxy.uri();
    let advance = |d| mock.advance(d);
    let mut flow = Flow::new(&base, &advance);
    let ids = if all {
        flow.official().await
    } else {
        vec![flow.job(&common::body(1)).await]
    };
    assert!(proxy.drift().is_empty(), "{:#?}", proxy.drift());
    (flow.lines, ids)
}

async fn record(dir: &Path) -> (Vec<String>, Vec<String>) {
    record_some(dir, None, true).await
}

/// The status codes of a transcript.
fn codes(lines: &[String]) -> Vec<u16> {
    lines
        .iter()
        .map(|l| l.split(" -> ").nth(1).unwrap()[..3].parse().unwrap())
        .collect()
}

async fn replay(dir: &Path) -> Replay {
    let mut options = ReplayOptions::new(dir);
    options.virtual_time = true;
    Replay::start(options, loopback()).await.unwrap()
}

#[tokio::test]
async fn a_recorded_run_replays_with_the_same_ids_statuses_bodies_and_bytes() {
    let log_file = tempfile::NamedTempFile::new().unwrap();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(Mutex::new(log_file.reopen().unwrap()))
        .finish();
    // Global: the other tests' lines land here too; none may hold the key.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (recorded, ids) = record(dir.path()).await;
    // The upstream is gone now (dropped with `record`).
    assert_eq!(ids.len(), 4);
    assert_ne!(ids[0], ids[3], "the same request twice is two jobs");
    let expected_codes = [
        200, 200, 200, 200, 200, // 1 garment
        200, 200, 200, 200, 200, // 3 garments
        200, 200, 422, 422, // FAILED
        404, 200, 401, 422, // unknown id, v1 run, no key, 12 garments
        200, 200, 200, 200, 200, // the same request again
    ];
    assert_eq!(codes(&recorded), expected_codes, "{recorded:#?}");

    let replay = replay(dir.path()).await;
    let base = replay.uri();
    let advance = |d| replay.advance(d);
    let mut flow = Flow::new(&base, &advance);
    let replayed_ids = flow.official().await;
    assert_eq!(replayed_ids, ids);
    for (r, p) in recorded.iter().zip(&flow.lines) {
        assert_eq!(r, p);
    }
    assert_eq!(recorded.len(), flow.lines.len());
    assert!(recorded[1].contains("\"QUEUED\"") && recorded[2].contains("\"COMPLETED\""));
    assert!(recorded[4].contains("image/png"), "{}", recorded[4]);

    // A third identical submit: both recorded jobs were handed out.
    let r = common::post_with_key(SECRET, &base, "/v2/p-image-try-on", &one_garment()).await;
    assert_eq!(r.status().as_u16(), Replay::MISS_STATUS);
    assert!(r.text().await.unwrap().contains("all 2 recorded job(s)"));

    // A near miss names the nearest request and the field.
    let mut other = common::body(3);
    other["garment_images"][2] = "https://example.com/scarf.jpg".into();
    let r = common::post_with_key(SECRET, &base, "/v2/p-image-try-on", &other).await;
    assert_eq!(r.status().as_u16(), Replay::MISS_STATUS);
    let text = r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains(&format!("request_id {}", ids[1]))
            && text.contains(
                "garment_images[2]: recorded https://example.com/skirt.jpg, got https://example.com/scarf.jpg"
            ),
        "{text}"
    );
    // Image URLs compare without their query string.
    let mut signed = common::body(3);
    signed["garment_images"][2] = "https://example.com/skirt.jpg?sig=2".into();
    let r = common::post_with_key(SECRET, &base, "/v2/p-image-try-on", &signed).await;
    assert_eq!(r.status().as_u16(), Replay::MISS_STATUS);
    assert!(r.text().await.unwrap().contains("handed out already"));

    // The key: in no file of the recording, in no log line.
    drop(replay);
    let all = files(dir.path());
    assert!(all.iter().any(|(n, _)| n.starts_with("images/")));
    for (name, content) in &all {
        assert!(
            !String::from_utf8_lossy(content).contains(SECRET),
            "{name} holds the key"
        );
    }
    let logged = std::fs::read_to_string(log_file.path()).unwrap();
    assert!(logged.contains("replayed"), "{logged}");
    assert!(!logged.contains(SECRET), "a log line holds the key");
}

#[tokio::test]
async fn recording_the_same_flow_twice_differs_only_in_ids_and_times() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (_, ids_a) = record(a.path()).await;
    let (_, ids_b) = record(b.path()).await;
    let normal = |dir: &Path, ids: &[String]| -> Vec<(String, String)> {
        files(dir)
            .into_iter()
            .map(|(name, content)| {
                let text = String::from_utf8_lossy(&content).into_owned();
                if name.starts_with("images/") {
                    (name, text)
                } else {
                    (name, without_ids_and_times(&text, ids))
                }
            })
            .collect()
    };
    let (na, nb) = (normal(a.path(), &ids_a), normal(b.path(), &ids_b));
    assert_eq!(
        na.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        nb.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for ((name, x), (_, y)) in na.iter().zip(&nb) {
        assert_eq!(x, y, "{name}");
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(a.path().join("recording.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], Replay::RECORDING_FORMAT);
    // Diff-friendly, as docs/RECORDING.md promises: every JSON file is
    // pretty-printed with its keys sorted and a final newline.
    for (name, content) in files(a.path()) {
        if name.starts_with("images/") {
            continue;
        }
        let value: Value = serde_json::from_slice(&content).unwrap();
        let sorted = format!(
            "{}\n",
            serde_json::to_string_pretty(&sorted_keys(&value)).unwrap()
        );
        assert_eq!(String::from_utf8_lossy(&content), sorted, "{name}");
    }
}

/// `value` with every object's keys in order (whatever map `Value` uses).
fn sorted_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted_keys(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}

/// `text` with each id in `ids` written `IDn`, every `offset_ms` value
/// `T` and every loopback port `PORT`: what may differ between two
/// recordings of the same flow.
fn without_ids_and_times(text: &str, ids: &[String]) -> String {
    let mut text = text.to_string();
    for (i, id) in ids.iter().enumerate() {
        text = text.replace(id, &format!("ID{i}"));
    }
    let mut out = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with("\"offset_ms\"") {
            out.push_str("\"offset_ms\": T\n");
            continue;
        }
        let mut parts = line.split("http://127.0.0.1:");
        out.push_str(parts.next().unwrap_or_default());
        for part in parts {
            out.push_str("http://127.0.0.1:PORT");
            out.push_str(part.trim_start_matches(|c: char| c.is_ascii_digit()));
        }
        out.push('\n');
    }
    out
}

/// A small recording: one job, submitted and read to completion.
async fn small_recording(dir: &Path, limit: Option<u64>) -> Vec<u16> {
    codes(&record_some(dir, limit, false).await.0)
}

#[tokio::test]
async fn an_unknown_format_version_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    small_recording(dir.path(), None).await;
    let manifest = dir.path().join("recording.json");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace(Replay::RECORDING_FORMAT, "tryon-recording/9");
    std::fs::write(&manifest, text).unwrap();
    let e = Replay::start(ReplayOptions::new(dir.path()), loopback())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let e = e.to_string();
    assert!(
        e.contains("\"tryon-recording/9\" is not supported")
            && e.contains(Replay::RECORDING_FORMAT),
        "{e}"
    );
}

/// Why a replay of `dir` refuses to start.
async fn refusal(dir: &Path) -> String {
    Replay::start(ReplayOptions::new(dir), loopback())
        .await
        .unwrap_err()
        .to_string()
}

#[tokio::test]
async fn a_torn_recording_is_refused_naming_the_file_and_leftovers_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    small_recording(dir.path(), None).await;
    // What a kill between write and rename leaves: skipped.
    std::fs::write(dir.path().join("exchanges/000009.json.tmp"), "{\"seq\":").unwrap();
    let replay = Replay::start(ReplayOptions::new(dir.path()), loopback())
        .await
        .unwrap();
    drop(replay);
    // A file cut short by hand: refused, naming it.
    let third = dir.path().join("exchanges/000003.json");
    let text = std::fs::read(&third).unwrap();
    std::fs::write(&third, &text[..text.len() / 2]).unwrap();
    let e = refusal(dir.path()).await;
    assert!(
        e.contains("exchanges/000003.json") && e.contains("torn"),
        "{e}"
    );
    std::fs::write(&third, &text).unwrap();
    // An image whose bytes were cut: refused, naming it.
    let image = files(dir.path())
        .into_iter()
        .find(|(n, _)| n.starts_with("images/"))
        .unwrap();
    std::fs::write(dir.path().join(&image.0), &image.1[..image.1.len() / 2]).unwrap();
    let e = refusal(dir.path()).await;
    assert!(
        e.contains(&image.0) && e.contains("does not match its hash"),
        "{e}"
    );
    std::fs::write(dir.path().join(&image.0), &image.1).unwrap();
    // Hostile files where a recording's files belong: a FIFO (reading it
    // would block the start for ever) and an image that is a link to
    // /dev/zero (it would never end). Refused at once, naming them.
    std::fs::remove_file(&third).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&third)
        .status()
        .unwrap();
    assert!(made.success());
    let e = refusal(dir.path()).await;
    assert!(
        e.contains("exchanges/000003.json") && e.contains("not a regular file"),
        "{e}"
    );
    std::fs::remove_file(&third).unwrap();
    std::fs::write(&third, &text).unwrap();
    let image_path = dir.path().join(&image.0);
    std::fs::remove_file(&image_path).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &image_path).unwrap();
    let e = refusal(dir.path()).await;
    assert!(
        e.contains(&image.0) && e.contains("not a regular file"),
        "{e}"
    );
    // No recording at all.
    let empty = tempfile::tempdir().unwrap();
    let e = refusal(empty.path()).await;
    assert!(e.contains("recording.json"), "{e}");
}

#[tokio::test]
async fn the_size_limit_stops_recording_but_not_proxying() {
    let dir = tempfile::tempdir().unwrap();
    let codes = small_recording(dir.path(), Some(1500)).await;
    assert_eq!(codes, [200, 200, 200, 200, 200], "the proxy kept serving");
    let all = files(dir.path());
    let exchanges = all
        .iter()
        .filter(|(n, _)| n.starts_with("exchanges/"))
        .count();
    assert!(
        (1..5).contains(&exchanges),
        "{exchanges} exchanges recorded"
    );
    let total: usize = all.iter().map(|(_, c)| c.len()).sum();
    // jobs.json is rewritten in place, outside the bound.
    let jobs = all.iter().find(|(n, _)| n == "jobs.json").unwrap().1.len();
    assert!(total - jobs <= 1500, "{total} bytes");
    // A second recording into the same directory is refused.
    let mut options = ProxyOptions::new("http://127.0.0.1:9");
    options.record = Some(dir.path().to_path_buf());
    let e = Proxy::start(options, loopback()).await.unwrap_err();
    assert!(e.to_string().contains("already holds a recording"), "{e}");
}

#[tokio::test]
async fn a_replay_speed_out_of_bounds_is_refused_naming_the_flag() {
    let mut options = ReplayOptions::new("/nonexistent");
    options.speed = 0.0;
    let e = Replay::start(options, loopback()).await.unwrap_err();
    assert!(e.to_string().starts_with("--replay-speed: 0 given"), "{e}");
}

/// Sets the recorded offset of `status` of the only job to `ms`.
fn set_offset(dir: &Path, status: &str, ms: u64) {
    let path = dir.join("jobs.json");
    let mut jobs: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for seen in jobs[0]["timeline"].as_array_mut().unwrap() {
        if seen["status"] == status {
            seen["offset_ms"] = ms.into();
        }
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&jobs).unwrap()).unwrap();
}

/// The `status` a status URL answers now.
async fn replayed_status(status_url: &str) -> String {
    let r = common::client()
        .get(status_url)
        .header("x-api-key", SECRET)
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn statuses_follow_the_recorded_timeline_scaled_by_the_speed() {
    let dir = tempfile::tempdir().unwrap();
    small_recording(dir.path(), None).await;
    // As if the service had taken 10 s to complete the job.
    set_offset(dir.path(), "COMPLETED", 10_000);
    for (speed, queued_at_4s) in [(1.0, true), (2.0, true), (4.0, false)] {
        let mut options = ReplayOptions::new(dir.path());
        options.virtual_time = true;
        options.speed = speed;
        let replay = Replay::start(options, loopback()).await.unwrap();
        let base = replay.uri();
        let r = common::post_with_key(SECRET, &base, "/v2/p-image-try-on", &common::body(1)).await;
        let submitted: Value = r.json().await.unwrap();
        let status_url = submitted["status_url"].as_str().unwrap();
        assert_eq!(replayed_status(status_url).await, "QUEUED");
        replay.advance(Duration::from_secs(4));
        let at_4s = replayed_status(status_url).await;
        assert_eq!(at_4s == "QUEUED", queued_at_4s, "speed {speed}: {at_4s}");
        replay.advance(Duration::from_secs(6));
        assert_eq!(replayed_status(status_url).await, "COMPLETED");
    }
}

/// The `tryon-mock` binary: `--replay DIR --virtual-time` serves the
/// recording with the control API's clock; an unknown version exits 2
/// naming it.
#[tokio::test]
async fn the_tryon_mock_binary_replays_and_refuses_an_unknown_version() {
    let dir = tempfile::tempdir().unwrap();
    small_recording(dir.path(), None).await;
    set_offset(dir.path(), "COMPLETED", 10_000);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tryon-mock"))
        .args(["--port", "0", "--json", "--virtual-time", "--replay"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let line = common::first_line(&mut child);
    let base = serde_json::from_str::<Value>(&line).unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let r = common::post_with_key(SECRET, &base, "/v2/p-image-try-on", &common::body(1)).await;
    let submitted: Value = r.json().await.unwrap();
    let status_url = submitted["status_url"].as_str().unwrap().to_string();
    assert!(status_url.starts_with(&base), "{submitted}");
    assert_eq!(replayed_status(&status_url).await, "QUEUED");
    let r = common::client()
        .post(format!("{base}/__mock/advance"))
        .json(&json!({"seconds": 11}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(replayed_status(&status_url).await, "COMPLETED");
    let _ = child.kill();
    let _ = child.wait();

    let manifest = dir.path().join("recording.json");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace(Replay::RECORDING_FORMAT, "tryon-recording/0");
    std::fs::write(&manifest, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tryon-mock"))
        .args(["--port", "0", "--replay"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"tryon-recording/0\" is not supported"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_recording_naming_a_file_outside_itself_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    small_recording(dir.path(), None).await;
    let output = dir.path().join("exchanges/000005.json");
    let text = std::fs::read_to_string(&output).unwrap();
    let name = text
        .split("\"file\": \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let hex = &name["images/".len().."images/".len() + 64];
    std::fs::write(
        &output,
        text.replace(&name, &format!("images/{hex}.png/../../../../etc/passwd")),
    )
    .unwrap();
    let e = Replay::start(ReplayOptions::new(dir.path()), loopback())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("exchanges/000005.json") && e.contains("is not an images/<sha256>.<ext> name"),
        "{e}"
    );
}

#[tokio::test]
async fn the_replay_clock_is_the_mock_control_api_with_its_token_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    small_recording(dir.path(), None).await;
    let mut options = ReplayOptions::new(dir.path());
    options.virtual_time = true;
    options.control_token = Some("tok".to_string());
    let replay = Replay::start(options, loopback()).await.unwrap();
    let base = replay.uri();
    let advance = |token: Option<&str>, seconds: f64| {
        let mut r = common::client()
            .post(format!("{base}/__mock/advance"))
            .json(&json!({ "seconds": seconds }));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(advance(None, 1.0).await.unwrap().status().as_u16(), 401);
    let r = advance(Some("tok"), 2.5).await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["now"], 2.5);
    let r = advance(Some("tok"), -1.0).await.unwrap();
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.text().await.unwrap().contains("seconds: -1 given"));
    assert_eq!(replay.clock().now(), Duration::from_millis(2500));
    assert_eq!(common::health(&base).await, 200);
    for path in ["/__mock/request_log", "/__mock/journal"] {
        let r = common::client()
            .get(format!("{base}{path}"))
            .bearer_auth("tok")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
}
