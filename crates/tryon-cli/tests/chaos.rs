//! The chaos suite: the real `tryon` binary against the standalone mock
//! (`tryon mock --port 0`), broken on purpose, then rerun without and with
//! `--resubmit-ambiguous`. Billing truth comes from the mock's control API
//! (`/__mock/billing`, `/__mock/request_log`), never from the CLI's own account.
//!
//! Scenarios: SIGKILL after each of the first journal writes (the binary's
//! `TRYON_CHAOS_KILL_AFTER_JOURNAL_WRITES` hook) and at random points from
//! outside; the journal truncated at every byte offset; stdout and stderr
//! closed early; a full disk (`RLIMIT_FSIZE`); the same manifest run under
//! other spellings of its path.
//!
//! Invariants checked after the final rerun of each scenario:
//! 1. every row completed exactly once: its output exists and decodes, and
//!    the journal holds exactly one request id for it, used by no other row;
//! 2. the mock billed one submit per row, plus at most one per row that was
//!    resubmitted with `--resubmit-ambiguous` while the journal could not
//!    prove it (intent recorded, no request id);
//! 3. every request id the mock was asked about is in the journal;
//! 4. nothing panicked: no run exits 101 or prints `panicked`, nor does the
//!    mock.
//!
//! Each test writes its part of the scenario table straight to stdout, past
//! the test harness's capture, so `cargo test` shows it on success too
//! (`cargo test -p tryon-cli --test chaos` for this suite alone).

// Helpers, like tests, fail by panicking.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use rand::{RngExt as _, SeedableRng as _, rngs::StdRng};
use serde_json::Value;

const TRYON: &str = env!("CARGO_BIN_EXE_tryon");
/// The binary's test hook: SIGKILL itself right after its N-th journal
/// record is on disk.
const KILL_HOOK: &str = "TRYON_CHAOS_KILL_AFTER_JOURNAL_WRITES";
const JOURNAL: &str = "tryon-journal.jsonl";
/// Rows of the manifest in every scenario but the truncated journal.
const ROWS: usize = 6;
/// Rows of the run whose journal is truncated at every byte (each offset is
/// one rerun, so this bounds the scenario's length).
const CUT_ROWS: usize = 3;
/// Cases run at once: the runs mostly wait on the mock's stages.
const WORKERS: usize = 6;
/// A scenario stops looking after this many problems (fail fast).
const ENOUGH_PROBLEMS: usize = 3;

// ---- the standalone mock ------------------------------------------------

/// `tryon mock --port 0`, its stderr log drained into memory.
struct Mock {
    child: Child,
    addr: String,
    url: String,
    log: Arc<Mutex<String>>,
    _stdout: BufReader<ChildStdout>,
}

/// The mock's first stdout line: its base URL, or `{"url": ...}`.
fn base_url(line: &str) -> String {
    let line = line.trim();
    serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|v| v["url"].as_str().map(str::to_string))
        .unwrap_or_else(|| line.to_string())
}

impl Mock {
    fn start() -> Self {
        Self::spawn(&["mock", "--port", "0"])
    }

    /// `tryon ARGS`, a server that prints its URL first (a mock, a proxy).
    fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(TRYON)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tryon mock starts");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut first = String::new();
        stdout
            .read_line(&mut first)
            .expect("the mock prints its URL");
        let url = base_url(&first);
        let addr = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("not an http URL: {first:?}"))
            .trim_end_matches('/')
            .to_string();
        Self {
            child,
            addr,
            url,
            log,
            _stdout: stdout,
        }
    }

    /// GET a control endpoint; its JSON body.
    fn get(&self, path: &str) -> Value {
        let mut stream = TcpStream::connect(&self.addr).expect("the mock accepts");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).expect("send");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read the answer");
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("GET {path}: not HTTP: {text}"));
        assert!(head.contains(" 200 "), "GET {path}: {head}");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// POST a JSON body to a control endpoint; its answer's status line.
    fn post(&self, path: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(&self.addr).expect("the mock accepts");
        write!(
            stream,
            "POST {path} HTTP/1.0\r\nHost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .expect("send");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read the answer");
        let text = String::from_utf8_lossy(&raw);
        text.lines().next().unwrap_or_default().to_string()
    }

    /// Submits billed to `key`.
    fn billed(&self, key: &str) -> u64 {
        self.get(&format!("/__mock/billing?key={key}"))["billed_submits_for_key"]
            .as_u64()
            .expect("billing has billed_submits_for_key")
    }

    /// Every request id the mock's request log shows: a `request_id` field when
    /// it has one, and the ids in status, result and output paths.
    fn seen_ids(&self) -> BTreeSet<String> {
        let log = self.get("/__mock/request_log");
        let entries = log.as_array().expect("the request log is an array");
        let mut ids = BTreeSet::new();
        for entry in entries {
            if let Some(id) = entry["request_id"].as_str() {
                ids.insert(id.to_string());
            }
            let path = entry["path"].as_str().unwrap_or_default();
            let rest = path
                .strip_prefix("/v2/requests/")
                .or_else(|| path.strip_prefix("/v1/requests/"))
                .or_else(|| path.strip_prefix("/outputs/"));
            if let Some(id) = rest.and_then(|r| r.split(['/', '.']).next())
                && !id.is_empty()
            {
                ids.insert(id.to_string());
            }
        }
        ids
    }

    fn panicked(&self) -> bool {
        self.log.lock().unwrap().contains("panicked")
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- one scenario case: a manifest, an output folder, its runs ----------

/// The person and garment images every manifest names, by absolute path so
/// that a manifest (and its rows' fingerprints) is the same in every folder.
/// Small, so the debug-built mock renders outputs quickly.
fn inputs() -> &'static (PathBuf, PathBuf) {
    static INPUTS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-inputs");
        std::fs::create_dir_all(&dir).unwrap();
        let person = dir.join("person.png");
        let garment = dir.join("garment.png");
        image::RgbImage::from_pixel(24, 36, image::Rgb([200, 150, 120]))
            .save(&person)
            .unwrap();
        image::RgbImage::from_pixel(16, 16, image::Rgb([20, 60, 200]))
            .save(&garment)
            .unwrap();
        (person, garment)
    })
}

/// What one run of `tryon` did.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// One line of the scenario table.
struct Verdict {
    scenario: String,
    runs: usize,
    billed: u64,
    rows: String,
    problems: Vec<String>,
    /// Said after `ok`: what the invariants allowed.
    note: Option<String>,
}

/// A manifest in a fresh folder, run against a mock under its own API key
/// (so the mock's per-key billing is this case's alone).
struct Case<'m> {
    name: String,
    mock: &'m Mock,
    dir: tempfile::TempDir,
    key: String,
    rows: Vec<String>,
    runs: usize,
    /// Rows a plain rerun left with their intent journaled and no request
    /// id, settled by a later rerun once the history had landed past them.
    unproven: BTreeSet<String>,
    problems: Vec<String>,
}

impl<'m> Case<'m> {
    fn new(name: impl Into<String>, mock: &'m Mock, rows: usize) -> Self {
        let name = name.into();
        let dir = tempfile::tempdir().unwrap();
        let (person, garment) = inputs();
        let mut manifest = String::new();
        let ids: Vec<String> = (1..=rows).map(|i| format!("r{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            let row = serde_json::json!({
                "id": id, "person": person, "garments": [garment], "seed": i,
            });
            writeln!(manifest, "{row}").unwrap();
        }
        std::fs::write(dir.path().join("m.jsonl"), manifest).unwrap();
        let key = format!(
            "sk-chaos-{}",
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        );
        Self {
            name,
            mock,
            dir,
            key,
            rows: ids,
            runs: 0,
            unproven: BTreeSet::new(),
            problems: Vec::new(),
        }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// `tryon --json --base-url URL batch m.jsonl --out-dir out` and `extra`.
    fn argv(&self, extra: &[&str]) -> Vec<OsString> {
        self.argv_for("m.jsonl", "out", extra)
    }

    /// [`Case::argv`] with the manifest and the output folder spelled so.
    fn argv_for(&self, manifest: &str, out: &str, extra: &[&str]) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec![TRYON.into()];
        argv.extend(
            [
                "--json",
                "--base-url",
                &self.mock.url,
                "batch",
                manifest,
                "--out-dir",
                out,
            ]
            .iter()
            .chain(extra)
            .map(OsString::from),
        );
        argv
    }

    /// Name the images relatively: copied beside the manifest, so that how
    /// the manifest's path is typed is how they are joined.
    fn relative_images(&self) {
        let (person, garment) = inputs();
        std::fs::copy(person, self.dir.path().join("person.png")).unwrap();
        std::fs::copy(garment, self.dir.path().join("garment.png")).unwrap();
        let mut manifest = String::new();
        for (i, id) in self.rows.iter().enumerate() {
            let row = serde_json::json!({
                "id": id, "person": "person.png", "garments": ["garment.png"], "seed": i,
            });
            writeln!(manifest, "{row}").unwrap();
        }
        std::fs::write(self.dir.path().join("m.jsonl"), manifest).unwrap();
    }

    /// A command running `argv` in the case's folder with its key.
    fn command(&self, argv: &[OsString]) -> Command {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .current_dir(self.dir.path())
            .env("SEGMIND_API_KEY", &self.key)
            .env_remove("RUST_LOG")
            .env_remove(KILL_HOOK)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn batch(&self, extra: &[&str]) -> Command {
        self.command(&self.argv(extra))
    }

    fn problem(&mut self, text: String) {
        self.problems.push(text);
    }

    /// Wait for a run and check it did not panic.
    fn finish(&mut self, child: Child) -> Ran {
        let output = child.wait_with_output().expect("wait for tryon");
        self.runs += 1;
        let ran = Ran {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        if ran.status.code() == Some(101) || ran.stderr.contains("panicked") {
            let run = self.runs;
            self.problem(format!(
                "run {run} panicked ({}): {}",
                ran.status,
                tail(&ran.stderr)
            ));
        }
        ran
    }

    fn run(&mut self, mut cmd: Command) -> Ran {
        let child = cmd.spawn().expect("tryon starts");
        self.finish(child)
    }

    /// The journal's lines that parse as JSON objects (loosely: any line
    /// with a `row` and a `request_id` ties the two).
    fn journal(&self) -> Vec<Value> {
        let text = std::fs::read(self.out().join(JOURNAL)).unwrap_or_default();
        String::from_utf8_lossy(&text)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            // A run's own records (`started`, `alive`) name no row.
            .filter(|l| l["row"].as_str().is_none_or(|r| !r.is_empty()))
            .collect()
    }

    fn ids_by_row(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in self.journal() {
            if let (Some(row), Some(id)) = (line["row"].as_str(), line["request_id"].as_str()) {
                ids.entry(row.to_string())
                    .or_default()
                    .insert(id.to_string());
            }
        }
        ids
    }

    /// Where a row's image is: the journal's `output`, else `out/<row>.png`.
    fn output_of(&self, row: &str) -> PathBuf {
        self.journal()
            .iter()
            .rev()
            .find(|l| l["row"].as_str() == Some(row))
            .and_then(|l| l["output"].as_str().map(PathBuf::from))
            .map_or_else(
                || self.out().join(format!("{row}.png")),
                |p| self.dir.path().join(p),
            )
    }

    /// Rows whose intent the journal records without a request id and
    /// whose output does not exist: what `--resubmit-ambiguous` may send
    /// again.
    fn unproven_rows(&self) -> BTreeSet<String> {
        let ids = self.ids_by_row();
        let journal = self.journal();
        self.rows
            .iter()
            .filter(|row| {
                journal
                    .iter()
                    .any(|l| l["row"].as_str() == Some(row.as_str()))
                    && !ids.contains_key(*row)
                    && !self.output_of(row).exists()
            })
            .cloned()
            .collect()
    }

    /// After the chaos: plain reruns only, settling with the account's
    /// history. A row whose intent is journaled without an id is proven
    /// unbilled only once the history lists a request made after its run
    /// stopped (and the clock margin): when a rerun leaves such rows, a
    /// later request of the account is placed in the history, as other
    /// traffic would put it there by the time a user reruns, and the batch
    /// is rerun, still without a flag.
    fn recover(&mut self) {
        self.run(self.batch(&[]));
        if !self.unproven_rows().is_empty() {
            self.unproven.extend(self.unproven_rows());
            let later = jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_mins(10))
                .unwrap();
            let status = self.mock.post(
                "/__mock/history",
                &serde_json::json!({"key": self.key, "created_at": later.to_string()}).to_string(),
            );
            if !status.contains(" 200 ") {
                self.problem(format!("placing a later request: {status}"));
            }
            self.run(self.batch(&[]));
        }
        let last = self.run(self.batch(&[]));
        if !last.status.success() {
            self.problem(format!(
                "the final rerun exited {}: {}",
                last.status,
                tail(&last.stderr)
            ));
        }
    }

    /// Check the invariants against the mock's billing.
    fn verdict(mut self) -> Verdict {
        let billed = self.mock.billed(&self.key);
        let ids = self.ids_by_row();
        let mut completed = 0;
        let mut owners: BTreeMap<&String, &String> = BTreeMap::new();
        for row in &self.rows {
            let out = self.output_of(row);
            let decodes = image::open(&out).is_ok();
            let row_ids = ids.get(row).map_or(0, BTreeSet::len);
            if decodes && row_ids == 1 {
                completed += 1;
            } else {
                self.problems.push(format!(
                    "row {row}: output {} {}, {row_ids} request ids in the journal",
                    out.display(),
                    if decodes { "decodes" } else { "missing or bad" }
                ));
            }
            for id in ids.get(row).into_iter().flatten() {
                if let Some(other) = owners.insert(id, row) {
                    self.problems.push(format!(
                        "request id {id} journaled for rows {other} and {row}"
                    ));
                }
            }
        }
        let rows = self.rows.len() as u64;
        if billed != rows {
            self.problems.push(format!(
                "billed {billed} for {rows} rows (settled by the history after their intent: {:?})",
                self.unproven
            ));
        }
        let journaled: BTreeSet<&String> = ids.values().flatten().collect();
        let seen = self.mock.seen_ids();
        let lost: Vec<&String> = seen.iter().filter(|id| !journaled.contains(id)).collect();
        if !lost.is_empty() {
            self.problems.push(format!(
                "request ids the mock saw, missing from the journal: {lost:?}"
            ));
        }
        if self.mock.panicked() {
            self.problems.push("the mock panicked".into());
        }
        let twice = billed.saturating_sub(rows);
        Verdict {
            scenario: self.name,
            runs: self.runs,
            billed,
            rows: format!("{completed}/{rows}"),
            problems: self.problems,
            note: (twice > 0).then(|| format!("{twice} billed twice")),
        }
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
}

/// Run `f` on every item, `WORKERS` at a time; results in order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    thread::scope(|s| {
        for _ in 0..WORKERS.min(items.len()) {
            s.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(index) else { break };
                    let result = f(item);
                    results.lock().unwrap()[index] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

/// Print the table, then fail if any scenario broke an invariant.
fn report(title: &str, verdicts: &[Verdict]) {
    let mut table = format!(
        "\n{title}\n\n| scenario | runs | billed | rows | verdict |\n|---|---|---|---|---|\n"
    );
    for v in verdicts {
        let verdict = match (v.problems.first(), &v.note) {
            (Some(p), _) => format!("FAIL: {p}"),
            (None, Some(note)) => format!("ok ({note})"),
            (None, None) => "ok".to_string(),
        };
        writeln!(
            table,
            "| {} | {} | {} | {} | {} |",
            v.scenario,
            v.runs,
            v.billed,
            v.rows,
            verdict.replace('|', "/")
        )
        .unwrap();
    }
    // Past the harness's capture: the table is the suite's report.
    let _ = std::io::stdout().lock().write_all(table.as_bytes());
    let failures: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.problems.is_empty())
        .map(|v| format!("{}:\n  {}", v.scenario, v.problems.join("\n  ")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A case with its own mock: chaos, then [`Case::recover`], then the verdict.
fn scenario(name: &str, chaos: impl FnOnce(&mut Case<'_>)) -> Verdict {
    let mock = Mock::start();
    let mut case = Case::new(name, &mock, ROWS);
    chaos(&mut case);
    case.recover();
    case.verdict()
}

// ---- scenarios ----------------------------------------------------------

/// How many records a full run of `ROWS` rows writes (bounded).
fn records_of_a_full_run() -> (Verdict, usize) {
    let mock = Mock::start();
    let mut case = Case::new("no chaos (baseline)", &mock, ROWS);
    let ran = case.run(case.batch(&[]));
    assert!(ran.status.success(), "{}{}", ran.stdout, ran.stderr);
    let records = case.journal().len();
    (case.verdict(), records.min(4 * ROWS))
}

#[test]
fn sigkill_after_each_journal_write() {
    let (baseline, records) = records_of_a_full_run();
    let writes: Vec<usize> = (1..=records).collect();
    let mut verdicts = vec![baseline];
    verdicts.extend(parallel(&writes, |&n| {
        scenario(&format!("kill -9 after journal write {n}"), |case| {
            let mut cmd = case.batch(&[]);
            cmd.env(KILL_HOOK, n.to_string());
            let ran = case.run(cmd);
            if ran.status.signal() != Some(9) {
                case.problem(format!(
                    "not killed by {KILL_HOOK}={n} ({}): the hook is missing",
                    ran.status
                ));
            } else if case.journal().len() != n {
                let found = case.journal().len();
                case.problem(format!(
                    "killed after write {n}, journal has {found} records"
                ));
            }
        })
    }));
    report("SIGKILL after each journal write", &verdicts);
}

/// The case that matters most: the mock accepts and bills the first two
/// submits and then drops their connections (their answers lost), and the
/// run is killed after a journal write while submits are in flight; then
/// plain reruns settle every row with the account's history: each
/// completed once, billed == rows.
#[test]
fn lost_answers_and_sigkill_then_plain_reruns() {
    let writes = [2_usize, 4, 6, 8, 10];
    let verdicts = parallel(&writes, |&n| {
        scenario(
            &format!("2 answers lost (drop_after_accept), kill -9 after journal write {n}"),
            |case| {
                let status = case.mock.post(
                    "/__mock/faults",
                    r#"{"route":"submit","kind":"drop_after_accept","times":2}"#,
                );
                if !status.contains(" 200 ") {
                    case.problem(format!("adding the fault: {status}"));
                }
                let mut cmd = case.batch(&[]);
                cmd.env(KILL_HOOK, n.to_string());
                let ran = case.run(cmd);
                if ran.status.signal() != Some(9) {
                    case.problem(format!("not killed by {KILL_HOOK}={n} ({})", ran.status));
                }
            },
        )
    });
    report("Lost answers and SIGKILL, then plain reruns", &verdicts);
}

#[test]
fn sigkill_at_random_points() {
    let mut rng = StdRng::seed_from_u64(0x00C0_FFEE);
    // Progress lines on stderr: one `submitted` and one `completed` per row.
    let mut points: Vec<(bool, u64)> = (0..4)
        .map(|_| (true, rng.random_range(1..=2 * ROWS as u64)))
        .collect();
    points.extend((0..2).map(|_| (false, rng.random_range(50..=1500))));
    let verdicts = parallel(&points, |&(on_line, at)| {
        let name = if on_line {
            format!("kill -9 after stderr line {at}")
        } else {
            format!("kill -9 after {at} ms")
        };
        scenario(&name, |case| {
            let mut child = case.batch(&[]).spawn().expect("tryon starts");
            if on_line {
                let stderr = child.stderr.take().expect("stderr is piped");
                let mut lines = BufReader::new(stderr).lines();
                for _ in 0..at {
                    if lines.next().is_none() {
                        break;
                    }
                }
            } else {
                thread::sleep(Duration::from_millis(at));
            }
            let _ = child.kill();
            case.finish(child);
        })
    });
    report("SIGKILL at random points", &verdicts);
}

#[test]
fn stdout_and_stderr_closed_early() {
    let closes = [(true, false), (false, true), (true, true)];
    let verdicts = parallel(&closes, |&(stdout, stderr)| {
        let name = match (stdout, stderr) {
            (true, false) => "stdout closed",
            (false, true) => "stderr closed",
            _ => "stdout and stderr closed",
        };
        scenario(name, |case| {
            let mut child = case.batch(&[]).spawn().expect("tryon starts");
            if stdout {
                drop(child.stdout.take());
            }
            if stderr {
                drop(child.stderr.take());
            }
            case.finish(child);
        })
    });
    report("stdout and stderr closed early", &verdicts);
}

/// The byte size of a `ulimit -f` block in `sh` (512 in dash and POSIX).
fn ulimit_block() -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    let status = Command::new("sh")
        .args([
            "-c",
            r#"trap "" XFSZ; ulimit -f 1; head -c 100000 /dev/zero > "$0""#,
        ])
        .arg(&probe)
        .stderr(Stdio::null())
        .status()
        .expect("sh runs");
    let _ = status;
    std::fs::metadata(&probe).map_or(0, |m| m.len())
}

#[test]
fn full_disk_then_rerun() {
    let block = ulimit_block();
    assert!(block > 0, "cannot measure ulimit -f blocks");
    // Journal records are ~200 bytes and outputs a few KiB: these limits
    // fail the journal at different records and the image save.
    let blocks: [u64; 6] = [0, 1, 2, 4, 8, 32];
    let verdicts = parallel(&blocks, |&n| {
        scenario(&format!("file size limit {} bytes", n * block), |case| {
            let mut argv: Vec<OsString> = [
                "sh",
                "-c",
                r#"trap "" XFSZ; ulimit -f "$1"; shift; exec "$@""#,
                "sh",
            ]
            .iter()
            .map(OsString::from)
            .collect();
            argv.push(n.to_string().into());
            argv.extend(case.argv(&[]));
            case.run(case.command(&argv));
        })
    });
    report("full disk (RLIMIT_FSIZE), then rerun", &verdicts);
}

/// Issue 18, item 1: the same manifest, its images named relatively, run
/// under four spellings of its path while the first submit's answer is
/// lost (accepted and billed, the connection closed): no spelling may
/// send a row again (before the fix each new spelling billed every row
/// again).
#[test]
fn the_same_manifest_under_other_spellings() {
    let verdict = scenario(
        "same manifest as m.jsonl, ./m.jsonl, DIR/m.jsonl from the parent and /abs/DIR/m.jsonl; first submit's answer lost",
        |case| {
            case.relative_images();
            let armed = case.mock.post(
                "/__mock/faults",
                r#"{"route":"submit","kind":"drop_after_accept","times":1}"#,
            );
            if !armed.contains(" 200 ") {
                case.problem(format!("the fault was not armed: {armed}"));
            }
            let folder = case.dir.path().to_path_buf();
            let name = folder.file_name().unwrap().to_string_lossy().into_owned();
            let parent = folder.parent().unwrap().to_path_buf();
            let absolute = folder.join("m.jsonl").display().to_string();
            let absolute_out = folder.join("out").display().to_string();
            let from_parent = (format!("{name}/m.jsonl"), format!("{name}/out"));
            let spellings = [
                ("./m.jsonl", "./out", &folder),
                (from_parent.0.as_str(), from_parent.1.as_str(), &parent),
                (absolute.as_str(), absolute_out.as_str(), &parent),
            ];
            case.run(case.batch(&[]));
            let billed = case.mock.billed(&case.key);
            for (manifest, out, cwd) in spellings {
                let mut cmd = case.command(&case.argv_for(manifest, out, &[]));
                cmd.current_dir(cwd);
                case.run(cmd);
                let now = case.mock.billed(&case.key);
                if now != billed {
                    case.problem(format!("batch {manifest} billed {} more", now - billed));
                }
            }
        },
    );
    report("the same manifest under other spellings", &[verdict]);
}

#[test]
fn journal_truncated_at_every_byte() {
    let mock = Mock::start();
    let mut base = Case::new("journal cut", &mock, CUT_ROWS);
    let ran = base.run(base.batch(&[]));
    assert!(ran.status.success(), "{}{}", ran.stdout, ran.stderr);
    let journal = std::fs::read(base.out().join(JOURNAL)).unwrap();
    let outputs: Vec<PathBuf> = std::fs::read_dir(base.out())
        .unwrap()
        .map(|e| e.unwrap().path())
        // The outputs (and the report page): not the journal, nor the
        // report's folder.
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != JOURNAL))
        .collect();
    let offsets: Vec<usize> = (0..=journal.len()).collect();
    let (refused, found) = (AtomicUsize::new(0), Mutex::new(Vec::new()));
    let billed = parallel(&offsets, |&offset| {
        if found.lock().unwrap().len() >= ENOUGH_PROBLEMS {
            return None;
        }
        let mut case = Case::new(format!("cut-{offset}"), &mock, CUT_ROWS);
        std::fs::create_dir_all(case.out()).unwrap();
        for output in &outputs {
            std::fs::copy(output, case.out().join(output.file_name().unwrap())).unwrap();
        }
        std::fs::write(case.out().join(JOURNAL), &journal[..offset]).unwrap();
        let ran = case.run(case.batch(&[]));
        let line_named = ran
            .stderr
            .split("line ")
            .skip(1)
            .any(|s| s.starts_with(|c: char| c.is_ascii_digit()));
        // A cut inside a record damages the journal: a refusal names the
        // line. A cut between records leaves a shorter, sound journal: a
        // refusal (say, over outputs it has no record of) names a row.
        let mid_record = offset > 0 && journal[offset - 1] != b'\n';
        let row_named = case.rows.iter().any(|r| ran.stderr.contains(r.as_str()));
        if ran.status.code() == Some(2) {
            refused.fetch_add(1, Ordering::Relaxed);
            if !(line_named || (row_named && !mid_record)) {
                case.problem(format!(
                    "refused without naming a line: {}",
                    tail(&ran.stderr)
                ));
            }
        }
        let billed = mock.billed(&case.key);
        if billed > 0 {
            case.problem(format!("billed {billed} again though every output exists"));
        }
        found.lock().unwrap().extend(
            case.problems
                .iter()
                .map(|p| format!("cut at byte {offset}: {p}")),
        );
        Some(billed)
    });
    let runs = billed.iter().flatten().count();
    let total: u64 = billed.iter().flatten().sum::<u64>() + mock.billed(&base.key);
    let mut problems = found.into_inner().unwrap();
    if mock.panicked() {
        problems.push("the mock panicked".into());
    }
    let refused = refused.into_inner();
    let verdict = Verdict {
        scenario: format!(
            "journal ({} bytes) cut at every byte, rerun ({refused} refused)",
            journal.len()
        ),
        runs: runs + 1,
        billed: total,
        rows: format!("{}/{CUT_ROWS}", outputs.len()),
        problems,
        note: None,
    };
    report("journal truncated at every byte offset", &[verdict]);
}

// ---- through the validating proxy ---------------------------------------

#[test]
fn a_lost_answer_through_the_proxy_is_never_billed_again() {
    // The upstream bills the submit, then drops the connection: the answer
    // is lost between the upstream and the proxy. The proxy used to answer
    // 502 of its own, the batch journaled the row `rejected` ("not sent")
    // and the second run billed it again.
    let upstream = Mock::start();
    let added = upstream.post(
        "/__mock/faults",
        r#"{"route": "submit", "kind": "drop_after_accept", "times": 1}"#,
    );
    assert!(added.contains(" 200 "), "{added}");
    let proxy = Mock::spawn(&["mock", "--port", "0", "--proxy", &upstream.url]);
    let mut case = Case::new(
        "through the proxy: upstream drop_after_accept, two batch runs",
        &proxy,
        1,
    );
    case.run(case.batch(&[]));
    let events: Vec<String> = case
        .journal()
        .iter()
        .filter_map(|l| l["event"].as_str().map(str::to_string))
        .collect();
    if !events.iter().any(|e| e == "ambiguous") || events.iter().any(|e| e == "rejected") {
        case.problem(format!(
            "the lost answer was journaled {events:?}, not ambiguous"
        ));
    }
    case.run(case.batch(&[]));
    let billed = upstream.billed(&case.key);
    if billed != 1 {
        case.problem(format!("billed {billed}, not 1"));
    }
    if upstream.panicked() || proxy.panicked() {
        case.problem("the upstream or the proxy panicked".into());
    }
    // The second run settles the lost answer with the account's history
    // (read through the proxy too) and follows the job it finds.
    let completed = usize::from(image::open(case.output_of("r1")).is_ok());
    if completed != 1 {
        case.problem("the second run did not complete the row from the history".into());
    }
    let verdict = Verdict {
        scenario: case.name.clone(),
        runs: case.runs,
        billed,
        rows: format!("{completed}/1"),
        problems: std::mem::take(&mut case.problems),
        note: Some("never sent again: the second run found it in the account's history".into()),
    };
    report("a lost answer through the validating proxy", &[verdict]);
}

#[test]
fn a_full_disk_leaves_no_part_files() {
    // A save that fails part way (here: EFBIG under RLIMIT_FSIZE, as a
    // full disk fails with ENOSPC) used to leave its `.NAME.XXXX.part`
    // temporary file behind, empty or cut short.
    let mock = Mock::start();
    let mut case = Case::new("part files", &mock, 1);
    // Images the mock does not hold: it renders an output of its default
    // size, far over one block of the file-size limit.
    let argv: Vec<OsString> = [
        "sh",
        "-c",
        r#"trap "" XFSZ; ulimit -f 1; exec "$@""#,
        "sh",
        TRYON,
        "--base-url",
        &mock.url,
        "run",
        "--person",
        "https://example.com/p.jpg",
        "--garment",
        "https://example.com/g.jpg",
        "-o",
        "out.png",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let ran = case.run(case.command(&argv));
    assert_eq!(ran.status.code(), Some(6), "{}", ran.stderr);
    let parts: Vec<String> = std::fs::read_dir(case.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            Path::new(n)
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("part"))
        })
        .collect();
    assert!(parts.is_empty(), "left behind: {parts:?}");
}

#[test]
fn a_wrong_key_on_large_rows_leaves_no_row_ambiguous() {
    // The mock refuses the key before it reads a 2 MB body; it used to
    // close with the body unread, the connection was reset, and rows never
    // billed were journaled `ambiguous` (2 of 20), not `rejected`.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keys.toml");
    std::fs::write(&config, "keys = [\"sk-good\"]\n").unwrap();
    let mock = Mock::spawn(&["mock", "--port", "0", "--config", config.to_str().unwrap()]);
    let case = Case::new("wrong key, 20 large rows", &mock, 20);
    // An 800 KB photo (noise does not compress) as person and garment.
    let photo = case.dir.path().join("big.png");
    let noise: Vec<u8> = (0..600u32 * 450 * 3)
        .map(|i| u8::try_from(i.wrapping_mul(2_654_435_761) >> 24).unwrap())
        .collect();
    image::RgbImage::from_raw(600, 450, noise)
        .unwrap()
        .save(&photo)
        .unwrap();
    assert!(std::fs::metadata(&photo).unwrap().len() > 700_000);
    let mut manifest = String::new();
    for id in &case.rows {
        let row = serde_json::json!({"id": id, "person": photo, "garments": [photo]});
        writeln!(manifest, "{row}").unwrap();
    }
    std::fs::write(case.dir.path().join("m.jsonl"), manifest).unwrap();
    let mut case = case;
    let ran = case.run(case.batch(&[]));
    assert_eq!(ran.status.code(), Some(3), "{}", ran.stderr);
    let events: Vec<(String, String)> = case
        .journal()
        .iter()
        .map(|l| {
            (
                l["row"].as_str().unwrap_or_default().to_string(),
                l["event"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let ambiguous: Vec<&(String, String)> =
        events.iter().filter(|(_, e)| e == "ambiguous").collect();
    assert!(
        ambiguous.is_empty(),
        "never-billed rows left ambiguous: {ambiguous:?}"
    );
    // A 401 stops the batch; every row it sent is journaled refused.
    let count = |kind: &str| events.iter().filter(|(_, e)| e == kind).count();
    assert!(count("submitting") >= 1, "{events:?}");
    assert_eq!(count("rejected"), count("submitting"), "{events:?}");
    assert_eq!(mock.get("/__mock/billing")["billed_submits"], 0);
}
