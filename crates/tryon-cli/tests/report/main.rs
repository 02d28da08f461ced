//! The batch report (`DIR/report.html`, `tryon report DIR`) as a person
//! sees it: real batches against the mock, the page opened in Debian's
//! headless Chromium (see `browser.rs`), and what a hostile folder or a
//! running batch does to `tryon report`.

// Test helpers: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod browser;
mod edited;
mod hostile;
mod runs;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{KEY, assets, batch, output, text};
use serde_json::Value;
use tryon_mock::{FailRule, JobMatch, MockServer};

/// The error text the mock gives a blocked job, as a content filter would.
const BLOCKED: &str = "Content blocked by the safety filter: the garment image was flagged \
                       (category: nudity, score 0.91). Try another garment photo.";

/// A garment of another colour, written into `dir`.
fn tinted_garment(dir: &Path) -> PathBuf {
    let mut garment = image::open(assets().join("garment.png"))
        .expect("the sample garment")
        .to_rgb8();
    for pixel in garment.pixels_mut() {
        let [r, g, b] = pixel.0;
        if r < 200 || g < 200 || b < 200 {
            pixel.0 = [r.saturating_add(150), g / 3, b / 3];
        }
    }
    let path = dir.join("garment-red.png");
    garment.save(&path).expect("garment written");
    path
}

/// The rows a catalog batch might have: two completed looks (one with two
/// garments), one the safety filter blocks, one with inputs given as URLs
/// (on a host that does not exist: the page must never fetch it), one
/// whose image cannot be saved (a folder stands where it goes: paid for,
/// not saved), and one never sent because the run stopped paying then.
fn catalog(dir: &Path) -> PathBuf {
    let person = assets().join("person.png");
    let garment = assets().join("garment.png");
    let red = tinted_garment(dir);
    let (p, g, r) = (person.display(), garment.display(), red.display());
    let csv = format!(
        "id,person,garments,prompt,seed\n\
         look-1,{p},{g},,1\n\
         look-2,{p},{g}|{r},the striped one over the red one,2\n\
         look-blocked,{p},{r},,13\n\
         look-url,https://tryon-canary.test/person.jpg,https://tryon-canary.test/shirt.jpg,,4\n\
         look-unsaved,{p},{r},,5\n\
         look-late,{p},{g},,6\n"
    );
    let path = dir.join("manifest.csv");
    std::fs::write(&path, csv).expect("manifest written");
    path
}

/// `tryon report ARGS` with no key, bounded in time.
fn tryon_report(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let mut cmd = assert_cmd::Command::cargo_bin("tryon").expect("the tryon binary");
    cmd.env_remove("SEGMIND_API_KEY").arg("report").args(args);
    cmd.timeout(Duration::from_mins(1))
        .output()
        .expect("tryon report runs")
}

fn rows_by_id(seen: &Value) -> std::collections::HashMap<String, Value> {
    seen["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r["id"].as_str().expect("an id").to_string(), r.clone()))
        .collect()
}

/// Every file in the folder, read whole (the page, the thumbnails, the
/// run's record).
fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("readable") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("readable");
                found.push((path, bytes));
            }
        }
    }
    found
}

/// What the catalog's page must show (see [`catalog`]); returns the
/// unsaved row's recovery command.
#[allow(
    clippy::unwrap_used,
    reason = "a test's checks: a panic is the failure"
)]
fn check_catalog(seen: &Value, out_dir: &Path, stdout: &str, base_url: &str) -> String {
    assert_eq!(seen["scripts"], 0);
    let rows = rows_by_id(seen);
    assert_eq!(rows.len(), 6, "every manifest row: {seen}");
    let status = |id: &str| rows[id]["status"].as_str().unwrap().to_string();
    for (id, expected) in [
        ("look-1", "completed"),
        ("look-2", "completed"),
        ("look-blocked", "failed"),
        ("look-url", "completed"),
        ("look-unsaved", "unsaved"),
        ("look-late", "not sent"),
    ] {
        assert_eq!(status(id), expected, "{id}: {}", rows[id]);
    }
    // Images: every thumbnail decoded; person, garments and result.
    let widths = |id: &str| -> Vec<(String, u64)> {
        rows[id]["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["alt"].as_str().unwrap().into(),
                    i["width"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    for (id, alts) in [
        ("look-1", vec!["person", "garment", "result"]),
        ("look-2", vec!["person", "garment 1", "garment 2", "result"]),
        ("look-blocked", vec!["person", "garment"]),
        ("look-unsaved", vec!["person", "garment"]),
    ] {
        let seen = widths(id);
        assert_eq!(
            seen.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
            alts,
            "{id}: {}",
            rows[id]
        );
        assert!(
            seen.iter().all(|(_, w)| *w > 0),
            "{id}: not decoded: {seen:?}"
        );
    }
    // URLs are links, never fetched.
    assert!(widths("look-url").iter().all(|(alt, _)| alt == "result"));
    assert!(
        rows["look-url"]["links"]
            .as_array()
            .unwrap()
            .contains(&Value::from("https://tryon-canary.test/person.jpg"))
    );
    // The FAILED job's own text, and the commands that recover.
    assert_eq!(rows["look-blocked"]["message"], BLOCKED);
    let command = |id: &str| rows[id]["command"].as_str().unwrap_or_default().to_string();
    let absolute = std::fs::canonicalize(out_dir).unwrap();
    let unsaved = command("look-unsaved");
    let id = common::journal_ids(out_dir)["look-unsaved"][0].clone();
    assert_eq!(
        unsaved,
        format!(
            "tryon --base-url {base_url} wait {id} -o {}",
            absolute.join("look-unsaved.png").display()
        ),
        "the summary's recovery command, to the server the batch ran against"
    );
    assert!(
        stdout.contains(&format!("fetch it with: {unsaved}")),
        "the same command in the terminal: {stdout}"
    );
    assert!(command("look-late").ends_with(&format!("--out-dir {}", absolute.display())));
    assert!(command("look-blocked").ends_with(" --retry-failed"));
    assert_eq!(rows["look-1"]["command"], Value::Null);
    // Filters work without script of the page's own.
    let filters = &seen["filters"];
    assert_eq!(filters["f-all"], 6);
    assert_eq!(filters["f-completed"], 3);
    assert_eq!(filters["f-failed"], 1);
    assert_eq!(filters["f-unsaved"], 1);
    assert_eq!(filters["f-not-sent"], 1);
    assert_eq!(filters["f-pending"], 0);
    // The top: rows by status, the spend, when it ran.
    let top = seen["text"].as_str().unwrap();
    assert!(top.contains("spend (estimate)\n$0.083 for 5 jobs"), "{top}");
    assert!(top.contains("last run\nstarted "), "{top}");
    unsaved
}

/// `tryon report` with no key and no server: the page again, every
/// thumbnail found in the cache.
fn rewrite_offline(browser: &browser::Browser, out_dir: &Path, unsaved: &str) {
    let page = out_dir.join("report.html");
    let thumbs = out_dir.join(".tryon-report/thumbs");
    let stamps = |dir: &Path| -> Vec<(PathBuf, std::time::SystemTime)> {
        let mut all: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path(), e.metadata().unwrap().modified().unwrap())
            })
            .collect();
        all.sort();
        all
    };
    let before = stamps(&thumbs);
    let mut cmd = assert_cmd::Command::cargo_bin("tryon").unwrap();
    cmd.env_remove("SEGMIND_API_KEY").arg("report").arg(out_dir);
    let again = cmd.timeout(Duration::from_mins(1)).output().unwrap();
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_has_line(
        &again.stdout,
        "report: ",
        "(6 rows: 3 completed, 1 failed, 1 pending, 1 not sent)",
    );
    assert_eq!(stamps(&thumbs), before, "no thumbnail made again");
    let seen = browser::inspect(browser, &page);
    let rows = rows_by_id(&seen);
    // The journal alone cannot know the save failed: the row was accepted
    // and never collected, and the same command fetches it (the run record
    // keeps the server it names).
    assert_eq!(rows["look-unsaved"]["status"], "pending");
    assert_eq!(rows["look-unsaved"]["command"], Value::from(unsaved));
    assert_eq!(rows["look-blocked"]["message"], BLOCKED);
    assert_eq!(browser.fetched(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_report_shows_every_row_as_a_person_sees_it_in_chromium() {
    let Some(browser) = browser::find("report: every row in chromium") else {
        return;
    };
    let server = MockServer::builder()
        .output_size(384, 512)
        .fail(FailRule::new(JobMatch::Seed(13), BLOCKED))
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = catalog(dir.path());
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(out_dir.join("look-unsaved.png")).unwrap();
    // One row at a time, in manifest order: the unsaved row stops new
    // submits, so the last row is never sent. `--overwrite` sends the row
    // whose output path is taken.
    let run = output(batch(
        &server,
        &manifest,
        &out_dir,
        &["--concurrency", "1", "--overwrite"],
    ))
    .await;
    let stdout = text(&run.stdout);
    assert_eq!(run.status.code(), Some(6), "{stdout}{}", text(&run.stderr));
    let page = out_dir.join("report.html");
    assert!(
        stdout.contains(&format!("\nreport: {}", page.display())),
        "the summary names the page: {stdout}"
    );
    assert_eq!(server.billed_submits(), 5);

    let seen = browser::inspect(&browser, &page);
    let unsaved = check_catalog(&seen, &out_dir, &stdout, &server.uri());
    // Nothing left for the network but Chromium's own calls.
    assert_eq!(browser.fetched(), Vec::<String>::new());

    let shot = dir.path().join("report.png");
    browser.screenshot(&page, &shot, 1280, 1600);
    let picture = image::open(&shot).expect("a PNG screenshot").to_rgb8();
    assert_eq!((picture.width(), picture.height()), (1280, 1600));
    // Each thumbnail of the first row is on screen: its box is not the
    // empty box's flat grey (#eaeef2).
    for thumbnail in seen_rows_first(&seen) {
        let [x, y, w, h] = thumbnail;
        let drawn = (x + 2..x + w - 2)
            .flat_map(|px| (y + 2..y + h - 2).map(move |py| (px, py)))
            .filter(|&(px, py)| picture.get_pixel(px, py).0 != [0xea, 0xee, 0xf2])
            .count();
        assert!(
            drawn * 3 > (w * h) as usize,
            "box {thumbnail:?}: {drawn} pixels drawn"
        );
    }
    if let Some(keep) = std::env::var_os("TRYON_REPORT_SCREENSHOT") {
        std::fs::copy(&shot, &keep).expect("screenshot kept");
    }
    assert_eq!(browser.fetched(), Vec::<String>::new());

    // The key appears nowhere in what the page is made of.
    for (path, bytes) in all_bytes(&out_dir.join(".tryon-report"))
        .into_iter()
        .chain([(page.clone(), std::fs::read(&page).unwrap())])
    {
        let found = bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes());
        assert!(!found, "the key is in {}", path.display());
    }

    // Again from the journal and the files, with no key and no server.
    drop(server);
    rewrite_offline(&browser, &out_dir, &unsaved);

    // The check above can fail: a page that does fetch is seen.
    let control = dir.path().join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><img src=\"http://tryon-canary.test/control.png\">",
    )
    .unwrap();
    browser.dump_dom(&control, Some(2_000));
    let fetched = browser.fetched();
    assert!(
        fetched
            .iter()
            .any(|line| line.contains("tryon-canary.test/control.png")),
        "{fetched:?}"
    );
}

/// Where the first row's thumbnails are on the page, `[x, y, w, h]`.
fn seen_rows_first(seen: &Value) -> Vec<[u32; 4]> {
    let first = &seen["rows"][0];
    assert_eq!(first["id"], "look-1");
    first["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| {
            let b = |n: usize| u32::try_from(i["box"][n].as_u64().expect("a box")).expect("small");
            [b(0), b(1), b(2), b(3)]
        })
        .collect()
}

fn assert_has_line(stdout: &[u8], prefix: &str, suffix: &str) {
    let shown = text(stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with(prefix) && l.ends_with(suffix)),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_in_ids_prompts_and_errors_stays_text_in_chromium() {
    let Some(browser) = browser::find("report: hostile text in chromium") else {
        return;
    };
    let script = "<script>document.title='pwned'</script>";
    let attribute = "\"><img src=x onerror=\"document.title='pwned'\">";
    let error = format!("{script}{attribute} & more");
    let server = MockServer::builder()
        .fail(FailRule::new(JobMatch::Seed(14), error.clone()))
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let rows = [(script, attribute, 1), (attribute, script, 14)];
    let manifest = common::write_jsonl(
        dir.path(),
        rows.into_iter().map(|(id, prompt, seed)| {
            serde_json::json!({
                "id": id,
                "person": assets().join("person.png"),
                "garments": [assets().join("garment.png")],
                "prompt": prompt,
                "seed": seed,
            })
        }),
    );
    let out_dir = dir.path().join("out");
    let run = output(batch(&server, &manifest, &out_dir, &[])).await;
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stdout));

    let seen = browser::inspect(&browser, &out_dir.join("report.html"));
    // No script ran (the title is the page's own) and no markup came in.
    assert_eq!(seen["title"], "tryon batch: m.jsonl");
    assert_eq!(seen["scripts"], 0);
    assert_eq!(seen["injected"], 0);
    let rows = rows_by_id(&seen);
    assert_eq!(rows.len(), 2);
    // The text shows, character for character.
    assert_eq!(rows[script]["prompt"], format!("prompt: {attribute}"));
    assert_eq!(rows[attribute]["prompt"], format!("prompt: {script}"));
    assert_eq!(rows[attribute]["message"], Value::from(error));
    assert_eq!(rows[attribute]["status"], "failed");
    assert_eq!(browser.fetched(), Vec::<String>::new());
}
