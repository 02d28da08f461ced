//! The control API against its contract, `openapi/tryon-mock-control.yaml`:
//! every documented operation is called with its example (and with bodies
//! that must be refused) and each answer's status and JSON body are checked
//! against the document; every control route in the mock's source is
//! documented; and the Python package's table of calls
//! (`python/src/tryon_mock/control_routes.json`) is exactly the document's
//! operations.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
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

// ---- a small OpenAPI 3.0 schema validator ----------------------------------
//
// The parts the control document uses: `$ref`, `type`, `nullable`, `enum`,
// `required`, `properties`, `additionalProperties: false`, `items`, `oneOf`
// (exactly one must match), `allOf`, `minimum`/`maximum`,
// `exclusiveMinimum`.

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = r
                .trim_start_matches("#/")
                .split('/')
                .fold(doc, |cur, part| &cur[part]);
            assert!(!target.is_null(), "dangling $ref {r}");
            resolve(doc, target)
        }
        None => schema,
    }
}

fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if value.is_null() {
        if schema["nullable"] != json!(true) {
            errors.push(format!("{at}: null but not nullable"));
        }
        return;
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        validate(doc, part, value, at, errors);
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let matching = options
            .iter()
            .filter(|option| {
                let mut e = Vec::new();
                validate(doc, option, value, at, &mut e);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            errors.push(format!(
                "{at}: {value} matches {matching} of the oneOf options, not exactly one"
            ));
        }
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        errors.push(format!("{at}: {value} not in {options:?}"));
    }
    let type_ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        errors.push(format!("{at}: {value} is not of type {}", schema["type"]));
        return;
    }
    if let Some(n) = value.as_f64() {
        let exclusive = schema["exclusiveMinimum"] == json!(true);
        if let Some(min) = schema["minimum"].as_f64()
            && (n < min || (exclusive && n <= min))
        {
            errors.push(format!("{at}: {n} below the minimum {min}"));
        }
        if schema["maximum"].as_f64().is_some_and(|max| n > max) {
            errors.push(format!("{at}: {n} above the maximum"));
        }
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            let required = required.as_str().unwrap();
            if !object.contains_key(required) {
                errors.push(format!("{at}: missing required {required}"));
            }
        }
        for (k, v) in object {
            match schema["properties"].get(k) {
                Some(s) => validate(doc, s, v, &format!("{at}.{k}"), errors),
                None if schema["additionalProperties"] == json!(false) => {
                    errors.push(format!("{at}: undeclared property {k}"));
                }
                None => {}
            }
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            validate(doc, &schema["items"], item, &format!("{at}[{i}]"), errors);
        }
    }
}

fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let mut errors = Vec::new();
    validate(doc, schema, value, at, &mut errors);
    errors
}

#[test]
fn the_validator_rejects_what_the_schemas_exclude() {
    let doc = document();
    let schema = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let fault = schema("Fault");
    let good = json!({"route": "status", "kind": {"status": {"code": 503, "retry_after": null}}, "times": null});
    assert_eq!(check(&doc, &fault, &good, "fault"), Vec::<String>::new());
    for bad in [
        json!({"route": "nowhere", "kind": "not_json"}),
        json!({"route": "status", "kind": "explode"}),
        json!({"route": "status", "kind": {"status": {"code": 503}, "latency": 1.0}}),
        json!({"route": "status", "kind": {"latency": -1.0}}),
        json!({"route": "status", "kind": "not_json", "extra": 1}),
        json!({"kind": "not_json"}),
    ] {
        assert!(!check(&doc, &fault, &bad, "fault").is_empty(), "{bad}");
    }
    assert!(!check(&doc, &schema("Now"), &json!({"now": "3"}), "now").is_empty());
    assert!(
        !check(
            &doc,
            &schema("RateLimit"),
            &json!({"per_second": 0, "burst": 1}),
            "r"
        )
        .is_empty()
    );
    assert!(check(&doc, &schema("RateLimit"), &Value::Null, "r").is_empty());
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

/// Checks an answer against the operation's documented responses.
fn check_answer(
    doc: &Value,
    op: &Operation<'_>,
    status: u16,
    body: &[u8],
    what: &str,
) -> Vec<String> {
    let at = format!(
        "{} {} ({what}) -> {status}",
        op.method.to_uppercase(),
        op.path
    );
    let Some(response) = op.op["responses"].get(status.to_string()) else {
        return vec![format!("{at}: status not documented")];
    };
    let response = resolve(doc, response);
    let Some(schema) = response.pointer("/content/application~1json/schema") else {
        return vec![format!("{at}: documented without a JSON schema")];
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => check(doc, schema, &value, &at),
        Err(e) => vec![format!(
            "{at}: body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )],
    }
}

#[tokio::test]
async fn every_documented_operation_answers_as_documented() {
    let doc = document();
    let http = reqwest::Client::new();
    let mut errors = Vec::new();
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
            .map(|example| {
                // The example is itself checked against the request schema.
                let at = format!("{} example", op.id);
                errors.extend(check(&doc, request_schema.unwrap(), example, &at));
                serde_json::to_vec(example).unwrap()
            });
        assert_eq!(
            request_schema.is_some(),
            body.is_some(),
            "{}: a request body needs an example",
            op.id
        );
        let (status, answer) = send(&http, op.method, &url, body).await;
        called += 1;
        if !(200..300).contains(&status) {
            errors.push(format!(
                "{}: the example was refused with {status}: {}",
                op.id,
                String::from_utf8_lossy(&answer)
            ));
        }
        errors.extend(check_answer(&doc, &op, status, &answer, "example"));

        // Bodies that must be refused, each answer as documented.
        if request_schema.is_some() {
            for (what, bad, want) in [
                ("not JSON", b"{not json".to_vec(), 400),
                ("wrong shape", br#"{"bogus": true}"#.to_vec(), 422),
            ] {
                let (status, answer) = send(&http, op.method, &url, Some(bad)).await;
                if status != want {
                    errors.push(format!("{} ({what}): {status}, wanted {want}", op.id));
                }
                errors.extend(check_answer(&doc, &op, status, &answer, what));
            }
        }
    }
    assert!(called >= 11, "only {called} operations in the document");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[tokio::test]
async fn methods_the_document_does_not_list_are_not_served() {
    let doc = document();
    let server = MockServer::builder().virtual_time().start().await;
    let http = reqwest::Client::new();
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
