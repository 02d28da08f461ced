//! Checks response bodies against two `OpenAPI` 3.0 documents (feature
//! `spec-check`): the API spec, [`tryon_api::SPEC`], and the control API's
//! document under `/__mock/`, [`CONTROL_SPEC`](crate::CONTROL_SPEC).
//! The mock calls [`check_response`] on every JSON body it sends; tests can
//! call it on bodies of their own.
//!
//! The validator is deliberately small and private: it understands the parts
//! of `OpenAPI` 3.0 the two documents use (`$ref`, `type`, `nullable`, `enum`,
//! `required`, `properties`, `additionalProperties`, `items`, `oneOf`,
//! `allOf`, `minimum`, `exclusiveMinimum`, `maximum`, `minItems`,
//! `pattern`, `format`) and is stricter than the documents in one way: a
//! property the schema does not declare is an error unless the schema allows
//! others (`additionalProperties`), so the mock cannot drift by adding
//! fields.
//!
//! `pattern` is ECMA-262, as `OpenAPI` says, matched anywhere in the string
//! (JSON Schema's rule) with `regress`, the engine the generated API types
//! use; each pattern is compiled once, and one that does not compile is a
//! problem reported once, naming where the schema sits in its document.
//! `format` is checked for the formats the documents use on answers: `uri`
//! (an absolute URI), `double` (a number) and `uint64` (an integer in
//! `0..=u64::MAX`); every other format, such as `binary` on the API's
//! multipart request fields, is ignored, as JSON Schema says of formats an
//! implementation does not know.

use std::sync::OnceLock;

use serde_json::{Value, json};

mod at;
mod formats;
mod report;

use at::{SchemaAt, Step};
use formats::{format_departure, pattern_matches};
pub use report::{Checked, SpecReport};

/// Where the control API lives; its answers are checked against
/// [`CONTROL_SPEC`](crate::CONTROL_SPEC), every other path against
/// [`tryon_api::SPEC`].
const CONTROL_PREFIX: &str = "/__mock/";

/// How messages name the API spec.
const SPEC_NAME: &str = "tryon-api's openapi/segmind-tryon.yaml";

/// How messages name the control API's document.
const CONTROL_NAME: &str = "tryon-mock's openapi/tryon-mock-control.yaml";

/// Parses a compiled-in document once.
///
/// # Panics
/// If the compiled-in document is not valid YAML.
fn parsed(cell: &'static OnceLock<Value>, name: &str, text: &str) -> &'static Value {
    cell.get_or_init(|| {
        serde_yaml::from_str(text)
            .unwrap_or_else(|e| panic!("tryon-mock: {name} does not parse: {e}"))
    })
}

/// The API spec the checks use.
pub(crate) fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    parsed(&SPEC, SPEC_NAME, tryon_api::SPEC)
}

/// The control API's document the checks use.
fn control() -> &'static Value {
    static CONTROL: OnceLock<Value> = OnceLock::new();
    parsed(&CONTROL, CONTROL_NAME, crate::CONTROL_SPEC)
}

/// Responses the mock sends that the spec does not list for their
/// operation: `(method, path template, status)`. Their bodies must still be
/// an `ErrorBody`. Empty today: the spec documents every status the mock
/// sends on its own. If the mock gains one the spec lacks, it goes here.
///
/// Two kinds of answer are outside this list by rule, their bodies checked
/// as the document's `ErrorBody`: an answer to a method the document does
/// not declare on a path (it has no operation to hang a response on): a
/// 405, or on the control API a 401 for a missing control token, which the
/// mock checks before the method; and statuses a test injects with a
/// [`Fault`](crate::Fault) (see [`check_injected`]). A control operation's
/// own 401 is declared in the control document, so it is checked as
/// documented.
pub const EXCEPTIONS: &[(&str, &str, u16)] = &[];

/// One departure from a schema: where, what the document says, what came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON pointer (RFC 6901) into the checked value; `""` is the whole.
    pub pointer: String,
    /// What the document says belongs there.
    pub expected: String,
    /// What was there instead.
    pub actual: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{at}: expected {}, got {}", self.expected, self.actual)
    }
}

/// `parent` extended by one reference token, escaped per RFC 6901.
fn child(parent: &str, token: &str) -> String {
    format!("{parent}/{}", token.replace('~', "~0").replace('/', "~1"))
}

/// Follows `$ref`s (a dangling one gives `null`).
pub(crate) fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    resolve_named(spec, v).0
}

/// Follows `$ref`s, returning the schema and the last `$ref` followed (if
/// any), which names where the schema sits in the document.
fn resolve_named<'a>(spec: &'a Value, v: &'a Value) -> (&'a Value, Option<&'a str>) {
    let mut named = None;
    let mut cur = v;
    // A bound, so a `$ref` cycle in a document gives `null`, not a hang.
    for _ in 0..64 {
        let Some(r) = cur.get("$ref").and_then(Value::as_str) else {
            return (cur, named);
        };
        named = Some(r);
        let mut target = spec;
        for part in r.trim_start_matches("#/").split('/') {
            target = &target[part];
        }
        cur = target;
    }
    (&Value::Null, named)
}

/// Validates `value` against an `OpenAPI` 3.0 schema of the document `spec`,
/// pushing one [`Problem`] per departure onto `errors` (`at` is the JSON
/// pointer of `value`).
pub(crate) fn validate(
    spec: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    errors: &mut Vec<Problem>,
) {
    let start = SchemaAt {
        parent: None,
        step: Step::Start,
    };
    walk(spec, schema, value, at, &start, errors);
}

/// [`validate`], knowing where `schema` sits (`from`) for messages.
fn walk(
    spec: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    from: &SchemaAt<'_>,
    errors: &mut Vec<Problem>,
) {
    let mut push = |expected: String, actual: String| {
        errors.push(Problem {
            pointer: at.to_string(),
            expected,
            actual,
        });
    };
    let (resolved, named) = resolve_named(spec, schema);
    if resolved.is_null()
        && let Some(r) = named
    {
        push(format!("a schema at {r}"), "a dangling $ref".into());
        return;
    }
    let referenced;
    let from = match named {
        Some(r) => {
            referenced = from.then(Step::Ref(r));
            &referenced
        }
        None => from,
    };
    let schema = resolved;
    if value.is_null() {
        if schema["nullable"] != json!(true) {
            push("a value (not nullable)".into(), "null".into());
        }
        return;
    }
    for (i, part) in schema["allOf"].as_array().into_iter().flatten().enumerate() {
        walk(
            spec,
            part,
            value,
            at,
            &from.then(Step::Index("allOf", i)),
            errors,
        );
    }
    let mut push = |expected: String, actual: String| {
        errors.push(Problem {
            pointer: at.to_string(),
            expected,
            actual,
        });
    };
    if let Some(options) = schema["oneOf"].as_array() {
        let matching = one_of_matching(spec, options, value, at, from);
        if matching != 1 {
            push(
                "a value matching exactly one of the oneOf options".into(),
                format!("{value}, matching {matching}"),
            );
        }
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        let list: Vec<String> = options.iter().map(Value::to_string).collect();
        push(format!("one of {}", list.join(", ")), value.to_string());
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
        push(format!("type {}", schema["type"]), value.to_string());
        return;
    }
    validate_scalar(schema, value, from, &mut push);
    if let Some(obj) = value.as_object() {
        validate_object(spec, schema, obj, at, from, errors);
    }
    if let Some(items) = value.as_array()
        && let Some(item_schema) = schema.get("items")
    {
        let from = from.then(Step::Key("items", None));
        for (i, item) in items.iter().enumerate() {
            walk(
                spec,
                item_schema,
                item,
                &child(at, &i.to_string()),
                &from,
                errors,
            );
        }
    }
}

/// How many of the `oneOf` `options` `value` matches.
fn one_of_matching(
    spec: &Value,
    options: &[Value],
    value: &Value,
    at: &str,
    from: &SchemaAt<'_>,
) -> usize {
    options
        .iter()
        .enumerate()
        .filter(|(i, option)| {
            let mut e = Vec::new();
            walk(
                spec,
                option,
                value,
                at,
                &from.then(Step::Index("oneOf", *i)),
                &mut e,
            );
            e.is_empty()
        })
        .count()
}

/// The keywords that judge a value on its own: `format`, `pattern`,
/// `minimum`, `exclusiveMinimum`, `maximum`, `minItems`; each departure goes
/// to `push` as (expected, actual).
fn validate_scalar(
    schema: &Value,
    value: &Value,
    from: &SchemaAt<'_>,
    push: &mut impl FnMut(String, String),
) {
    if let Some(format) = schema["format"].as_str()
        && let Some(expected) = format_departure(format, value)
    {
        push(expected, value.to_string());
    }
    if let Some(pattern) = schema["pattern"].as_str()
        && let Some(text) = value.as_str()
    {
        match pattern_matches(pattern, text) {
            Ok(true) | Err(None) => {}
            Ok(false) => push(
                format!("a string matching pattern {pattern}"),
                value.to_string(),
            ),
            Err(Some(error)) => push(
                format!("a pattern that compiles (ECMA-262) at {from}/pattern"),
                format!("{pattern:?}, which does not: {error}"),
            ),
        }
    }
    if let Some(n) = value.as_f64() {
        let exclusive = schema["exclusiveMinimum"] == json!(true);
        if let Some(min) = schema["minimum"].as_f64()
            && (n < min || (exclusive && n <= min))
        {
            let op = if exclusive { ">" } else { ">=" };
            push(format!("a number {op} {min} (the minimum)"), n.to_string());
        }
        if let Some(max) = schema["maximum"].as_f64()
            && n > max
        {
            push(format!("a number <= {max} (the maximum)"), n.to_string());
        }
    }
    if let Some(items) = value.as_array()
        && let Some(min) = schema["minItems"].as_u64()
        && (items.len() as u64) < min
    {
        push(
            format!("at least {min} items"),
            format!("{} (too few items)", items.len()),
        );
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
    from: &SchemaAt<'_>,
    errors: &mut Vec<Problem>,
) {
    for req in schema["required"].as_array().into_iter().flatten() {
        if let Some(req) = req.as_str()
            && !obj.contains_key(req)
        {
            errors.push(Problem {
                pointer: child(at, req),
                expected: format!("required property {req}"),
                actual: "missing required property".into(),
            });
        }
    }
    if schema.get("properties").is_none() && schema["type"] != "object" {
        return;
    }
    for (k, v) in obj {
        let here = child(at, k);
        match (schema["properties"].get(k), &schema["additionalProperties"]) {
            (Some(s), _) => {
                let from = from.then(Step::Key("properties", Some(k)));
                walk(spec, s, v, &here, &from, errors);
            }
            (None, Value::Bool(true)) => {}
            (None, extra) if extra.is_object() => {
                let from = from.then(Step::Key("additionalProperties", None));
                walk(spec, extra, v, &here, &from, errors);
            }
            (None, _) => errors.push(Problem {
                pointer: here,
                expected: "no such property (undeclared property)".into(),
                actual: v.to_string(),
            }),
        }
    }
}

/// `problems` as messages prefixed with `at` (`METHOD path status`).
fn messages(at: &str, problems: Vec<Problem>) -> Vec<String> {
    problems.into_iter().map(|p| format!("{at} {p}")).collect()
}

/// Finds the spec's path template for a concrete path.
pub(crate) fn template(spec: &Value, path: &str) -> Option<String> {
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
    let at = format!("{method} {path} {status} (injected)");
    let value = parse(&at, body)?;
    judge(
        document_for(path),
        &error_body(),
        &value,
        &at,
        Checked::Injected(format!("{method} {path} {status}")),
    )
}

/// `body` as JSON, or the message that it is not (after `at`).
fn parse(at: &str, body: &[u8]) -> Result<Value, Vec<String>> {
    serde_json::from_slice(body).map_err(|e| vec![format!("{at}: body is not JSON: {e}")])
}

/// The schema every error answer has: the document's `ErrorBody`.
fn error_body() -> Value {
    json!({"$ref": "#/components/schemas/ErrorBody"})
}

/// `checked` if `value` matches `schema` of `doc`; else every problem,
/// each after `at`.
fn judge(
    doc: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    checked: Checked,
) -> Result<Checked, Vec<String>> {
    let mut errors = Vec::new();
    validate(doc, schema, value, "", &mut errors);
    if errors.is_empty() {
        Ok(checked)
    } else {
        Err(messages(at, errors))
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
    let value = parse(&at, body)?;
    // The legacy poll URL is not in the spec; the mock serves it as the v2
    // result, so it is checked as that.
    let path = path.replace("/v1/requests/", "/v2/requests/");
    let error_body = error_body();
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
                    || (operation.is_none() && status == 401 && unauthorized_rule(&t)) =>
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
    judge(spec, &schema, &value, &at, checked)
}

/// The control document's rule for 401: every path but `/__mock/health`
/// answers it when the mock has a control token and the call lacks it, for
/// a method the path does not declare too (the token is checked first).
fn unauthorized_rule(template: &str) -> bool {
    template.starts_with(CONTROL_PREFIX) && template != "/__mock/health"
}

/// The file a parsed document came from, for messages.
fn document_name(doc: &Value) -> &'static str {
    if std::ptr::eq(doc, control()) {
        CONTROL_NAME
    } else {
        SPEC_NAME
    }
}

#[cfg(test)]
mod tests;
