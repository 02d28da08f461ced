//! Runs every program in `examples/` against a real-time `tryon-mock`, the
//! way a user would: `SEGMIND_API_KEY`, `SEGMIND_BASE_URL` and
//! `SEGMIND_UPLOAD_URL` in the environment, arguments on the command line,
//! and the files they promise checked afterwards.
//!
//! `cargo test` builds the examples next to the test binaries
//! (`target/<profile>/examples/<name>`); this test only runs them. The mock
//! serves on this test's multi-thread runtime while the child runs on a
//! blocking thread.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tryon_mock::MockServer;

const KEY: &str = "sk-example-0123456789";
/// A 1×1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\xdac\xfc\xcf\xc0\x50\x0f\0\x04\x85\x01\x80\x84\xa9\x8c!\0\0\0\0IEND\xaeB`\x82";

/// `target/<profile>/examples/<name>`, next to this test's
/// `target/<profile>/deps/examples-<hash>`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "example binary {} not found: run `cargo test -p tryon-client` (which builds the \
         examples) or `cargo build -p tryon-client --examples` first",
        path.display()
    );
    path
}

/// Runs an example against `server` in `dir`, on a blocking thread so the
/// mock keeps serving.
async fn run_example(name: &str, server: &MockServer, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(example(name));
    cmd.args(args)
        .current_dir(dir)
        .env("SEGMIND_API_KEY", KEY)
        .env("SEGMIND_BASE_URL", server.uri())
        .env("SEGMIND_UPLOAD_URL", server.uri())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Runs the example `name` with URL arguments `args` in a fresh folder,
/// against a mock expecting `submits` billed submits, and asserts that it
/// succeeded; the mock, the folder and the output.
async fn run_urls_example(
    name: &str,
    submits: u64,
    args: &[&str],
) -> (MockServer, tempfile::TempDir, Output) {
    let server = MockServer::builder().expect_submits(submits).start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = run_example(name, &server, dir.path(), args).await;
    assert!(out.status.success(), "{}", text(&out));
    (server, dir, out)
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_png_file(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.ends_with(b"IEND\xaeB`\x82"),
        "{} is not a whole PNG",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_run_saves_the_image() {
    let server = MockServer::builder().expect_submits(1).start().await;
    let dir = tempfile::tempdir().unwrap();
    let person = dir.path().join("person.png");
    std::fs::write(&person, PNG).unwrap();
    let out_path = dir.path().join("result.png");
    let out = run_example(
        "run",
        &server,
        dir.path(),
        &[
            person.to_str().unwrap(),
            "https://example.com/shirt.jpg",
            out_path.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_png_file(&out_path);
    assert!(String::from_utf8_lossy(&out.stdout).contains("saved"));
    // The local person photo went inline; the output came from the mock
    // without the key.
    let journal = server.request_log();
    assert!(
        journal
            .iter()
            .filter(|e| e.path.starts_with("/outputs/"))
            .all(|e| e.key.is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_run_without_a_key_names_the_variable() {
    let server = MockServer::builder().expect_submits(0).start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(example("run"));
    cmd.args(["https://example.com/p.jpg", "https://example.com/g.jpg"])
        .current_dir(dir.path())
        .env_remove("SEGMIND_API_KEY")
        .env("SEGMIND_BASE_URL", server.uri());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SEGMIND_API_KEY"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_submit_reattach_follows_the_job_to_done() {
    let (server, _dir, out) = run_urls_example(
        "submit_reattach",
        1,
        &[
            "https://example.com/person.jpg",
            "https://example.com/shirt.jpg",
            "https://example.com/jeans.jpg",
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("submitted; re-attaching"), "{}", text(&out));
    assert!(stdout.contains("status=COMPLETED"), "{}", text(&out));
    assert!(stdout.contains("done"), "{}", text(&out));
    assert!(stdout.contains(&server.uri()), "output URL printed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_batch_saves_one_image_per_garment() {
    let (server, dir, _) = run_urls_example(
        "batch",
        3,
        &[
            "https://example.com/person.jpg",
            "https://example.com/a.jpg",
            "https://example.com/b.jpg",
            "https://example.com/c.jpg",
        ],
    )
    .await;
    for i in 0..3 {
        assert_png_file(&dir.path().join(format!("out-{i}.png")));
    }
    assert_eq!(server.billed_submits_for(KEY), 3);
}
