//! The control API against its contract, [`tryon_mock::CONTROL_SPEC`]:
//! every documented operation is called with its example (and with bodies
//! that must be refused), and the mock's own spec check (feature
//! `spec-check`, on in these tests) judges each answer's status and JSON
//! body against the document, exactly as it judges the API's answers against
//! [`tryon_api::SPEC`]. (That every control route the mock serves is
//! documented is a unit test of `http::control`, whose route table is
//! private; the Python package's table of calls is generated from the
//! document by `cargo xtask codegen`; that each example matches its own
//! schema is a unit test of `spec_check`, whose validator is private.)
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use tryon_mock::{Credits, Fault, FaultRoute, MockServer, RetryAfter};

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn document() -> Value {
    serde_yaml::from_str(tryon_mock::CONTROL_SPEC).unwrap()
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

/// The control token of the tests that configure one.
const TOKEN: &str = "control-token-7c1e";

/// A mock with something in every collection: a billed job with a balance
/// (request log, billing) and a fault from the config (kept across resets);
/// with `token`, its control API needs it.
async fn seeded_server(token: Option<&str>) -> MockServer {
    let mut builder = MockServer::builder()
        .virtual_time()
        .credits(Credits::with_balance(10.0))
        .fault(Fault::server_error(FaultRoute::Result, 503).retry_after(RetryAfter::Seconds(2)));
    if let Some(token) = token {
        builder = builder.control_token(token);
    }
    let server = builder.start().await;
    common::submit(&server.uri(), &common::body(1)).await;
    server
}

/// Sends one call; `authorization` is the whole header value, if any.
async fn send(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<Vec<u8>>,
    authorization: Option<&str>,
) -> (u16, Vec<u8>) {
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    if let Some(value) = authorization {
        request = request.header("authorization", value);
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
        "{what}: answers that do not match tryon_mock::CONTROL_SPEC:\n{}",
        report.violations.join("\n")
    );
    assert_eq!(report.checked, 1 + calls, "{what}: answers checked");
    assert!(report.exceptions.is_empty(), "{what}: {report:?}");
    assert!(report.injected.is_empty(), "{what}: {report:?}");
    assert_eq!(report.off_spec, 0, "{what}: {report:?}");
}

/// The URL of `op` on `server`, with its query parameters' examples.
fn url_of(server: &MockServer, op: &Operation<'_>) -> String {
    let url = format!("{}{}", server.uri(), op.path);
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
    if query.is_empty() {
        url
    } else {
        format!("{url}?{}", query.join("&"))
    }
}

/// The example request body of `op`, if it takes one (and it must have an
/// example if it does).
fn example_body(op: &Operation<'_>) -> Option<Vec<u8>> {
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
    body
}

/// Calls `op` with its example (which must succeed) and, if it takes a
/// body, with bodies it must refuse; `authorization` goes with each call.
/// Returns how many calls were made.
async fn exercise(
    http: &reqwest::Client,
    server: &MockServer,
    op: &Operation<'_>,
    authorization: Option<&str>,
) -> u64 {
    let url = url_of(server, op);
    let body = example_body(op);
    let takes_body = body.is_some();
    let (status, answer) = send(http, op.method, &url, body, authorization).await;
    let mut calls = 1;
    assert!(
        (200..300).contains(&status),
        "{}: the example was refused with {status}: {}",
        op.id,
        String::from_utf8_lossy(&answer)
    );
    if takes_body {
        for (what, bad, want) in [
            ("not JSON", b"{not json".to_vec(), 400),
            ("wrong shape", br#"{"bogus": true}"#.to_vec(), 422),
        ] {
            let (status, _) = send(http, op.method, &url, Some(bad), authorization).await;
            calls += 1;
            assert_eq!(status, want, "{} ({what})", op.id);
        }
    }
    calls
}

#[tokio::test]
async fn every_documented_operation_answers_as_documented() {
    let doc = document();
    let http = reqwest::Client::new();
    let mut called = 0;
    for op in operations(&doc) {
        // A fresh, seeded mock per operation, so `reset` or `clearFaults`
        // cannot empty what a later operation reads.
        let server = seeded_server(None).await;
        let calls = exercise(&http, &server, &op, None).await;
        called += 1;
        assert_all_documented(&server, calls, &op.id);
    }
    assert!(called >= 11, "only {called} operations in the document");
}

/// Whether the document says `op` needs the control token: its own
/// `security`, or else the document's, names the `controlToken` scheme.
fn needs_token(doc: &Value, op: &Operation<'_>) -> bool {
    let security = op.op.get("security").unwrap_or(&doc["security"]);
    security
        .as_array()
        .unwrap()
        .iter()
        .any(|requirement| requirement.get("controlToken").is_some())
}

/// With a control token configured, every operation the document says needs
/// it answers 401 without it (or with another), that 401 is declared for the
/// operation and its body matches the declared schema (the spec check saw
/// every answer as documented, none by rule); the readiness probe needs no
/// token; and with the token every example works as without one.
#[tokio::test]
async fn with_a_control_token_every_operation_but_health_needs_it_as_documented() {
    let doc = document();
    let scheme = &doc["components"]["securitySchemes"]["controlToken"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    let http = reqwest::Client::new();
    let bearer = format!("Bearer {TOKEN}");
    let mut refused = BTreeSet::new();
    for op in operations(&doc) {
        let needs = needs_token(&doc, &op);
        let declares_401 = op.op["responses"].get("401").is_some();
        assert_eq!(
            declares_401, needs,
            "{}: declares 401 exactly when it needs the token",
            op.id
        );
        let server = seeded_server(Some(TOKEN)).await;
        let url = url_of(&server, &op);
        let mut calls = 0;
        let wrong_token = format!("Bearer {TOKEN}x");
        for authorization in [None, Some(wrong_token.as_str()), Some(TOKEN)] {
            let (status, answer) =
                send(&http, op.method, &url, example_body(&op), authorization).await;
            calls += 1;
            let answer = String::from_utf8_lossy(&answer);
            if needs {
                assert_eq!(status, 401, "{} with {authorization:?}: {answer}", op.id);
                refused.insert(op.id.clone());
            } else {
                assert_eq!(status, 200, "{} with {authorization:?}: {answer}", op.id);
            }
        }
        calls += exercise(&http, &server, &op, Some(&bearer)).await;
        assert_all_documented(&server, calls, &op.id);
    }
    let all: BTreeSet<String> = operations(&doc).into_iter().map(|op| op.id).collect();
    let expected: BTreeSet<String> = all.into_iter().filter(|id| id != "getHealth").collect();
    assert_eq!(refused, expected);
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
