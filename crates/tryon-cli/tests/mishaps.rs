//! End-to-end tests of what careless or hostile use does to the `tryon`
//! binary: closed pipes, damaged journals, colliding output names, outputs
//! that cannot be saved, control characters. Each checks the promise from
//! the mock's billing: nothing billed twice, nothing billed lost.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{
    assert_has, assert_rerun_sends_nothing, batch, batch_dir, batch_in, output, relative_manifest,
    run_to, text, tryon, write_manifest,
};
use tryon_mock::{Fault, MockServer};

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
    let (server, dir) = common::mock_and_dir().await;
    let long = "x".repeat(300);
    let ids = ["a/b", "a_b", "a b", ".", "..", long.as_str(), "../escape"];
    let manifest = common::write_jsonl(
        dir.path(),
        ids.iter().map(|id| {
            serde_json::json!({
                "id": id,
                "person": "https://example.com/p.jpg",
                "garments": ["https://example.com/g.jpg"],
            })
        }),
    );
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
    let (server, dir) = common::mock_and_dir().await;
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
    assert!(server.request_log().is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_checks_the_output_path_before_paying() {
    let (server, dir) = common::mock_and_dir().await;
    std::fs::write(dir.path().join("fakepasswd"), b"a file").unwrap();
    let cases = [
        (dir.path().join("missing/dir/out.png"), "does not exist"),
        (
            dir.path().join("fakepasswd/x.png"),
            "fakepasswd is a file, not a folder",
        ),
        (
            dir.path().join("fakepasswd/deeper/x.png"),
            "fakepasswd is a file, not a folder",
        ),
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
    assert_eq!(leftovers, 1, "the probe file is removed (fakepasswd stays)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_that_fails_after_paying_says_how_to_fetch_it_again() {
    let (server, dir) = common::mock_and_dir().await;
    // A name a shell would split and expand: the printed command quotes it.
    let out = dir.path().join("my $HOME's out.png");
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
    let (words, printed) = common::printed_command(&stderr, "  ");
    let uri = server.uri();
    assert_eq!(
        words[1..4],
        ["--base-url", uri.as_str(), "result"],
        "{words:?}"
    );
    assert_eq!(words[5..], ["-o", &*out.to_string_lossy()], "{words:?}");

    // The printed command, run as printed, fetches it without a new charge.
    let fetched = output(printed).await;
    assert!(fetched.status.success(), "{}", text(&fetched.stderr));
    image::open(&out).expect("the paid image");
    assert_eq!(server.billed_submits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_ids_are_escaped_on_the_terminal() {
    let (server, dir) = common::mock_and_dir().await;
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
    let (server, dir) = common::mock_and_dir().await;
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
    assert!(
        server.request_log().is_empty(),
        "no request reached the mock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_mock_with_a_closed_stderr_keeps_serving() {
    use std::io::{BufRead as _, BufReader};

    let (mut mock, url) = common::start_mock_with(&[], Stdio::piped());
    let mut stderr = BufReader::new(mock.stderr().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    // From here on, every request log line meets a closed pipe.
    drop(stderr);

    let mut cmd = common::tryon_at(&url);
    cmd.arg("submit")
        .args(["--person", "https://example.com/p.jpg"])
        .args(["--garment", "https://example.com/g.jpg"]);
    let first = output(cmd).await;
    let mut cmd = common::tryon_at(&url);
    cmd.args(["status", text(&first.stdout).trim()]);
    let second = output(cmd).await;
    mock.kill();
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(second.status.success(), "{}", text(&second.stderr));
}

/// Issue 18, item 1: the same manifest under another spelling is the same
/// rows. Its one row's submit is accepted and billed, then the answer is
/// lost (ambiguous); no spelling of the manifest's path may send it again:
/// the second run, under another spelling, finds the job in the account's
/// history and follows it. (Before the fix, `./m.csv` billed a second job.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_manifest_under_another_spelling_is_the_same_rows() {
    let server = MockServer::builder()
        .fault(Fault::drop_after_accept())
        .start()
        .await;
    let (dir, sub) = relative_manifest("");
    let absolute = sub.join("m.csv").display().to_string();
    let runs = [
        (sub.as_path(), "m.csv", "out"),
        (sub.as_path(), "./m.csv", "out"),
        (dir.path(), "sub/m.csv", "sub/out"),
        (dir.path(), absolute.as_str(), "sub/out"),
    ];
    for (n, (cwd, manifest, out)) in runs.into_iter().enumerate() {
        let run = output(batch_in(&server, cwd, manifest, out, &[])).await;
        let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
        assert_eq!(
            server.billed_submits(),
            1,
            "batch {manifest} paid again: {stdout}"
        );
        if n == 0 {
            // The answer is lost: unknown, and said once, not twice over
            // ("submit outcome unknown, not resubmitted: submit outcome
            // unknown, ...").
            assert_eq!(run.status.code(), Some(5), "{stdout}\n{stderr}");
            assert!(stdout.contains("ambiguous  1"), "{stdout}");
            assert_eq!(
                stderr.matches("submit outcome unknown").count(),
                1,
                "{stderr}"
            );
        } else {
            // Every other spelling is the same row: the second run finds
            // its job in the account's history and follows it; the rest
            // find it done.
            assert_eq!(
                run.status.code(),
                Some(0),
                "batch {manifest}: {stdout}\n{stderr}"
            );
            assert!(
                stdout.contains("completed  1"),
                "batch {manifest}: {stdout}"
            );
        }
    }
}

/// Issue 18, item 1, the pending variant: a batch interrupted while its
/// job is queued, rerun from the parent folder, re-attaches to that job.
/// (Before the fix the dry run said "to re-attach: 0" and the run paid for
/// a second job.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_row_rerun_from_the_parent_folder_reattaches() {
    let server = common::queued_mock().await;
    let (dir, sub) = relative_manifest("");
    common::interrupt_after_submit(&server, &sub).await;
    assert_eq!(server.billed_submits(), 1);

    let dry = output(batch_in(
        &server,
        dir.path(),
        "sub/m.csv",
        "sub/out",
        &["--dry-run"],
    ))
    .await;
    assert_has(&dry.stdout, "jobs to submit: 0");
    assert_has(&dry.stdout, "to re-attach: 1");
    server.advance(Duration::from_secs(10));
    let rerun = output(batch_in(&server, dir.path(), "sub/m.csv", "sub/out", &[])).await;
    let stdout = text(&rerun.stdout);
    assert!(rerun.status.success(), "{stdout}\n{}", text(&rerun.stderr));
    assert_has(&rerun.stderr, "re-attaching to");
    assert_eq!(server.billed_submits(), 1, "nothing billed again: {stdout}");
    image::open(sub.join("out/r1.png")).expect("the paid image");
}

/// Issue 18, item 9: JSONL refuses what CSV refuses, before anything is
/// sent, naming the field and the nearest known one. (Before the fix a
/// row with `"sed": 7` was billed with the defaults.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_unknown_fields_and_wrong_types_are_refused_naming_the_field() {
    let (server, dir) = common::mock_and_dir().await;
    let base = r#""person":"https://example.com/p.jpg","garments":["https://example.com/g.jpg"]"#;
    let cases = [
        (
            format!("{{{base},\"sed\":7}}"),
            "unknown field `sed`; did you mean `seed`?",
        ),
        (
            format!("{{{base},\"promt\":\"red\"}}"),
            "unknown field `promt`; did you mean `prompt`?",
        ),
        (
            format!("{{{base},\"seed\":\"42\"}}"),
            "seed: expected a non-negative integer, found the string \"42\"",
        ),
        (
            r#"{"person":"https://example.com/p.jpg","garments":"https://example.com/g.jpg"}"#
                .to_string(),
            "garments: expected a list of images, found the string",
        ),
        (
            r#"["https://example.com/p.jpg"]"#.to_string(),
            "expected an object",
        ),
    ];
    for (line, expected) in cases {
        let manifest = dir.path().join("m.jsonl");
        std::fs::write(&manifest, format!("{line}\n")).unwrap();
        let run = output(batch(&server, &manifest, &dir.path().join("out"), &[])).await;
        let stderr = text(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{line}: {stderr}");
        assert!(stderr.contains("m.jsonl row 1: "), "{stderr}");
        assert!(stderr.contains(expected), "{line}: {stderr}");
    }
    assert_eq!(server.billed_submits(), 0, "nothing was sent");
}

/// Issue 18, item 8: a journal that is a symbolic link is refused by name,
/// and nothing is appended through it, whether its target exists or not.
/// (Before the fix the batch appended its records to the link's target.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_is_a_link_is_refused_and_its_target_untouched() {
    let server = MockServer::start().await;
    let (dir, manifest, out_dir) = batch_dir(1, None);
    std::fs::create_dir(&out_dir).unwrap();
    let target = dir.path().join("elsewhere.jsonl");
    std::fs::write(&target, b"not the journal's\n").unwrap();
    let journal = out_dir.join("tryon-journal.jsonl");
    std::os::unix::fs::symlink(&target, &journal).unwrap();
    for dry in [false, true] {
        let mut cmd = batch(&server, &manifest, &out_dir, &[]);
        if dry {
            cmd.arg("--dry-run");
        }
        let run = output(cmd).await;
        let stderr = text(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "journal {}: is a symbolic link",
                journal.display()
            )),
            "{stderr}"
        );
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"not the journal's\n");
    // A dangling link: its target is not created either.
    std::fs::remove_file(&target).unwrap();
    let run = output(batch(&server, &manifest, &out_dir, &[])).await;
    assert_eq!(run.status.code(), Some(2), "{}", text(&run.stderr));
    assert!(!target.exists(), "nothing created through the link");
    assert_eq!(server.billed_submits(), 0);
}

/// Issue 18, item 8: `tryon parity --report PATH` where PATH is a link
/// replaces the link with the report and leaves the link's target alone.
/// (Before the fix it overwrote the target.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parity_report_replaces_a_link_instead_of_writing_through_it() {
    let (_mock, url) = common::start_mock(&[]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious.txt");
    std::fs::write(&target, b"keep me").unwrap();
    let report = dir.path().join("report.txt");
    std::os::unix::fs::symlink(&target, &report).unwrap();
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("tryon"));
    cmd.env_remove("SEGMIND_API_KEY")
        .stdin(Stdio::null())
        .args(["parity", "--target", &url, "--interval", "20ms", "--report"])
        .arg(&report);
    let run = output(cmd).await;
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    let meta = std::fs::symlink_metadata(&report).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the link was replaced by the report"
    );
    let written = std::fs::read_to_string(&report).unwrap();
    assert!(written.starts_with("tryon parity report"), "{written}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 2, "no temporary file left: {left:?}");
}

/// Issue 18, item 10: a 20-row batch with a wrong key says the 401 once,
/// with the count of rows it stopped. (Before the fix the same 401 line
/// was printed for every row, on both streams.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_said_once_with_the_count() {
    let server = MockServer::builder().keys(["good"]).start().await;
    let (_dir, manifest, out_dir) = batch_dir(20, None);
    let mut cmd = batch(&server, &manifest, &out_dir, &[]);
    cmd.env("SEGMIND_API_KEY", "bad");
    let run = output(cmd).await;
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert_eq!(run.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("not sent   20"), "{stdout}");
    assert!(stdout.contains("20 rows: 401 Unauthorized"), "{stdout}");
    assert_eq!(stdout.matches("401 Unauthorized").count(), 1, "{stdout}");
    assert_eq!(stderr.matches("401 Unauthorized").count(), 1, "{stderr}");
    assert_eq!(server.billed_submits(), 0);
}

/// Issue 18, item 10: a wait that gives up names the shell command that
/// re-attaches, never a Rust call; one that gives up early because of
/// `--rate` names the rate; and `--rate` says its pacing before waiting.
/// (Before the fix: `re-attach with client.job("…")`, and "not finished
/// after 3.3s" at `--rate 1/h --timeout 20s` with no word of the rate.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_that_give_up_say_why_in_the_shells_words() {
    let server = MockServer::start().await;
    let (_dir, manifest, out_dir) = batch_dir(1, None);
    let run = output(batch(
        &server,
        &manifest,
        &out_dir,
        &["--rate", "1/h", "--timeout", "20s"],
    ))
    .await;
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert_eq!(run.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "warning: at --rate 1/h one call comes every 60 min, longer than --timeout 20 s"
        ),
        "{stderr}"
    );
    assert!(
        stdout.contains("API calls are paced at 1/h (one every 60 min), so the next status call would come after it"),
        "{stdout}"
    );
    for stream in [&stdout, &stderr] {
        assert!(!stream.contains("client.job"), "{stream}");
    }
    assert_eq!(server.billed_submits(), 1);

    let dry = output(batch(
        &server,
        &manifest,
        &out_dir,
        &["--dry-run", "--rate", "5/min"],
    ))
    .await;
    assert_has(
        &dry.stdout,
        "--rate 5/min spaces API calls 12 s apart: 1 rows make at least 3 calls",
    );

    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_to(&server, &dir.path().join("o.png"));
    cmd.args(["--timeout", "1ms"]);
    let run = output(cmd).await;
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "re-attach with: tryon --base-url {} wait ",
            server.uri()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("client.job"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_messages_never_print_a_url_password_or_the_key() {
    // Before: `error: invalid client configuration: base_url:
    // "https://user:hunter2@host:99999" is not a valid URL`, and the same
    // for `tryon parity --target`.
    let key = common::KEY;
    let cases: [&[&str]; 3] = [
        &[
            "--base-url",
            "https://user:hunter2@host:99999",
            "status",
            "5b9f0e62-8c51-4a64-9a3e-6ad1f2f0c9d4",
        ],
        &["parity", "--target", "https://user:hunter2@host.example/x"],
        &[
            "--base-url",
            "https://host.example:99999/?token=hunter2",
            "status",
            "5b9f0e62-8c51-4a64-9a3e-6ad1f2f0c9d4",
        ],
    ];
    for args in cases {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("tryon"));
        cmd.env("SEGMIND_API_KEY", key).args(args);
        let result = output(cmd).await;
        let stderr = text(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(
            !stderr.contains("hunter2") && !stderr.contains(key),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("[REDACTED]"), "{args:?}: {stderr}");
    }
}

/// A manifest is read only when it is a regular file, and at most
/// `MAX_MANIFEST_BYTES` (256 MiB) of it: `/dev/zero` grew memory without
/// end, and a FIFO nobody writes to hung the batch. Each is refused naming
/// the path and why, before anything is sent (a dry run and a real one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_is_a_device_a_fifo_or_too_large_is_refused_unread() {
    let (server, dir) = common::mock_and_dir().await;
    let fifo = dir.path().join("m-fifo.csv");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // One byte over the bound, sparse: no disk is spent and nothing is read.
    let huge = dir.path().join("m-huge.csv");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(256 * 1024 * 1024 + 1)
        .unwrap();
    let latin1 = dir.path().join("m-latin1.csv");
    std::fs::write(&latin1, b"id,person,garments\nr\xe9,a.png,b.png\n").unwrap();
    for (manifest, expected) in [
        (
            PathBuf::from("/dev/zero"),
            "is a character device, not a regular file",
        ),
        (fifo, "is a FIFO (named pipe), not a regular file"),
        (huge, "is over 268435456 bytes, the most read"),
        (latin1, "not UTF-8 text (byte 21 "),
    ] {
        for dry in [true, false] {
            let mut cmd = batch(&server, &manifest, &dir.path().join("out"), &[]);
            if dry {
                cmd.arg("--dry-run");
            }
            // Bounded, so a regression fails here instead of hanging CI.
            let run = tokio::time::timeout(Duration::from_mins(2), output(cmd))
                .await
                .unwrap_or_else(|_| panic!("{} was read (dry run {dry})", manifest.display()));
            let stderr = text(&run.stderr);
            assert_eq!(
                run.status.code(),
                Some(2),
                "{}: {stderr}",
                manifest.display()
            );
            assert!(
                stderr.contains(&format!("{}: ", manifest.display())) && stderr.contains(expected),
                "names the manifest and says why ({expected}): {stderr}"
            );
        }
    }
    assert!(server.request_log().is_empty(), "nothing reached the mock");
}
