//! Checks response bodies against `openapi/segmind-tryon.yaml` (feature
//! `spec-check`). The mock calls [`check_response`] on every JSON body it
//! sends; tests can call it on bodies of their own.
//!
//! The validator is deliberately small: it understands the parts of `OpenAPI`
//! 3.0 the spec uses (`$ref`, `type`, `nullable`, `enum`, `required`,
//! `properties`, `items`, `minimum`, `maximum`, `minItems`) and is stricter
//! than the spec in one way: a property the schema does not declare is an
//! error, so the mock cannot drift by adding fields.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::{Value, json};

/// The spec, as packaged with this crate: a copy of the workspace's
/// `openapi/segmind-tryon.yaml`, kept identical by a test
/// (`tests/images_and_schema.rs`, `the_packaged_spec_is_the_workspace_spec`).
pub(crate) const SPEC_YAML: &str = include_str!("../openapi/segmind-tryon.yaml");

/// The spec the checks use, parsed once (it is compiled in).
///
/// # Panics
/// If the compiled-in spec is not valid YAML.
fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text = SPEC_YAML;
        serde_yaml::from_str(text).unwrap_or_else(|e| {
            panic!("tryon-mock: openapi/segmind-tryon.yaml does not parse: {e}")
        })
    })
}

/// Responses the mock sends that the spec does not list for their
/// operation: `(method, path template, status)`. Their bodies must still be
/// an `ErrorBody`. Empty today: the spec documents every status the mock
/// sends on its own. If the mock gains one the spec lacks, it goes here.
///
/// Two kinds of answer are outside this list by rule, their bodies checked
/// as an `ErrorBody`: a 405 for a method the spec does not declare on a
/// path (it has no operation to hang a response on), and statuses a test
/// injects with a [`Fault`](crate::Fault) (see [`check_injected`]).
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

/// Follows `$ref`s.
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

/// Validates `value` against an `OpenAPI` 3.0 schema, pushing one message per
/// problem onto `errors` (prefixed with `at`).
fn validate(spec: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    if value.is_null() {
        if schema["nullable"] != json!(true) {
            errors.push(format!("{at}: null but not nullable"));
        }
        return;
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
    if let Some(n) = value.as_f64()
        && (schema["minimum"].as_f64().is_some_and(|m| n < m)
            || schema["maximum"].as_f64().is_some_and(|m| n > m))
    {
        errors.push(format!("{at}: {n} out of bounds"));
    }
    if let Some(obj) = value.as_object() {
        for req in schema["required"].as_array().into_iter().flatten() {
            if let Some(req) = req.as_str()
                && !obj.contains_key(req)
            {
                errors.push(format!("{at}: missing required {req}"));
            }
        }
        for (k, v) in obj {
            match schema["properties"].get(k) {
                Some(s) => validate(spec, s, v, &format!("{at}.{k}"), errors),
                None => errors.push(format!("{at}: undeclared property {k}")),
            }
        }
    }
    if let Some(items) = value.as_array() {
        if schema["minItems"]
            .as_u64()
            .is_some_and(|m| (items.len() as u64) < m)
        {
            errors.push(format!("{at}: too few items"));
        }
        for (i, item) in items.iter().enumerate() {
            validate(spec, &schema["items"], item, &format!("{at}[{i}]"), errors);
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
    let spec = spec();
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

/// Checks one JSON response body the mock built on its own, sent for
/// `method path` with `status`, against the spec's schema for that
/// operation and status.
///
/// # Errors
/// Every problem: the body is not JSON, does not match the schema, or the
/// operation does not document `status` (and it is not one of the
/// [`EXCEPTIONS`]).
pub fn check_response(
    method: &str,
    path: &str,
    status: u16,
    body: &[u8],
) -> Result<Checked, Vec<String>> {
    let spec = spec();
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
                None if EXCEPTIONS.contains(&(method, t.as_str(), status)) => (
                    error_body,
                    Checked::Exception(format!("{method} {t} {status}")),
                ),
                None => {
                    return Err(vec![format!(
                        "{at}: the spec does not document {status} for {method} {t} \
                         (and it is not in spec_check::EXCEPTIONS)"
                    )]);
                }
            }
        }
    };
    if schema.is_null() {
        return Err(vec![format!(
            "{at}: a JSON body where the spec documents none"
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
}
