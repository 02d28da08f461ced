//! End-to-end tests of what careless or hostile use does to the `tryon`
//! binary: closed pipes, damaged journals, colliding output names, outputs
//! that cannot be saved, control characters. Each checks the promise from
//! the mock's billing: nothing billed twice, nothing billed lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{
    assert_has, assert_rerun_sends_nothing, batch, batch_dir, output, text, tryon, write_manifest,
};
use tryon_mock::MockServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_stdout_and_stderr_do_not_stop_a_batch() {
    let server = MockServer::start().await;
    let (_dir, manifest, out_dir) = batch_dir(16, None);
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
    assert_rerun_sends_nothing(&server, &manifest, &out_dir, 0, 16, 16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_id_gets_its_own_output_file() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(300);
    let ids = ["a/b", "a_b", "a b", ".", "..", long.as_str(), "../escape"];
    let mut jsonl = String::new();
    for id in ids {
        jsonl.push_str(
            &serde_json::json!({
                "id": id,
                "person": "https://example.com/p.jpg",
                "garments": ["https://example.com/g.jpg"],
            })
            .to_string(),
        );
        jsonl.push('\n');
    }
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(&manifest, jsonl).unwrap();
    let out_dir = dir.path().join("out");
    let result = output(batch(&server, &manifest, &out_dir, &[])).await;
    assert!(result.status.success(), "{}", text(&result.stdout));
    assert_eq!(server.billed_submits(), ids.len() as u64);
    let files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // The journal, and the report page with its folder.
        .filter(|name| {
            !["tryon-journal.jsonl", "report.html", ".tryon-report"].contains(&name.as_str())
        })
        .collect();
    assert_eq!(files.len(), ids.len(), "one image per row: {files:?}");
    for name in &files {
        assert!(!name.starts_with('.'), "no hidden files: {files:?}");
        assert!(name.len() <= 255);
        image::open(out_dir.join(name)).expect("a whole image");
    }
    assert!(
        !dir.path().join("escape.png").exists(),
        "nothing written outside --out-dir"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colliding_names_and_paths_too_long_are_refused_before_sending() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.csv");
    std::fs::write(
        &manifest,
        "id,person,garments\nLook,https://e.com/p.jpg,https://e.com/g.jpg\nlook,https://e.com/p.jpg,https://e.com/g.jpg\n",
    )
    .unwrap();
    let result = output(batch(&server, &manifest, &dir.path().join("o"), &[])).await;
    let stderr = text(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("row 2 (look)") && stderr.contains("row 1 (Look)"),
        "names both rows: {stderr}"
    );

    let deep = dir.path().join("d".repeat(200)).join("e".repeat(200));
    let long_dir: std::path::PathBuf =
        (0..16).fold(deep, |p, i| p.join(format!("{i}{}", "f".repeat(250))));
    let manifest = write_manifest(dir.path(), 1, None);
    let result = output(batch(&server, &manifest, &long_dir, &[])).await;
    let stderr = text(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("output path:"), "{stderr}");
    assert!(server.journal().is_empty(), "nothing was sent");
}

fn run_to(server: &MockServer, out: &Path) -> std::process::Command {
    let mut cmd = tryon(server);
    cmd.args([
        "run",
        "--person",
        "https://example.com/p.jpg",
        "--garment",
        "https://example.com/g.jpg",
        "-o",
    ])
    .arg(out);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_checks_the_output_path_before_paying() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (dir.path().join("missing/dir/out.png"), "does not exist"),
        (dir.path().to_path_buf(), "is a directory"),
        (PathBuf::from("/dev/null"), "not a regular file"),
    ];
    for (out, needle) in cases {
        let result = output(run_to(&server, &out)).await;
        let stderr = text(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{}: {stderr}", out.display());
        assert!(
            stderr.contains("-o ") && stderr.contains(needle),
            "{stderr}"
        );
    }
    assert_eq!(server.billed_submits(), 0, "nothing paid for");
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 0, "the probe file is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_that_fails_after_paying_says_how_to_fetch_it_again() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    // A file size limit of 512 bytes: the probe passes, the image does not
    // fit (see tests/journal.rs for why SIGXFSZ is ignored).
    let run = run_to(&server, &out);
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("trap '' XFSZ; ulimit -f 1; exec \"$0\" \"$@\"")
        .arg(run.get_program())
        .args(run.get_args())
        .env("SEGMIND_API_KEY", common::KEY);
    let result = output(cmd).await;
    let stderr = text(&result.stderr);
    assert_eq!(result.status.code(), Some(6), "{stderr}");
    assert_eq!(server.billed_submits(), 1);
    let command = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("tryon result "))
        .unwrap_or_else(|| panic!("a recovery command: {stderr}"));
    let (id, rest) = command.split_once(' ').unwrap();
    assert_eq!(rest, format!("-o {}", out.display()));

    // The printed command fetches it, without a new charge.
    let mut cmd = tryon(&server);
    cmd.args(["result", id, "-o"]).arg(&out);
    let fetched = output(cmd).await;
    assert!(fetched.status.success(), "{}", text(&fetched.stderr));
    image::open(&out).expect("the paid image");
    assert_eq!(server.billed_submits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_ids_are_escaped_on_the_terminal() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.jsonl");
    let id = "evil\u{1b}[2J\u{7}\u{9b}31m";
    std::fs::write(
        &manifest,
        serde_json::json!({
            "id": id,
            "person": "https://example.com/p.jpg",
            "garments": ["https://example.com/g.jpg"],
        })
        .to_string(),
    )
    .unwrap();
    let batch = output(batch(&server, &manifest, &dir.path().join("out"), &[])).await;
    let mut cmd = tryon(&server);
    cmd.args(["status", "nope\u{1b}]0;owned\u{7}"]);
    let status = output(cmd).await;
    for result in [&batch, &status] {
        for stream in [&result.stdout, &result.stderr] {
            let shown = text(stream);
            assert!(
                !shown.contains(['\u{1b}', '\u{7}', '\u{9b}']),
                "raw control characters: {shown:?}"
            );
        }
    }
    assert_has(
        &batch.stderr,
        "row evil\\u{1b}[2J\\u{7}\\u{9b}31m: submitted",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prices_are_never_negative() {
    let server = MockServer::start().await;
    let (_dir, manifest, out_dir) = batch_dir(2, None);
    assert!(
        output(batch(&server, &manifest, &out_dir, &[]))
            .await
            .status
            .success()
    );
    // Everything done: nothing to pay for is $0.000, not $-0.000.
    let dry = output(batch(&server, &manifest, &out_dir, &["--dry-run"])).await;
    let stdout = text(&dry.stdout);
    assert!(stdout.contains("estimated cost: $0.000 "), "{stdout}");

    let mut cmd = tryon(&server);
    cmd.args(["batch", "--dry-run", "--price-first=-0.5"])
        .arg(&manifest);
    let refused = output(cmd).await;
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--price-first"), "{stderr}");
}

/// `--dry-run` applies exactly the checks a real run applies: each hostile
/// person image is refused by both, naming the field, and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_refuses_what_a_real_run_refuses() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // 60 MB that start like a PNG (sparse: no disk is spent).
    let big = dir.path().join("big.png");
    let file = std::fs::File::create(&big).unwrap();
    std::io::Write::write_all(&mut &file, b"\x89PNG\r\n\x1a\n").unwrap();
    file.set_len(60 * 1024 * 1024).unwrap();
    // PNG magic, then garbage where the header belongs.
    let garbage = dir.path().join("garbage.png");
    std::fs::write(&garbage, b"\x89PNG\r\n\x1a\nthis is no IHDR chunk at all").unwrap();
    // A FIFO nobody writes to: opening it for reading would block forever.
    let fifo = dir.path().join("fifo.png");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let garment = common::assets().join("garment.png");
    for (person, expected) in [
        (&big, "at most"),
        (&garbage, "header"),
        (&fifo, "not a regular file"),
    ] {
        let manifest = dir.path().join("hostile.csv");
        std::fs::write(
            &manifest,
            format!(
                "id,person,garments\nrow,{},{}\n",
                person.display(),
                garment.display()
            ),
        )
        .unwrap();
        for dry in [true, false] {
            let mut cmd = batch(&server, &manifest, &dir.path().join("out"), &[]);
            if dry {
                cmd.arg("--dry-run");
            }
            let run = output(cmd).await;
            let stderr = text(&run.stderr);
            assert_eq!(
                run.status.code(),
                Some(2),
                "dry run {dry}, {}: {stderr}",
                person.display()
            );
            assert!(stderr.contains("person_image"), "names the field: {stderr}");
            assert!(stderr.contains(expected), "says why ({expected}): {stderr}");
        }
    }
    assert_eq!(server.billed_submits(), 0, "nothing was sent");
    assert!(server.journal().is_empty(), "no request reached the mock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_mock_with_a_closed_stderr_keeps_serving() {
    use std::io::{BufRead as _, BufReader};

    let mut mock = std::process::Command::new(assert_cmd::cargo::cargo_bin("tryon"));
    mock.args(["mock", "--port", "0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = mock.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut uri = String::new();
    stdout.read_line(&mut uri).unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    // From here on, every request log line meets a closed pipe.
    drop(stderr);

    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("tryon"));
    cmd.env("SEGMIND_API_KEY", common::KEY)
        .args(["--base-url", uri.trim(), "submit"])
        .args(["--person", "https://example.com/p.jpg"])
        .args(["--garment", "https://example.com/g.jpg"]);
    let first = output(cmd).await;
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("tryon"));
    cmd.env("SEGMIND_API_KEY", common::KEY).args([
        "--base-url",
        uri.trim(),
        "status",
        text(&first.stdout).trim(),
    ]);
    let second = output(cmd).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(second.status.success(), "{}", text(&second.stderr));
}
