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
//! then layout) and the jump to the last row. Without Chromium the browser
//! rows are left out.
//!
//! `cargo bench -p tryon-cli --bench report`
#![allow(clippy::print_stdout, reason = "a bench binary prints its table")]
#![allow(clippy::cast_precision_loss, reason = "figures for people")]

#[allow(dead_code, reason = "the bench uses the driver, not the test harness")]
#[path = "../tests/report/browser.rs"]
mod browser;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tryon_mock::{FailRule, JobMatch, MockServer};

const ROWS: usize = 10_000;
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
    for row in 0..ROWS {
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

    println!("### Batch report, {ROWS} rows\n");
    println!("| what | figure |\n|---|---|");
    println!(
        "| `tryon batch` ({ROWS} rows, concurrency {CONCURRENCY}, thumbnails made on the side) | {:.1} s |",
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
        page_bytes as f64 / ROWS as f64
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
    let html = browser::harness(page, 900, TIMINGS);
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
    assert_eq!(rows, ROWS as u64, "every row on the page");
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
}
