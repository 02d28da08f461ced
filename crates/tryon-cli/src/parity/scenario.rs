//! The fixed scenario, run step by step against one side (the target or
//! the reference mock), each through its own validating proxy.
//!
//! Requests go out as raw HTTP (`reqwest`), not through `tryon-client`:
//! each step must see the status code, the headers and the body exactly as
//! sent, including answers the client turns into typed errors (401, 422,
//! 429) and requests it refuses to send at all (12 garments, a malformed
//! body); and the client's retries would hide what the target answered.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tryon_client::SecretString;
use tryon_mock::{DriftRecord, MockServer, Proxy};

use super::normalise;

/// Public sample images from the model's API page: a live run sends
/// these, so the service has real photos to work on.
const PERSON: &str = "https://segmind-resources.s3.amazonaws.com/input/p-image-try-on-person.jpg";
const GARMENT: &str = "https://segmind-resources.s3.amazonaws.com/input/p-image-try-on-garment.jpg";

/// Most bytes of an answer read (an output image is a few MiB): what the
/// validating proxy every step goes through passes at most.
const MAX_ANSWER: usize = tryon_mock::limits::MAX_PROXY_BODY;

/// Most characters of an error's text kept for the report.
const MAX_TEXT: usize = 200;

/// The request history's path, on its own host.
const HISTORY: &str = "/inference-request/request-history";

/// Virtual time the reference mock's clock moves between two polls.
const MOCK_POLL_STEP: Duration = Duration::from_millis(50);

/// The steps, in order. Only `submit_1` and `submit_3` are billed.
/// The last four read the account's records (not billed): the balance,
/// the newest history row, `submit_1`'s history record and an unknown
/// id's; they settle what the spec assumes of them (the envelope, the
/// timestamps, the not-found code) and show whether `submit_1` has
/// landed by then.
/// `result_early` is the result URL of the 3-garment job asked right after
/// its submit, before it can be done: it settles the contract's assumption
/// that the result URL then answers `200` with the current status and no
/// output (see [`Side::early_result`]).
pub const STEPS: [&str; 17] = [
    "submit_1",
    "submit_3",
    "result_early",
    "poll_1",
    "poll_3",
    "result_1",
    "output_1",
    "result_3",
    "output_3",
    "unknown_id",
    "garments_12",
    "missing_key",
    "malformed_body",
    "credits",
    "history",
    "history_entry_1",
    "history_unknown",
];

/// One answer, as compared: normalised, with what the proxy judged.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The media type, parameters removed.
    pub content_type: Option<String>,
    /// Whether a `Retry-After` header came with it.
    pub retry_after: bool,
    /// The JSON body, normalised; `"<N bytes>"` for any other body.
    pub body: Value,
    /// The `error` text of a JSON body, cut short and with the key
    /// removed: shown, not compared (the wording is the service's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_text: Option<String>,
    /// The raw JSON body (not reported: it holds the ids and URLs the
    /// next steps follow).
    #[serde(skip)]
    pub raw: Option<Value>,
}

/// What one step saw on one side.
#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    /// The request, ids masked (`GET /v2/requests/<id>/status`).
    pub request: String,
    /// The answer (for a poll, the last one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    /// For a poll: the statuses seen, repeats collapsed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<String>,
    /// For a poll: how many status calls it took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polls: Option<u32>,
    /// Why there is no (final) answer: skipped, unreachable, timed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The proxy's drift records for this step (spec and lifecycle).
    pub drift: Vec<DriftRecord>,
}

impl Observation {
    fn new(request: impl Into<String>) -> Self {
        Self {
            request: request.into(),
            answer: None,
            statuses: Vec::new(),
            polls: None,
            problem: None,
            drift: Vec::new(),
        }
    }

    fn skipped(request: impl Into<String>, why: &str) -> Self {
        let mut o = Self::new(request);
        o.problem = Some(format!("skipped: {why}"));
        o
    }

    /// The raw JSON body of the answer, if any.
    fn raw(&self) -> Option<&Value> {
        self.answer.as_ref().and_then(|a| a.raw.as_ref())
    }

    /// The `request_id` of a submit that was accepted.
    fn request_id(&self) -> Option<String> {
        let answer = self.answer.as_ref().filter(|a| a.status == 200)?;
        answer.raw.as_ref()?["request_id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_string)
    }
}

/// One side of the comparison: a proxy in front of a target, and how time
/// passes between polls there.
pub struct Side<'a> {
    pub http: reqwest::Client,
    pub proxy: &'a Proxy,
    /// The proxy in front of the request history's host.
    pub history: &'a Proxy,
    pub key: SecretString,
    /// The reference mock, whose virtual clock moves instead of sleeping.
    pub mock: Option<&'a MockServer>,
    /// Wait between polls (real time, the target only).
    pub interval: Duration,
    /// Give up polling a job after this long.
    pub timeout: Duration,
}

/// A request of the scenario.
struct Call<'a> {
    method: reqwest::Method,
    /// The path on the proxy, as sent.
    path: String,
    body: Option<Vec<u8>>,
    with_key: bool,
    /// Sent to the request history's host.
    on_history: bool,
    /// Shown in the report instead of the path (ids masked).
    shown: &'a str,
}

/// A keyed `GET` of `path`, on the history's host when `on_history`.
fn read(path: String, on_history: bool, shown: &str) -> Call<'_> {
    Call {
        method: reqwest::Method::GET,
        path,
        body: None,
        with_key: true,
        on_history,
        shown,
    }
}

fn try_on(garments: usize) -> Vec<u8> {
    json!({"person_image": PERSON, "garment_images": vec![GARMENT; garments]})
        .to_string()
        .into_bytes()
}

fn submit(garments: usize, with_key: bool, shown: &str) -> Call<'_> {
    Call {
        method: reqwest::Method::POST,
        path: "/v2/p-image-try-on".into(),
        body: Some(try_on(garments)),
        with_key,
        on_history: false,
        shown,
    }
}

/// `/v2/requests/{id}` plus `suffix`, the id percent-encoded (it came from
/// the target and may hold anything).
fn job_path(id: &str, suffix: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/v2/requests/{id}{suffix}")
}

impl Side<'_> {
    /// Runs every step of [`STEPS`], in order.
    pub async fn run(&self) -> Vec<Observation> {
        let submit_1 = self
            .step(submit(1, true, "POST /v2/p-image-try-on (1 garment)"))
            .await;
        let submit_3 = self
            .step(submit(3, true, "POST /v2/p-image-try-on (3 garments)"))
            .await;
        let result_early = self.early_result(&submit_3).await;
        let poll_1 = self.poll(&submit_1).await;
        let poll_3 = self.poll(&submit_3).await;
        let result_1 = self.result(&submit_1).await;
        let output_1 = self.output(&result_1).await;
        let result_3 = self.result(&submit_3).await;
        let output_3 = self.output(&result_3).await;
        let unknown = job_path(&uuid::Uuid::new_v4().to_string(), "/status");
        let unknown_id = self
            .step(read(
                unknown,
                false,
                "GET /v2/requests/<random uuid>/status",
            ))
            .await;
        let garments_12 = self
            .step(submit(12, true, "POST /v2/p-image-try-on (12 garments)"))
            .await;
        let missing_key = self
            .step(submit(1, false, "POST /v2/p-image-try-on (no x-api-key)"))
            .await;
        let malformed_body = self
            .step(Call {
                method: reqwest::Method::POST,
                path: "/v2/p-image-try-on".into(),
                body: Some(
                    format!("{{\"person_image\": \"{PERSON}\", \"garment_images\": [").into(),
                ),
                with_key: true,
                on_history: false,
                shown: "POST /v2/p-image-try-on (truncated JSON)",
            })
            .await;
        let credits = self
            .step(read(
                "/v1/get-user-credits".into(),
                false,
                "GET /v1/get-user-credits",
            ))
            .await;
        let history = self
            .step(read(
                format!("{HISTORY}?per_page=1"),
                true,
                "GET /inference-request/request-history?per_page=1",
            ))
            .await;
        let entry = |id: &str| {
            let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
            format!("{HISTORY}/{id}")
        };
        let history_entry_1 = match submit_1.request_id() {
            Some(id) => {
                self.step(read(
                    entry(&id),
                    true,
                    "GET /inference-request/request-history/<submit_1's id>",
                ))
                .await
            }
            None => Observation::skipped(
                "GET /inference-request/request-history/<submit_1's id>",
                "submit_1 gave no request id",
            ),
        };
        let history_unknown = self
            .step(read(
                entry(&uuid::Uuid::new_v4().to_string()),
                true,
                "GET /inference-request/request-history/<random uuid>",
            ))
            .await;
        vec![
            submit_1,
            submit_3,
            result_early,
            poll_1,
            poll_3,
            result_1,
            output_1,
            result_3,
            output_3,
            unknown_id,
            garments_12,
            missing_key,
            malformed_body,
            credits,
            history,
            history_entry_1,
            history_unknown,
        ]
    }

    /// One request and its answer, with the drift records it produced.
    async fn step(&self, call: Call<'_>) -> Observation {
        let mut seen = Observation::new(call.shown);
        let proxy = if call.on_history {
            self.history
        } else {
            self.proxy
        };
        let before = proxy.drift().len();
        match self.send(&call).await {
            Ok(answer) => seen.answer = Some(answer),
            Err(problem) => seen.problem = Some(problem),
        }
        let mut all = proxy.drift();
        seen.drift = all.split_off(before.min(all.len()));
        seen
    }

    async fn send(&self, call: &Call<'_>) -> Result<Answer, String> {
        let proxy = if call.on_history {
            self.history
        } else {
            self.proxy
        };
        let url = format!("{}{}", proxy.uri(), call.path);
        let mut request = self.http.request(call.method.clone(), &url);
        if call.with_key {
            use secrecy::ExposeSecret as _;
            request = request.header("x-api-key", self.key.expose_secret());
        }
        if let Some(body) = &call.body {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("no answer from the proxy: {}", e.without_url()))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = tryon_mock::capped::read_response(response, MAX_ANSWER)
            .await
            .map_err(|e| format!("the answer: {e}"))?;
        if !headers.contains_key(Proxy::DRIFT_HEADER) {
            // The proxy's own answer: the target was not reached.
            let text = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("HTTP {status} from the proxy"));
            return Err(format!("no answer from the target: {}", self.scrub(&text)));
        }
        Ok(self.answer(status, &headers, &body))
    }

    /// The answer as compared: the body normalised, the key removed.
    fn answer(&self, status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> Answer {
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .filter(|m| !m.is_empty());
        let raw = (content_type.as_deref() == Some("application/json"))
            .then(|| serde_json::from_slice::<Value>(body).ok())
            .flatten();
        let (normal, error_text) = match &raw {
            Some(v) => (
                self.scrub_value(&normalise::body(v)),
                v["error"]
                    .as_str()
                    .map(|t| self.scrub(&t.chars().take(MAX_TEXT).collect::<String>())),
            ),
            None => (Value::String(format!("<{} bytes>", body.len())), None),
        };
        Answer {
            status,
            content_type,
            retry_after: headers.contains_key(reqwest::header::RETRY_AFTER),
            body: normal,
            error_text,
            raw,
        }
    }

    /// Polls a submitted job's status until it is final (`COMPLETED` or
    /// `FAILED`, whatever the HTTP status), anything other than a waiting
    /// status comes back, or `timeout` passes.
    async fn poll(&self, submitted: &Observation) -> Observation {
        let shown = "GET /v2/requests/<id>/status";
        let Some(id) = submitted.request_id() else {
            return Observation::skipped(shown, "the submit was not accepted");
        };
        let started = Instant::now();
        let mut waited = Duration::ZERO;
        let mut polls = 0u32;
        let mut seen = Observation::new(shown);
        loop {
            let mut one = self
                .step(read(job_path(&id, "/status"), false, shown))
                .await;
            polls += 1;
            seen.drift.append(&mut one.drift);
            seen.polls = Some(polls);
            let Some(answer) = one.answer else {
                seen.problem = one.problem;
                return seen;
            };
            let status = answer
                .raw
                .as_ref()
                .and_then(|v| v["status"].as_str())
                .unwrap_or("(no status)")
                .to_string();
            let shown_status = if answer.status == 200 {
                status.clone()
            } else {
                format!("{status} (HTTP {})", answer.status)
            };
            if seen.statuses.last() != Some(&shown_status) {
                seen.statuses.push(shown_status);
            }
            let waiting =
                answer.status == 200 && matches!(status.as_str(), "QUEUED" | "PROCESSING");
            seen.answer = Some(answer);
            if !waiting {
                return seen;
            }
            let elapsed = match self.mock {
                Some(_) => waited,
                None => started.elapsed(),
            };
            if elapsed >= self.timeout {
                seen.problem = Some(format!(
                    "no final status within --timeout {} s ({polls} polls); last {status}",
                    self.timeout.as_secs_f64()
                ));
                return seen;
            }
            if let Some(mock) = self.mock {
                mock.advance(MOCK_POLL_STEP);
                waited += MOCK_POLL_STEP;
            } else {
                let left = self.timeout.saturating_sub(elapsed);
                tokio::time::sleep(self.interval.min(left)).await;
            }
        }
    }

    /// The result URL of a job just submitted ("result URL before
    /// completion"). Which status it names is not compared (a fast target
    /// may already be running or done): a `status` that is one of the four
    /// is shown as `<a status>`, so the comparison with the mock (`200`,
    /// `QUEUED`, no output) turns on the HTTP status, the content type and
    /// whether the body names a status at all: a target answering `404`,
    /// `202` or a body without `status` differs, and the assumption falls.
    async fn early_result(&self, submitted: &Observation) -> Observation {
        let shown = "GET /v2/requests/<id> (right after its submit)";
        let Some(id) = submitted.request_id() else {
            return Observation::skipped(shown, "the submit was not accepted");
        };
        let mut seen = self.step(read(job_path(&id, ""), false, shown)).await;
        if let Some(answer) = &mut seen.answer
            && let Some(body) = answer.body.as_object_mut()
        {
            let known = body
                .get("status")
                .and_then(Value::as_str)
                .is_some_and(|s| matches!(s, "QUEUED" | "PROCESSING" | "COMPLETED" | "FAILED"));
            if known {
                // Only whether it names a status is compared.
                body.retain(|k, _| k == "status");
                body.insert("status".into(), "<a status>".into());
            }
        }
        seen
    }

    /// The full result of a submitted job.
    async fn result(&self, submitted: &Observation) -> Observation {
        let shown = "GET /v2/requests/<id>";
        let Some(id) = submitted.request_id() else {
            return Observation::skipped(shown, "the submit was not accepted");
        };
        self.step(read(job_path(&id, ""), false, shown)).await
    }

    /// The output image of a result, fetched through the proxy without the
    /// key; an output anywhere else is not fetched.
    async fn output(&self, result: &Observation) -> Observation {
        let shown = "GET <output url>";
        let Some(output) = result.raw().and_then(|v| v["output"].as_str()) else {
            return Observation::skipped(shown, "the result has no output URL");
        };
        let base = format!("{}/", self.proxy.uri());
        let Some(path) = output.strip_prefix(&base) else {
            let why = if output.starts_with("data:") {
                "the output is inline data, nothing to fetch"
            } else {
                "the output URL is not an http(s) URL the proxy could take over"
            };
            return Observation::skipped(shown, why);
        };
        self.step(Call {
            method: reqwest::Method::GET,
            path: format!("/{path}"),
            body: None,
            with_key: false,
            on_history: false,
            shown,
        })
        .await
    }

    /// `text` with the key (in any encoding; an upstream may echo it) and
    /// URL credentials removed, by the workspace's one rule
    /// ([`tryon_client::tryon_api::redact`]).
    fn scrub(&self, text: &str) -> String {
        use secrecy::ExposeSecret as _;
        tryon_client::tryon_api::redact::Secrets::new([self.key.expose_secret()])
            .with_mark("[key removed]")
            .redact(text)
    }

    fn scrub_value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.scrub(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.scrub_value(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.scrub(k), self.scrub_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}
