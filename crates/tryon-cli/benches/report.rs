//! The batch report at scale: a real 10,000-row `tryon batch` against the
//! in-process mock (zero-length stages; local inputs: 20 people and 200
//! garments, 1 to 3 garments a row; every 50th job FAILED by a fail rule),
//! then its page opened in Debian's headless Chromium.
//!
//! Reports the page's size, the thumbnails', how long `tryon report DIR`
//! takes with its thumbnails cached and with them made again, and in
//! Chromium (median of 5 runs, from the report frame's own navigation
//! timing): the page loaded (`loadEventEnd`), loaded and laid out in full
//! (a forced layout after load), a filter applied (a click on "failed",
//! then layout) and the jump to the last row. Then, with the folder served
//! on loopback (the only way to count what a browser fetches: it keeps no
//! timing of `file://` loads), how many thumbnails the page had fetched
//! once loaded, and whether scrolling to the last row fetched that row's.
//! Without Chromium the browser rows are left out.
//!
//! `cargo bench -p tryon-cli --bench report`
#![allow(clippy::print_stdout, reason = "a bench binary prints its table")]
#![allow(clippy::cast_precision_loss, reason = "figures for people")]

#[allow(dead_code, reason = "the bench uses the driver, not the test harness")]
#[path = "../tests/report/browser.rs"]
mod browser;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tryon_mock::{FailRule, JobMatch, MockServer};

const ROWS: usize = 10_000;

/// The rows to run: [`ROWS`], or `TRYON_BENCH_ROWS` for a quick try of the
/// bench itself (its figures are for 10,000).
fn rows() -> usize {
    std::env::var("TRYON_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROWS)
}
const PEOPLE: usize = 20;
const GARMENTS: usize = 200;
const CONCURRENCY: &str = "64";
const BROWSER_RUNS: usize = 5;
const KEY: &str = "sk-bench";

/// The report frame's timings, as the harness measures them.
const TIMINGS: &str = r"
    const w = f.contentWindow, d = f.contentDocument;
    const nav = w.performance.getEntriesByType('navigation')[0];
    const height = d.documentElement.scrollHeight;
    const laid_out = w.performance.now();
    let t = w.performance.now();
    d.getElementById('f-failed').click();
    d.documentElement.scrollHeight;
    const filter = w.performance.now() - t;
    d.getElementById('f-all').click();
    d.documentElement.scrollHeight;
    t = w.performance.now();
    w.scrollTo(0, height);
    d.documentElement.getBoundingClientRect();
    const jump = w.performance.now() - t;
    out.textContent = hex(JSON.stringify({
      dom_interactive: nav.domInteractive, load: nav.loadEventEnd, laid_out, filter, jump,
      rows: d.querySelectorAll('section.r').length, height,
      failed: d.querySelectorAll('section.r.failed').length,
    }));
";

/// Counts the thumbnails fetched: once the page has loaded and settled,
/// then after a scroll to the last row (`/__count`, `/__fetched/NAME` are
/// the bench server's). Real time, real frames: the harness holds its own
/// load event (an image of `/__wait`, answered once `/__done` is asked) so
/// that `--dump-dom` waits for the result.
const DEFERRED: &str = r"
    const w = f.contentWindow, d = f.contentDocument;
    const count = async () => Number(await (await fetch('/__count')).text());
    const frames = async n => { for (let i = 0; i < n; i++) await new Promise(r => w.requestAnimationFrame(r)); };
    await frames(10);
    const loaded = await count();
    const last = d.querySelector('section.r:last-of-type');
    last.scrollIntoView();
    await frames(10);
    await new Promise(r => setTimeout(r, 1000));
    const names = [...last.querySelectorAll('.im')]
      .map(b => /url\(.?(.*?).?\)$/.exec(getComputedStyle(b).backgroundImage)[1].split('/').pop());
    const fetched = [];
    for (const n of names) fetched.push((await (await fetch('/__fetched/' + n)).text()) === '1');
    out.textContent = hex(JSON.stringify({
      loaded, after: await count(), names, fetched,
      boxes: d.querySelectorAll('.im').length,
    }));
    await fetch('/__done');
";

/// The report's folder on loopback, for [`DEFERRED`]: files under it,
/// the harness, and what was fetched of `.tryon-report/thumbs/`.
struct Served {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    fn start(dir: PathBuf, harness: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let fetched: Arc<Mutex<HashSet<String>>> = Arc::default();
        let done: Arc<(Mutex<bool>, Condvar)> = Arc::default();
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (dir, harness) = (dir.clone(), harness.clone());
                    let (fetched, done) = (Arc::clone(&fetched), Arc::clone(&done));
                    std::thread::spawn(move || answer(stream, &dir, &harness, &fetched, &done));
                }
            })
        };
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request: `GET /PATH`, answered and closed.
fn answer(
    mut stream: TcpStream,
    dir: &Path,
    harness: &str,
    fetched: &Mutex<HashSet<String>>,
    done: &(Mutex<bool>, Condvar),
) {
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let seen = |f: &Mutex<HashSet<String>>| f.lock().expect("the fetched set").clone();
    let (kind, body): (&str, Vec<u8>) = if path == "/__harness.html" {
        ("text/html", harness.as_bytes().to_vec())
    } else if path == "/__wait" {
        let (lock, wake) = done;
        let finished = lock.lock().expect("the done flag");
        let _ = wake.wait_timeout_while(finished, Duration::from_mins(2), |f| !*f);
        ("text/plain", Vec::new())
    } else if path == "/__done" {
        *done.0.lock().expect("the done flag") = true;
        done.1.notify_all();
        ("text/plain", Vec::new())
    } else if path == "/__count" {
        ("text/plain", seen(fetched).len().to_string().into_bytes())
    } else if let Some(name) = path.strip_prefix("/__fetched/") {
        let found = seen(fetched).contains(name);
        (
            "text/plain",
            if found { b"1".to_vec() } else { b"0".to_vec() },
        )
    } else if path.contains("..") {
        ("text/plain", Vec::new())
    } else {
        if let Some(name) = path.strip_prefix("/.tryon-report/thumbs/") {
            fetched
                .lock()
                .expect("the fetched set")
                .insert(name.to_string());
        }
        let html = Path::new(&path)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("html"));
        let kind = if html { "text/html" } else { "image/jpeg" };
        (
            kind,
            std::fs::read(dir.join(path.trim_start_matches('/'))).unwrap_or_default(),
        )
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(&body));
}

/// Inputs of a few colours: `count` tinted, resized copies of `source`.
fn variants(source: &Path, dir: &Path, stem: &str, count: usize, size: (u32, u32)) -> Vec<PathBuf> {
    let base = image::open(source)
        .expect("a sample image")
        .resize_to_fill(size.0, size.1, image::imageops::FilterType::Triangle)
        .to_rgb8();
    (0..count)
        .map(|i| {
            let mut image = base.clone();
            let shift = u8::try_from(i * 37 % 256).unwrap_or(0);
            for pixel in image.pixels_mut() {
                pixel.0[0] = pixel.0[0].wrapping_add(shift);
            }
            let path = dir.join(format!("{stem}-{i}.jpg"));
            image.save(&path).expect("an input written");
            path
        })
        .collect()
}

fn manifest(dir: &Path) -> PathBuf {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets");
    let people = variants(
        &assets.join("person.png"),
        dir,
        "person",
        PEOPLE,
        (300, 400),
    );
    let garments = variants(
        &assets.join("garment.png"),
        dir,
        "garment",
        GARMENTS,
        (200, 200),
    );
    let mut csv = String::from("id,person,garments,prompt,format\n");
    for row in 0..rows() {
        let chosen: Vec<String> = (0..=row % 3)
            .map(|g| {
                garments[(row * 7 + g * 13) % GARMENTS]
                    .display()
                    .to_string()
            })
            .collect();
        let prompt = if row % 10 == 0 { "the outer layer" } else { "" };
        let _ = writeln!(
            csv,
            "sku-{row:05},{},{},{prompt},jpg",
            people[row % PEOPLE].display(),
            chosen.join("|")
        );
    }
    let path = dir.join("catalog.csv");
    std::fs::write(&path, csv).expect("manifest written");
    path
}

fn tryon() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tryon"));
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Run `cmd` to its end: its wall time; panics with its output if it fails
/// with a code other than `expected`.
fn timed(mut cmd: Command, expected: i32) -> Duration {
    let started = Instant::now();
    let out = cmd.output().expect("it runs");
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(expected),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn folder_bytes(dir: &Path) -> (usize, u64) {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().fold((0, 0), |(n, bytes), e| {
                (n + 1, bytes + e.metadata().map_or(0, |m| m.len()))
            })
        })
        .unwrap_or_default()
}

/// Unix seconds of the journal's last record.
fn last_record(out_dir: &Path) -> Option<u64> {
    let journal = std::fs::read_to_string(out_dir.join("tryon-journal.jsonl")).ok()?;
    let last = journal.lines().last()?;
    serde_json::from_str::<serde_json::Value>(last).ok()?["at"].as_u64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = MockServer::builder()
        .stages(Duration::ZERO, Duration::ZERO)
        .workers(4)
        .output_size(384, 512)
        .fail(FailRule::new(
            JobMatch::EveryNth(50),
            "Content blocked by the safety filter: the garment image was flagged",
        ))
        .start()
        .await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let manifest = manifest(dir.path());
    let out_dir = dir.path().join("out");
    let mut batch = tryon();
    batch
        .env("SEGMIND_API_KEY", KEY)
        .args(["--base-url", &server.uri(), "batch"])
        .arg(&manifest)
        .args(["--concurrency", CONCURRENCY, "--out-dir"])
        .arg(&out_dir);
    let batch_wall = tokio::task::spawn_blocking(move || timed(batch, 1))
        .await
        .expect("the batch");
    let ended = std::time::SystemTime::now();
    let tail = last_record(&out_dir).map(|at| {
        ended
            .duration_since(std::time::UNIX_EPOCH + Duration::from_secs(at))
            .unwrap_or_default()
    });
    let page = out_dir.join("report.html");
    let page_bytes = std::fs::metadata(&page).expect("the page").len();
    let thumbs_dir = out_dir.join(".tryon-report/thumbs");
    let (thumbs, thumb_bytes) = folder_bytes(&thumbs_dir);

    let report = |cmd: &mut Command| {
        cmd.env_remove("SEGMIND_API_KEY")
            .arg("report")
            .arg(&out_dir);
    };
    let mut warm = tryon();
    report(&mut warm);
    let warm = timed(warm, 0);
    std::fs::remove_dir_all(&thumbs_dir).expect("thumbnails removed");
    let mut cold = tryon();
    report(&mut cold);
    let cold = timed(cold, 0);

    let rows = rows();
    println!("### Batch report, {rows} rows\n");
    println!("| what | figure |\n|---|---|");
    println!(
        "| `tryon batch` ({rows} rows, concurrency {CONCURRENCY}, thumbnails made on the side) | {:.1} s |",
        batch_wall.as_secs_f64()
    );
    if let Some(tail) = tail {
        println!(
            "| of which after its last journal record (the last thumbnails, the page; 1 s resolution) | {:.1} s |",
            tail.as_secs_f64()
        );
    }
    println!(
        "| report.html | {page_bytes} bytes ({:.0} bytes a row) |",
        page_bytes as f64 / rows as f64
    );
    println!(
        "| thumbnails (.tryon-report/thumbs/) | {thumbs} files, {thumb_bytes} bytes ({:.1} KiB each) |",
        thumb_bytes as f64 / thumbs.max(1) as f64 / 1024.0
    );
    println!(
        "| `tryon report DIR`, thumbnails cached | {:.2} s |",
        warm.as_secs_f64()
    );
    println!(
        "| `tryon report DIR`, every thumbnail made again | {:.1} s |",
        cold.as_secs_f64()
    );

    browser_figures(&page, dir.path());
    drop(server);
}

/// The page in Chromium: the median of [`BROWSER_RUNS`] runs.
fn browser_figures(page: &Path, dir: &Path) {
    let Some(chromium) = browser::find("report bench") else {
        println!("\n(no chromium: the browser figures are left out)");
        return;
    };
    let html = browser::harness(&browser::file_url(page), 900, TIMINGS);
    let mut runs = Vec::new();
    for _ in 0..BROWSER_RUNS {
        let started = Instant::now();
        let seen = browser::run_harness(&chromium, &html, None);
        runs.push((seen, started.elapsed().as_secs_f64()));
    }
    let field = |name: &str| {
        median(
            runs.iter()
                .map(|(s, _)| s[name].as_f64().unwrap_or(f64::NAN))
                .collect(),
        )
    };
    let rows = runs[0].0["rows"].as_u64().unwrap_or(0);
    assert_eq!(rows, self::rows() as u64, "every row on the page");
    let empty = dir.join("empty.html");
    std::fs::write(&empty, "<!DOCTYPE html><title>empty</title>").expect("an empty page");
    let started = Instant::now();
    chromium.dump_dom(&empty, None);
    let empty_wall = started.elapsed().as_secs_f64();
    println!(
        "| Chromium: loaded (`loadEventEnd`), median of {BROWSER_RUNS} | {:.0} ms |",
        field("load")
    );
    println!(
        "| Chromium: loaded and laid out in full | {:.0} ms |",
        field("laid_out")
    );
    println!(
        "| Chromium: filter to \"failed\" ({} rows shown), style and layout | {:.0} ms |",
        runs[0].0["failed"].as_u64().unwrap_or(0),
        field("filter")
    );
    println!(
        "| Chromium: jump to the last row | {:.0} ms |",
        field("jump")
    );
    println!(
        "| Chromium: a whole `--dump-dom` run of the report (start to exit), median | {:.2} s (an empty page: {empty_wall:.2} s) |",
        median(runs.iter().map(|(_, wall)| *wall).collect())
    );
    assert_eq!(chromium.fetched(), Vec::<String>::new(), "nothing fetched");

    let html = browser::harness("/report.html", 900, DEFERRED).replace(
        "<pre id=\"out\">pending</pre>",
        "<pre id=\"out\">pending</pre><img src=\"/__wait\" alt=\"\" hidden>",
    );
    let dir = page.parent().expect("the report's folder").to_path_buf();
    let served = Served::start(dir, html);
    let dom = chromium.dump_dom_url(
        &format!("http://127.0.0.1:{}/__harness.html", served.port),
        None,
    );
    let seen = browser::harness_output(&dom);
    drop(served);
    println!(
        "| Chromium, the folder on loopback: thumbnails fetched once the page has loaded | {} of {} |",
        seen["loaded"], seen["boxes"]
    );
    println!(
        "| ... after a scroll to the last row (its {} all fetched: {}) | {} |",
        seen["names"].as_array().map_or(0, Vec::len),
        seen["fetched"]
            .as_array()
            .is_some_and(|f| !f.is_empty() && f.iter().all(|v| v == true)),
        seen["after"]
    );
}
