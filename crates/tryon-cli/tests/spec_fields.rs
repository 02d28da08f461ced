//! Every request field of the spec reaches the wire from the command line:
//! through `tryon submit`'s flags and through a batch manifest's columns.
//!
//! The list of fields comes from the generated type's own schema
//! (`schemars::schema_for!(tryon_api::types::TryOnInput)`), so a field added
//! to the spec and regenerated fails here until the CLI carries it. The
//! bodies are captured by httpmock on loopback and compared field by field.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};

use assert_cmd::cargo::CommandCargoExt as _;
use httpmock::prelude::*;
use serde_json::{Value, json};

const ID: &str = "2f1c8a5e-6b7d-4e8f-9a0b-1c2d3e4f5a6b";

/// A whole 1x1 lossless WebP (34 bytes), the output the fake serves.
const TINY_WEBP: &[u8] = &[
    0x52, 0x49, 0x46, 0x46, 0x1a, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50, 0x56, 0x50, 0x38, 0x4c,
    0x0d, 0x00, 0x00, 0x00, 0x2f, 0x00, 0x00, 0x00, 0x10, 0x07, 0x10, 0x11, 0x11, 0x88, 0x88, 0xfe,
    0x07, 0x00,
];

/// One non-default value per field: its name on the wire, the `submit`
/// flags that set it, and the manifest column that sets it to the same value.
struct Field {
    name: &'static str,
    flag: &'static [&'static str],
    column: &'static str,
    value: Value,
}

fn fields() -> Vec<Field> {
    const A: &str = "https://example.com/a.jpg";
    const B: &str = "https://example.com/b.jpg";
    const PERSON: &str = "https://example.com/person.jpg";
    const POSE: &str = "https://example.com/pose.jpg";
    let f = |name, flag, column, value| Field {
        name,
        flag,
        column,
        value,
    };
    vec![
        f(
            "person_image",
            &["--person", PERSON],
            "person",
            json!(PERSON),
        ),
        f(
            "garment_images",
            &["--garment", A, "--garment", B],
            "garments",
            json!([A, B]),
        ),
        f(
            "prompt",
            &["--prompt", "the red one"],
            "prompt",
            json!("the red one"),
        ),
        f(
            "reference_pose",
            &["--reference-pose", POSE],
            "reference_pose",
            json!(POSE),
        ),
        f("seed", &["--seed", "7"], "seed", json!(7)),
        f("turbo", &["--turbo"], "turbo", json!(true)),
        f(
            "output_format",
            &["--format", "webp"],
            "format",
            json!("webp"),
        ),
        f("output_quality", &["--quality", "80"], "quality", json!(80)),
        f(
            "preserve_input_size",
            &["--preserve-input-size"],
            "preserve_input_size",
            json!(true),
        ),
    ]
}

fn spec_fields() -> BTreeSet<String> {
    let schema = serde_json::to_value(schemars::schema_for!(tryon_api::types::TryOnInput))
        .expect("the schema serializes");
    schema["properties"]
        .as_object()
        .expect("TryOnInput has properties")
        .keys()
        .cloned()
        .collect()
}

/// A loopback fake that captures the submit body and completes the job.
async fn fake() -> (MockServer, Arc<Mutex<Option<Value>>>) {
    let seen: Arc<Mutex<Option<Value>>> = Arc::default();
    let server = MockServer::start_async().await;
    let sink = Arc::clone(&seen);
    let base = server.base_url();
    server
        .mock_async(move |when, then| {
            when.method(POST)
                .path("/v2/p-image-try-on")
                .is_true(move |req| {
                    *sink.lock().expect("not poisoned") =
                        serde_json::from_slice(req.body().as_ref()).ok();
                    true
                });
            then.status(200).json_body(json!({
                "request_id": ID, "status": "QUEUED",
                "status_url": format!("{base}/v2/requests/{ID}/status"),
                "response_url": format!("{base}/v2/requests/{ID}"),
            }));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/v2/requests/{ID}/status"));
            then.status(200)
                .json_body(json!({"status": "COMPLETED", "request_id": ID, "metrics": {}}));
        })
        .await;
    let output = format!("{}/out.webp", server.base_url());
    server
        .mock_async(move |when, then| {
            when.method(GET).path(format!("/v2/requests/{ID}"));
            then.status(200)
                .json_body(json!({"status": "COMPLETED", "output": output, "metrics": {}}));
        })
        .await;
    let webp = TINY_WEBP.to_vec();
    server
        .mock_async(move |when, then| {
            when.method(GET).path("/out.webp");
            then.status(200)
                .header("content-type", "image/webp")
                .body(webp);
        })
        .await;
    (server, seen)
}

fn tryon(server: &MockServer) -> Command {
    let mut cmd = Command::cargo_bin("tryon").expect("the tryon binary is built");
    cmd.env("SEGMIND_API_KEY", "sk-fields")
        .env_remove("RUST_LOG")
        .args(["--base-url", &server.base_url()]);
    cmd
}

/// Runs `cmd` to success and checks the submit body the fake captured.
async fn submit_body(mut cmd: Command, seen: &Mutex<Option<Value>>, fields: &[Field], how: &str) {
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("tryon runs"))
        .await
        .expect("joined");
    assert!(
        out.status.success(),
        "{how}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = seen.lock().expect("not poisoned").take().expect("a submit");
    for f in fields {
        assert_eq!(
            body.get(f.name),
            Some(&f.value),
            "{} did not reach the wire through {how}: body {body}",
            f.name
        );
    }
}

#[test]
fn this_test_covers_every_request_field_of_the_spec() {
    let covered: BTreeSet<String> = fields().iter().map(|f| f.name.to_string()).collect();
    assert_eq!(
        spec_fields(),
        covered,
        "the spec's request fields and the CLI's differ: a new field needs a flag, \
         a manifest column and a line in fields()"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_field_reaches_the_wire_from_submit_flags() {
    let (server, seen) = fake().await;
    let mut cmd = tryon(&server);
    cmd.arg("submit");
    let fields = fields();
    for f in &fields {
        cmd.args(f.flag);
    }
    submit_body(cmd, &seen, &fields, "submit flags").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_field_reaches_the_wire_from_a_manifest_row() {
    let (server, seen) = fake().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let fields = fields();
    let mut row = serde_json::Map::new();
    row.insert("id".into(), json!("all-fields"));
    for f in &fields {
        row.insert(f.column.into(), f.value.clone());
    }
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(&manifest, format!("{}\n", Value::Object(row))).expect("written");
    let mut cmd = tryon(&server);
    cmd.arg("batch")
        .arg(&manifest)
        .arg("--out-dir")
        .arg(dir.path().join("out"));
    submit_body(cmd, &seen, &fields, "a manifest row").await;
}
