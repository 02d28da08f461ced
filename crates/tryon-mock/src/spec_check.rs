//! Checks response bodies against the crate's two `OpenAPI` 3.0 documents
//! (feature `spec-check`): `openapi/segmind-tryon.yaml` for the API and
//! `openapi/tryon-mock-control.yaml` for the control API under `/__mock/`.
//! The mock calls [`check_response`] on every JSON body it sends; tests can
//! call it on bodies of their own.
//!
//! The validator is deliberately small and private: it understands the parts
//! of `OpenAPI` 3.0 the two documents use (`$ref`, `type`, `nullable`, `enum`,
//! `required`, `properties`, `additionalProperties`, `items`, `oneOf`,
//! `allOf`, `minimum`, `exclusiveMinimum`, `maximum`, `minItems`) and is
//! stricter than the documents in one way: a property the schema does not
//! declare is an error unless the schema allows others
//! (`additionalProperties`), so the mock cannot drift by adding fields.
//! It does not check `pattern` or `format`.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::{Value, json};

/// The API spec, as packaged with this crate: a copy of the workspace's
/// `openapi/segmind-tryon.yaml`, kept identical by a test
/// (`tests/images_and_schema.rs`, `the_packaged_spec_is_the_workspace_spec`).
pub(crate) const SPEC_YAML: &str = include_str!("../openapi/segmind-tryon.yaml");

/// The control API's document, packaged the same way (a copy of the
/// workspace's `openapi/tryon-mock-control.yaml`, kept identical by the same
/// test).
const CONTROL_YAML: &str = include_str!("../openapi/tryon-mock-control.yaml");

/// Where the control API lives; its answers are checked against
/// [`CONTROL_YAML`], every other path against [`SPEC_YAML`].
const CONTROL_PREFIX: &str = "/__mock/";

/// Parses a compiled-in document once.
///
/// # Panics
/// If the compiled-in document is not valid YAML.
fn parsed(cell: &'static OnceLock<Value>, name: &str, text: &str) -> &'static Value {
    cell.get_or_init(|| {
        serde_yaml::from_str(text)
            .unwrap_or_else(|e| panic!("tryon-mock: openapi/{name} does not parse: {e}"))
    })
}

/// The API spec the checks use.
fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    parsed(&SPEC, "segmind-tryon.yaml", SPEC_YAML)
}

/// The control API's document the checks use.
fn control() -> &'static Value {
    static CONTROL: OnceLock<Value> = OnceLock::new();
    parsed(&CONTROL, "tryon-mock-control.yaml", CONTROL_YAML)
}

/// Responses the mock sends that the spec does not list for their
/// operation: `(method, path template, status)`. Their bodies must still be
/// an `ErrorBody`. Empty today: the spec documents every status the mock
/// sends on its own. If the mock gains one the spec lacks, it goes here.
///
/// Three kinds of answer are outside this list by rule, their bodies checked
/// as the document's `ErrorBody`: a 405 for a method the document does not
/// declare on a path (it has no operation to hang a response on); statuses
/// a test injects with a [`Fault`](crate::Fault) (see [`check_injected`]);
/// and a control API 401 for a missing control token, which the control
/// document states once for every operation but `getHealth` (in its
/// description) rather than per operation.
pub const EXCEPTIONS: &[(&str, &str, u16)] = &[];

/// How a body was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Against the spec's schema for this operation and status.
    Documented,
    /// An entry of [`EXCEPTIONS`], as an `ErrorBody`; holds
    /// `"METHOD template status"`.
    Exception(String),
    /// A path outside the spec (`/outputs/…`, `/assets/…`, unknown paths),
    /// as an `ErrorBody`.
    OffSpec,
    /// A status a test injected with a fault, as an `ErrorBody`; holds
    /// `"METHOD path status"`.
    Injected(String),
}

/// What a server's spec check saw ([`MockServer::spec_report`](crate::MockServer::spec_report)).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SpecReport {
    /// JSON bodies checked.
    pub checked: u64,
    /// Status codes of the checked bodies.
    pub statuses: BTreeSet<u16>,
    /// The [`EXCEPTIONS`] that were used, as `"METHOD template status"`.
    pub exceptions: BTreeSet<String>,
    /// Bodies on paths outside the spec (checked as `ErrorBody`).
    pub off_spec: u64,
    /// Statuses injected by a fault, as `"METHOD path status"` (their
    /// bodies checked as `ErrorBody`).
    pub injected: BTreeSet<String>,
    /// Every problem found; non-empty fails the server's drop.
    pub violations: Vec<String>,
}

impl SpecReport {
    pub(crate) fn record(&mut self, status: u16, result: Result<Checked, Vec<String>>) {
        self.checked += 1;
        self.statuses.insert(status);
        match result {
            Ok(Checked::Documented) => {}
            Ok(Checked::Exception(e)) => {
                self.exceptions.insert(e);
            }
            Ok(Checked::OffSpec) => self.off_spec += 1,
            Ok(Checked::Injected(e)) => {
                self.injected.insert(e);
            }
            Err(mut errors) => self.violations.append(&mut errors),
        }
    }
}

/// Follows `$ref`s (a dangling one gives `null`).
fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let mut cur = spec;
            for part in r.trim_start_matches("#/").split('/') {
                cur = &cur[part];
            }
            resolve(spec, cur)
        }
        None => v,
    }
}

/// Validates `value` against an `OpenAPI` 3.0 schema of the document `spec`,
/// pushing one message per problem onto `errors` (prefixed with `at`).
fn validate(spec: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let resolved = resolve(spec, schema);
    if resolved.is_null()
        && let Some(r) = schema.get("$ref")
    {
        errors.push(format!("{at}: dangling $ref {r}"));
        return;
    }
    let schema = resolved;
    if value.is_null() {
        if schema["nullable"] != json!(true) {
            errors.push(format!("{at}: null but not nullable"));
        }
        return;
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        validate(spec, part, value, at, errors);
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let matching = options
            .iter()
            .filter(|option| {
                let mut e = Vec::new();
                validate(spec, option, value, at, &mut e);
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
    let ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !ok {
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
        if let Some(max) = schema["maximum"].as_f64()
            && n > max
        {
            errors.push(format!("{at}: {n} above the maximum {max}"));
        }
    }
    if let Some(obj) = value.as_object() {
        validate_object(spec, schema, obj, at, errors);
    }
    if let Some(items) = value.as_array() {
        if schema["minItems"]
            .as_u64()
            .is_some_and(|m| (items.len() as u64) < m)
        {
            errors.push(format!("{at}: too few items"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(spec, item_schema, item, &format!("{at}[{i}]"), errors);
            }
        }
    }
}

/// The object keywords: `required`, `properties`, `additionalProperties`.
/// Only an object schema (`type: object` or `properties`) judges the
/// properties; one that only combines others (`oneOf`/`allOf`) or says
/// nothing leaves them to those.
fn validate_object(
    spec: &Value,
    schema: &Value,
    obj: &serde_json::Map<String, Value>,
    at: &str,
    errors: &mut Vec<String>,
) {
    for req in schema["required"].as_array().into_iter().flatten() {
        if let Some(req) = req.as_str()
            && !obj.contains_key(req)
        {
            errors.push(format!("{at}: missing required {req}"));
        }
    }
    if schema.get("properties").is_none() && schema["type"] != "object" {
        return;
    }
    for (k, v) in obj {
        match (schema["properties"].get(k), &schema["additionalProperties"]) {
            (Some(s), _) => validate(spec, s, v, &format!("{at}.{k}"), errors),
            (None, Value::Bool(true)) => {}
            (None, extra) if extra.is_object() => {
                validate(spec, extra, v, &format!("{at}.{k}"), errors);
            }
            (None, _) => errors.push(format!("{at}: undeclared property {k}")),
        }
    }
}

/// Finds the spec's path template for a concrete path.
fn template(spec: &Value, path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split('/').collect();
    spec["paths"]
        .as_object()?
        .keys()
        .find(|t| {
            let ts: Vec<&str> = t.split('/').collect();
            ts.len() == segs.len()
                && ts
                    .iter()
                    .zip(&segs)
                    .all(|(a, b)| a.starts_with('{') || a == b)
        })
        .cloned()
}

/// Checks the body of a response whose status a test injected with a
/// [`Fault`](crate::Fault): the status is the test's choice, the body must
/// still be an `ErrorBody`.
///
/// # Errors
/// Every problem: the body is not JSON or not an `ErrorBody`.
pub fn check_injected(
    method: &str,
    path: &str,
    status: u16,
    body: &[u8],
) -> Result<Checked, Vec<String>> {
    let spec = document_for(path);
    let at = format!("{method} {path} {status} (injected)");
    let value: Value =
        serde_json::from_slice(body).map_err(|e| vec![format!("{at}: body is not JSON: {e}")])?;
    let mut errors = Vec::new();
    let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
    validate(spec, &error_body, &value, &at, &mut errors);
    if errors.is_empty() {
        Ok(Checked::Injected(format!("{method} {path} {status}")))
    } else {
        Err(errors)
    }
}

/// The document that describes `path`: the control API's for `/__mock/…`,
/// the API spec for everything else.
fn document_for(path: &str) -> &'static Value {
    if path.starts_with(CONTROL_PREFIX) {
        control()
    } else {
        spec()
    }
}

/// Checks one JSON response body the mock built on its own, sent for
/// `method path` with `status`, against the schema its document (the API
/// spec, or the control API's document for `/__mock/…`) gives that
/// operation and status.
///
/// # Errors
/// Every problem: the body is not JSON, does not match the schema, or the
/// operation does not document `status` (and it is not one of the
/// [`EXCEPTIONS`] or a rule listed there).
pub fn check_response(
    method: &str,
    path: &str,
    status: u16,
    body: &[u8],
) -> Result<Checked, Vec<String>> {
    let spec = document_for(path);
    let at = format!("{method} {path} {status}");
    let value: Value =
        serde_json::from_slice(body).map_err(|e| vec![format!("{at}: body is not JSON: {e}")])?;
    // The legacy poll URL is not in the spec; the mock serves it as the v2
    // result, so it is checked as that.
    let path = path.replace("/v1/requests/", "/v2/requests/");
    let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
    let (schema, checked) = match template(spec, &path) {
        None => (error_body, Checked::OffSpec),
        Some(t) => {
            let operation = spec["paths"][&t].get(method.to_lowercase());
            let response = operation.and_then(|op| op["responses"].get(status.to_string()));
            match response {
                None if operation.is_none() && status == 405 => {
                    (error_body, Checked::Exception(format!("{method} {t} 405")))
                }
                Some(r) => (
                    resolve(spec, r)["content"]["application/json"]["schema"].clone(),
                    Checked::Documented,
                ),
                None if EXCEPTIONS.contains(&(method, t.as_str(), status))
                    || (status == 401 && unauthorized_rule(&t)) =>
                {
                    (
                        error_body,
                        Checked::Exception(format!("{method} {t} {status}")),
                    )
                }
                None => {
                    return Err(vec![format!(
                        "{at}: {} does not document {status} for {method} {t} \
                         (and it is not in spec_check::EXCEPTIONS)",
                        document_name(spec)
                    )]);
                }
            }
        }
    };
    if schema.is_null() {
        return Err(vec![format!(
            "{at}: a JSON body where {} documents none",
            document_name(spec)
        )]);
    }
    let mut errors = Vec::new();
    validate(spec, &schema, &value, &at, &mut errors);
    if errors.is_empty() {
        Ok(checked)
    } else {
        Err(errors)
    }
}

/// The control document's rule for 401: every operation but `getHealth`
/// answers it when the mock has a control token and the call lacks it.
fn unauthorized_rule(template: &str) -> bool {
    template.starts_with(CONTROL_PREFIX) && template != "/__mock/health"
}

/// The file a parsed document came from, for messages.
fn document_name(doc: &Value) -> &'static str {
    if std::ptr::eq(doc, control()) {
        "openapi/tryon-mock-control.yaml"
    } else {
        "openapi/segmind-tryon.yaml"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_bodies_pass_and_drift_is_caught() {
        let ok = br#"{"status":"COMPLETED","request_id":"x","metrics":{"inference_time":2.0}}"#;
        assert_eq!(
            check_response("GET", "/v2/requests/abc/status", 200, ok),
            Ok(Checked::Documented)
        );
        let extra = br#"{"status":"COMPLETED","request_id":"x","surprise":1}"#;
        let errs = check_response("GET", "/v2/requests/abc/status", 200, extra).unwrap_err();
        assert!(errs[0].contains("undeclared property surprise"), "{errs:?}");
        let bad_enum = br#"{"status":"DONE","request_id":"x"}"#;
        assert!(check_response("GET", "/v2/requests/abc/status", 200, bad_enum).is_err());
    }

    #[test]
    fn exceptions_are_explicit() {
        let e = br#"{"error":"Method Not Allowed"}"#;
        assert_eq!(
            check_response("GET", "/v2/p-image-try-on", 405, e),
            Ok(Checked::Exception("GET /v2/p-image-try-on 405".into()))
        );
        // Not listed: an undocumented status the mock made up is a violation.
        assert!(check_response("POST", "/v2/p-image-try-on", 503, e).is_err());
        // Injected by a test: only the body is checked.
        assert_eq!(
            check_injected("POST", "/v2/p-image-try-on", 503, e),
            Ok(Checked::Injected("POST /v2/p-image-try-on 503".into()))
        );
        assert!(check_injected("POST", "/v2/p-image-try-on", 503, b"{}").is_err());
        assert_eq!(
            check_response("GET", "/outputs/x.png", 404, e),
            Ok(Checked::OffSpec)
        );
    }

    fn check(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        validate(doc, schema, value, "v", &mut errors);
        errors
    }

    fn schema(name: &str) -> Value {
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    #[test]
    fn the_validator_rejects_what_the_control_schemas_exclude() {
        let doc = control();
        let fault = schema("Fault");
        let good = json!({"route": "status", "kind": {"status": {"code": 503, "retry_after": null}}, "times": null});
        assert_eq!(check(doc, &fault, &good), Vec::<String>::new());
        let with_retry = json!({"route": "status", "kind": {"status": {"code": 503, "retry_after": {"seconds": 2}}}});
        assert_eq!(check(doc, &fault, &with_retry), Vec::<String>::new());
        for bad in [
            json!({"route": "nowhere", "kind": "not_json"}),
            json!({"route": "status", "kind": "explode"}),
            json!({"route": "status", "kind": {"status": {"code": 503}, "latency": 1.0}}),
            json!({"route": "status", "kind": {"latency": -1.0}}),
            json!({"route": "status", "kind": {"status": {"code": 503, "retry_after": {"minutes": 1}}}}),
            json!({"route": "status", "kind": "not_json", "extra": 1}),
            json!({"kind": "not_json"}),
        ] {
            assert!(!check(doc, &fault, &bad).is_empty(), "{bad}");
        }
        assert!(!check(doc, &schema("Now"), &json!({"now": "3"})).is_empty());
        assert!(!check(doc, &schema("Now"), &json!({"now": -1.0})).is_empty());
        let rate = schema("RateLimit");
        assert!(!check(doc, &rate, &json!({"per_second": 0, "burst": 1})).is_empty());
        assert!(check(doc, &rate, &json!({"per_second": 0.5, "burst": 1})).is_empty());
        assert!(check(doc, &rate, &Value::Null).is_empty());
        assert!(!check(doc, &schema("Empty"), &json!({"x": 1})).is_empty());
        let dangling = check(doc, &schema("Nowhere"), &json!({}));
        assert!(dangling[0].contains("dangling $ref"), "{dangling:?}");
    }

    /// Every example in both documents (request bodies, responses,
    /// parameters) matches its own schema, so a client generated from a
    /// document and the mock agree on them.
    #[test]
    fn every_example_in_the_documents_matches_its_schema() {
        for doc in [spec(), control()] {
            let mut errors = Vec::new();
            let mut examples = 0;
            for (path, item) in doc["paths"].as_object().into_iter().flatten() {
                for (method, op) in item.as_object().into_iter().flatten() {
                    let body = resolve(doc, &op["requestBody"]);
                    let responses = op["responses"].as_object().into_iter().flatten();
                    let media = std::iter::once(("request".to_string(), body))
                        .chain(responses.map(|(code, r)| (code.clone(), resolve(doc, r))))
                        .filter_map(|(what, r)| {
                            Some((what, r["content"].get("application/json")?))
                        });
                    let params = op["parameters"].as_array().into_iter().flatten();
                    let params = params.map(|p| (format!("parameter {}", p["name"]), p));
                    for (what, m) in media.chain(params) {
                        if let Some(example) = m.get("example") {
                            examples += 1;
                            let at = format!("{method} {path} {what} example");
                            validate(doc, &m["schema"], example, &at, &mut errors);
                        }
                    }
                }
            }
            assert!(errors.is_empty(), "{}: {errors:#?}", document_name(doc));
            assert!(
                examples >= 10,
                "{}: {examples} examples",
                document_name(doc)
            );
        }
    }

    #[test]
    fn control_answers_are_checked_against_the_control_document() {
        assert_eq!(
            check_response("GET", "/__mock/now", 200, br#"{"now":3.0}"#),
            Ok(Checked::Documented)
        );
        let errs = check_response("GET", "/__mock/now", 200, br#"{"time":3.0}"#).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("missing required now")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.contains("undeclared property time")),
            "{errs:?}"
        );
        let errs = check_response("GET", "/__mock/now", 500, br#"{"error":"x"}"#).unwrap_err();
        assert!(
            errs[0].contains("tryon-mock-control.yaml does not document 500"),
            "{errs:?}"
        );
        let e = br#"{"error":"no"}"#;
        assert_eq!(
            check_response("PUT", "/__mock/keys", 401, e),
            Ok(Checked::Exception("PUT /__mock/keys 401".into()))
        );
        assert!(check_response("GET", "/__mock/health", 401, e).is_err());
        assert_eq!(
            check_response("GET", "/__mock/advance", 405, e),
            Ok(Checked::Exception("GET /__mock/advance 405".into()))
        );
        // The control document's ErrorBody has nothing but `error`.
        assert!(
            check_response(
                "GET",
                "/__mock/bogus",
                404,
                br#"{"error":"x","status":"y"}"#
            )
            .is_err()
        );
        assert_eq!(
            check_response("GET", "/__mock/bogus", 404, e),
            Ok(Checked::OffSpec)
        );
    }
}
