//! The control API against its contract, `openapi/tryon-mock-control.yaml`:
//! every documented operation is called with its example (and with bodies
//! that must be refused), and the mock's own spec check (feature
//! `spec-check`, on in these tests) judges each answer's status and JSON
//! body against the document, exactly as it judges the API's answers against
//! `openapi/segmind-tryon.yaml`; every control route the mock serves is
//! documented; and the Python package's table of calls
//! (`python/src/tryon_mock/control_routes.json`) is exactly the document's
//! operations. (That each example matches its own schema is a unit test of
//! `spec_check`, whose validator is private.)
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tryon_mock::{Credits, Fault, MockServer, RetryAfter, Route};

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
}

fn document() -> Value {
    let path = repo_file("openapi/tryon-mock-control.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// One operation of the document.
struct Operation<'a> {
    id: String,
    method: &'static str,
    path: String,
    op: &'a Value,
}

fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                let id = op["operationId"].as_str().unwrap().to_string();
                out.push(Operation {
                    id,
                    method,
                    path: path.clone(),
                    op,
                });
            }
        }
    }
    out
}

// ---- the live checks --------------------------------------------------------

/// A mock with something in every collection: a billed job with a balance
/// (journal, billing) and a fault from the config (kept across resets).
async fn seeded_server() -> MockServer {
    let server = MockServer::builder()
        .virtual_time()
        .credits(Credits::with_balance(10.0))
        .fault(Fault::server_error(Route::Result, 503).retry_after(RetryAfter::Seconds(2)))
        .start()
        .await;
    common::submit(&server.uri(), &common::body(1)).await;
    server
}

async fn send(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<Vec<u8>>,
) -> (u16, Vec<u8>) {
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

/// What the server's spec check must show after `calls` control answers on
/// a seeded server (whose one submit it checked too): each answer checked,
/// each one documented for its operation, none off the document.
fn assert_all_documented(server: &MockServer, calls: u64, what: &str) {
    let report = server.spec_report();
    assert!(
        report.violations.is_empty(),
        "{what}: answers that do not match openapi/tryon-mock-control.yaml:\n{}",
        report.violations.join("\n")
    );
    assert_eq!(report.checked, 1 + calls, "{what}: answers checked");
    assert!(report.exceptions.is_empty(), "{what}: {report:?}");
    assert!(report.injected.is_empty(), "{what}: {report:?}");
    assert_eq!(report.off_spec, 0, "{what}: {report:?}");
}

#[tokio::test]
async fn every_documented_operation_answers_as_documented() {
    let doc = document();
    let http = reqwest::Client::new();
    let mut called = 0;
    for op in operations(&doc) {
        // A fresh, seeded mock per operation, so `reset` or `clearFaults`
        // cannot empty what a later operation reads.
        let server = seeded_server().await;
        let mut url = format!("{}{}", server.uri(), op.path);
        let query: Vec<String> = op.op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .map(|p| {
                format!(
                    "{}={}",
                    p["name"].as_str().unwrap(),
                    p["example"].as_str().unwrap()
                )
            })
            .collect();
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }
        let request_schema = op
            .op
            .pointer("/requestBody/content/application~1json/schema");
        let body = op
            .op
            .pointer("/requestBody/content/application~1json/example")
            .map(|example| serde_json::to_vec(example).unwrap());
        assert_eq!(
            request_schema.is_some(),
            body.is_some(),
            "{}: a request body needs an example",
            op.id
        );
        let (status, answer) = send(&http, op.method, &url, body).await;
        let mut calls = 1;
        called += 1;
        assert!(
            (200..300).contains(&status),
            "{}: the example was refused with {status}: {}",
            op.id,
            String::from_utf8_lossy(&answer)
        );

        // Bodies that must be refused, each answer as documented.
        if request_schema.is_some() {
            for (what, bad, want) in [
                ("not JSON", b"{not json".to_vec(), 400),
                ("wrong shape", br#"{"bogus": true}"#.to_vec(), 422),
            ] {
                let (status, _) = send(&http, op.method, &url, Some(bad)).await;
                calls += 1;
                assert_eq!(status, want, "{} ({what})", op.id);
            }
        }
        assert_all_documented(&server, calls, &op.id);
    }
    assert!(called >= 11, "only {called} operations in the document");
}

#[tokio::test]
async fn methods_the_document_does_not_list_are_not_served() {
    let doc = document();
    let server = MockServer::builder().virtual_time().start().await;
    let http = reqwest::Client::new();
    let mut refused = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let listed: BTreeSet<String> = METHODS
            .iter()
            .filter(|m| item.get(**m).is_some())
            .map(|m| m.to_uppercase())
            .collect();
        for method in METHODS {
            if item.get(method).is_none() {
                let url = format!("{}{path}", server.uri());
                let body = (method != "get" && method != "delete").then(|| b"{}".to_vec());
                let answer = http
                    .request(method.to_uppercase().parse().unwrap(), &url)
                    .body(body.unwrap_or_default())
                    .send()
                    .await
                    .unwrap();
                // RFC 9110: 405, with `Allow` naming exactly what is served.
                assert_eq!(
                    answer.status(),
                    405,
                    "{method} {path} is served but not documented"
                );
                let allow: BTreeSet<String> = answer
                    .headers()
                    .get("allow")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .split(',')
                    .map(|m| m.trim().to_string())
                    .filter(|m| !m.is_empty())
                    .collect();
                assert_eq!(allow, listed, "Allow of {path}");
                refused.insert(format!("{} {path} 405", method.to_uppercase()));
            }
        }
    }
    // An undocumented path is not served at all.
    let (status, _) = send(
        &http,
        "get",
        &format!("{}/__mock/bogus", server.uri()),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // And the mock's clock was not moved by any of them.
    assert_eq!(server.now(), Duration::ZERO);
    // The spec check saw each 405 as the rule for an undeclared method (its
    // body an ErrorBody) and the 404 as off the document.
    let report = server.spec_report();
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(report.exceptions, refused);
    assert_eq!(report.off_spec, 1);
}

#[test]
fn every_control_route_the_mock_serves_is_documented_and_nothing_else() {
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .iter()
        .map(|op| (op.method.to_uppercase(), op.path.clone()))
        .collect();
    let served: BTreeSet<(String, String)> = tryon_mock::control_routes()
        .iter()
        .map(|(m, p)| ((*m).to_string(), (*p).to_string()))
        .collect();
    assert_eq!(
        served, documented,
        "the mock's control routes and openapi/tryon-mock-control.yaml differ"
    );
}

#[test]
fn the_python_wrapper_calls_exactly_the_documented_operations() {
    let doc = document();
    let documented: BTreeMap<String, (String, String)> = operations(&doc)
        .into_iter()
        .map(|op| (op.id, (op.method.to_uppercase(), op.path)))
        .collect();
    let text =
        std::fs::read_to_string(repo_file("python/src/tryon_mock/control_routes.json")).unwrap();
    let python: BTreeMap<String, (String, String)> = serde_json::from_str(&text).unwrap();
    assert_eq!(python, documented);
}
