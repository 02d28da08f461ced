//! Drift: how an upstream response departs from the API spec
//! ([`tryon_api::SPEC`]), judged by the spec check's one validator.
//!
//! Pointers are JSON pointers into the response seen as one document,
//! `{"status": …, "headers": {…}, "body": …}`: `/status` is the HTTP status,
//! `/headers/retry-after` a header, `/body/request_id` a field of the body.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::limits::MAX_DRIFT_RECORDS;
use crate::spec_check::{Problem, resolve, spec, template, validate};

/// Most characters of a response body kept as a record's example.
const MAX_EXAMPLE: usize = 1024;

/// The content types an output image may have (those of the synchronous
/// run's `200` in the spec).
pub(crate) const IMAGE_TYPES: [&str; 3] = ["image/png", "image/jpeg", "image/webp"];

/// One departure of the upstream from the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftRecord {
    /// The spec's `operationId` (`get_status`, …), or `get_output` for an
    /// output image fetched through the proxy.
    pub operation: String,
    /// The request's method.
    pub method: String,
    /// The path with ids masked: the spec's template
    /// (`/v2/requests/{request_id}/status`).
    pub path: String,
    /// The HTTP status the upstream answered; `0` when it gave no answer
    /// (the request was sent and the connection broke, it timed out, or the
    /// answer was over the proxy's bound): `pointer` is then `""`, the whole
    /// answer, and `actual` names the failure.
    pub status: u16,
    /// Where: a JSON pointer into `{"status", "headers", "body"}` (`""`:
    /// the whole answer).
    pub pointer: String,
    /// What the spec (or the contract's lifecycle) says.
    pub expected: String,
    /// What came back.
    pub actual: String,
    /// The response body, cut to 1 KiB, with the caller's key and URL
    /// credentials removed.
    pub example: String,
}

/// The records of a proxy's whole run.
#[derive(Debug, Default)]
pub(crate) struct DriftLog {
    pub(crate) records: Vec<DriftRecord>,
    /// Records beyond [`MAX_DRIFT_RECORDS`], counted only.
    pub(crate) dropped: u64,
}

impl DriftLog {
    pub(crate) fn extend(&mut self, records: Vec<DriftRecord>) {
        for r in records {
            if self.records.len() < MAX_DRIFT_RECORDS {
                self.records.push(r);
            } else {
                self.dropped += 1;
            }
        }
    }

    /// `GET /__mock/drift`: `{"count", "dropped", "records"}`.
    pub(crate) fn to_json(&self) -> Value {
        serde_json::json!({
            "count": self.records.len() as u64 + self.dropped,
            "dropped": self.dropped,
            "records": self.records,
        })
    }

    /// The shutdown summary: one line per kind of departure, with its count.
    pub(crate) fn summary(&self) -> String {
        let total = self.records.len() as u64 + self.dropped;
        let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
        for r in &self.records {
            let line = format!(
                "{} {} {} {} {}: expected {}, got {}",
                r.operation, r.method, r.path, r.status, r.pointer, r.expected, r.actual
            );
            *kinds.entry(line).or_default() += 1;
        }
        let mut out = format!("tryon-mock: proxy: {total} drift record(s)");
        for (line, n) in kinds {
            let _ = write!(out, "\n  {n} x {line}");
        }
        if self.dropped > 0 {
            let _ = write!(out, "\n  {} more not kept", self.dropped);
        }
        out
    }
}

/// What one exchange is, for its records.
pub(crate) struct Exchange<'a> {
    pub(crate) method: &'a str,
    /// The concrete path (`/v2/requests/ID/status`).
    pub(crate) path: &'a str,
    pub(crate) status: u16,
    /// The media type, parameters removed, lower case.
    pub(crate) content_type: Option<String>,
    /// Names (lower case) of the headers the response carried.
    pub(crate) headers: Vec<String>,
    pub(crate) body: &'a [u8],
    /// The caller's key, removed from examples.
    pub(crate) key: Option<&'a str>,
}

impl Exchange<'_> {
    /// The spec's template for the path (the legacy `/v1/requests/{id}`
    /// poll URL is the v2 result) and its `operationId`.
    pub(crate) fn operation(&self) -> (String, String) {
        let path = self.path.replace("/v1/requests/", "/v2/requests/");
        match template(spec(), &path) {
            Some(t) => {
                let op = &spec()["paths"][&t][self.method.to_lowercase()]["operationId"];
                let t = if self.path.starts_with("/v1/requests/") {
                    "/v1/requests/{request_id}".to_string()
                } else {
                    t
                };
                (op.as_str().unwrap_or("unknown").to_string(), t)
            }
            None => ("unknown".to_string(), self.path.to_string()),
        }
    }

    /// A record for this exchange.
    pub(crate) fn record(&self, pointer: String, expected: String, actual: String) -> DriftRecord {
        let (operation, path) = self.operation();
        DriftRecord {
            operation,
            method: self.method.to_string(),
            path,
            status: self.status,
            pointer,
            expected,
            actual: self.scrub(actual),
            example: self.example(),
        }
    }

    /// `text` with the caller's key (in any encoding) and URL credentials
    /// removed, by the workspace's one rule ([`tryon_api::redact`]): an
    /// upstream may echo the key, and output URLs are signed.
    fn scrub(&self, text: String) -> String {
        let redacted = tryon_api::redact::Secrets::new(self.key)
            .with_mark("[key removed]")
            .redact(&text);
        if redacted == text { text } else { redacted }
    }

    fn example(&self) -> String {
        let text = match std::str::from_utf8(self.body) {
            Ok(t) => t.chars().take(MAX_EXAMPLE).collect::<String>(),
            Err(_) => format!(
                "<{} bytes of {}>",
                self.body.len(),
                self.content_type.as_deref().unwrap_or("no content type")
            ),
        };
        self.scrub(text)
    }

    /// Every departure of this response from the spec: an undeclared status,
    /// a content type the response does not declare, a declared header
    /// missing, a body that does not match its schema. A path the spec does
    /// not describe is not judged.
    pub(crate) fn check(&self) -> Vec<DriftRecord> {
        let doc = spec();
        let path = self.path.replace("/v1/requests/", "/v2/requests/");
        let Some(t) = template(doc, &path) else {
            return Vec::new();
        };
        let Some(op) = doc["paths"][&t].get(self.method.to_lowercase()) else {
            return Vec::new();
        };
        let responses = &op["responses"];
        let Some(response) = responses.get(self.status.to_string()) else {
            let declared: Vec<&str> = responses
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.as_str())
                .collect();
            return vec![self.record(
                "/status".into(),
                format!("one of {}", declared.join(", ")),
                self.status.to_string(),
            )];
        };
        let response = resolve(doc, response);
        let mut out = Vec::new();
        for (name, _) in response["headers"].as_object().into_iter().flatten() {
            if !self.headers.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                out.push(self.record(
                    format!("/headers/{}", name.to_lowercase()),
                    format!("header {name} (declared for {})", self.status),
                    "absent".into(),
                ));
            }
        }
        let Some(content) = response["content"].as_object() else {
            return out;
        };
        let media = self.content_type.as_deref().unwrap_or("");
        let Some(declared) = content.get(media) else {
            let types: Vec<&str> = content.keys().map(String::as_str).collect();
            out.push(self.record(
                "/headers/content-type".into(),
                format!("one of {}", types.join(", ")),
                if media.is_empty() { "none" } else { media }.to_string(),
            ));
            return out;
        };
        if media == "application/json" {
            match serde_json::from_slice::<Value>(self.body) {
                Ok(value) => {
                    let mut problems: Vec<Problem> = Vec::new();
                    validate(doc, &declared["schema"], &value, "/body", &mut problems);
                    out.extend(
                        problems
                            .into_iter()
                            .map(|p| self.record(p.pointer, p.expected, p.actual)),
                    );
                }
                Err(e) => out.push(self.record(
                    "/body".into(),
                    "a JSON body".into(),
                    format!("not JSON: {e}"),
                )),
            }
        }
        out
    }

    /// An output image fetched through the proxy: it must be one of the
    /// image types the spec's synchronous run declares.
    pub(crate) fn check_output(&self) -> Vec<DriftRecord> {
        let media = self.content_type.as_deref().unwrap_or("");
        if (200..300).contains(&self.status) && !IMAGE_TYPES.contains(&media) {
            let mut r = self.record(
                "/headers/content-type".into(),
                format!("one of {}", IMAGE_TYPES.join(", ")),
                if media.is_empty() { "none" } else { media }.to_string(),
            );
            "get_output".clone_into(&mut r.operation);
            "/outputs/{name}".clone_into(&mut r.path);
            return vec![r];
        }
        Vec::new()
    }
}
