//! The classifier of API answers: turns a generated-client error into ours
//! and says whether the executor may retry it, by the rules on
//! [`RetryPolicy`](crate::RetryPolicy); and [`ApiCaller`], which sends
//! every keyed API call through the executor with this classifier.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt as _;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret as _, SecretString};
use tryon_api::redact::Secrets;
use tryon_api::types::ErrorBody;
use tryon_api::{ResponseValue, UnreadableAnswer};

use super::executor::{Call, Deadline, Executor, Failure, Retryable};
use super::retry_after::parse_retry_after;
use crate::error::{Error, Result};

/// Most bytes of an error body kept in an [`Error`].
const MAX_ERROR_BODY: usize = 4096;

/// Sends every keyed API call (submit, v1 run, upload, status, result,
/// the account's reads)
/// through the executor, each failed attempt classified here. Holds the key
/// only to scrub it from text a server sends back.
pub(crate) struct ApiCaller {
    executor: Arc<Executor>,
    /// The key in every encoding, to take it (and URL credentials) out of
    /// text a server sends back.
    secrets: Secrets,
}

impl std::fmt::Debug for ApiCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiCaller")
            .field("executor", &self.executor)
            .finish_non_exhaustive()
    }
}

impl ApiCaller {
    pub(crate) fn new(executor: Arc<Executor>, api_key: &SecretString) -> Self {
        Self {
            executor,
            secrets: Secrets::new([api_key.expose_secret()]),
        }
    }

    /// The executor the calls go through.
    pub(crate) fn executor(&self) -> &Executor {
        &self.executor
    }

    /// One API call through the executor, classified by the API
    /// classifier. An unreadable `2xx` body comes back as
    /// [`CallError::Payload`] so the caller can salvage a billed id.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        call: Call<'_>,
        mut send: F,
    ) -> std::result::Result<ResponseValue<T>, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<ResponseValue<T>, tryon_api::Error<ErrorBody>>>,
    {
        self.executor
            .execute(call, || {
                let answer = send();
                async move {
                    match answer.await {
                        Ok(v) => Ok(v),
                        Err(e) => Err(self.classify(e, call).await),
                    }
                }
            })
            .await
    }

    /// A read of one job: a body whose `status` is `FAILED` is a failure
    /// whatever its shape.
    pub(crate) async fn read<T, F, Fut>(
        &self,
        request_id: &str,
        deadline: Option<Deadline>,
        send: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<ResponseValue<T>, tryon_api::Error<ErrorBody>>>,
    {
        let call = Call::Read {
            request_id,
            deadline,
        };
        self.call(call, send)
            .await
            .map(ResponseValue::into_inner)
            .or_else(|e| payload_as_failed(e, request_id))
    }

    /// A not-billed read of the account's records (credits, history)
    /// through the executor: retried as a job's read is, its `404` left to
    /// the caller (an [`Error::Api`] with status 404).
    pub(crate) async fn account<T, F, Fut>(&self, request_id: Option<&str>, send: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<ResponseValue<T>, tryon_api::Error<ErrorBody>>>,
    {
        self.call(Call::Account { request_id }, send)
            .await
            .map(ResponseValue::into_inner)
            .map_err(CallError::into_error)
    }

    /// Text that came from a server with the key (in any encoding, in case
    /// it echoes it) and URL credentials taken out, by the workspace's one
    /// rule ([`tryon_api::redact`]).
    fn scrub(&self, text: &str) -> String {
        self.secrets.redact(text)
    }
}

/// No usable answer: retried, unless it was a billed `POST` that may have
/// been taken (`sent`), which is an ambiguous submit.
fn lost_answer(
    call: Call<'_>,
    request_id: Option<String>,
    source: reqwest::Error,
    sent: bool,
    detail: &str,
) -> Failure<CallError> {
    if call == Call::Submit && sent {
        return fatal(Error::AmbiguousSubmit {
            detail: detail.into(),
            source: Some(source),
        });
    }
    Failure::Retry(Retryable::transient(Error::Transport {
        request_id,
        source,
    }))
}

fn fatal(e: Error) -> Failure<CallError> {
    Failure::Fatal(CallError::Error(e))
}

impl From<Error> for CallError {
    fn from(e: Error) -> Self {
        CallError::Error(e)
    }
}

impl ApiCaller {
    /// Maps a generated-client error to ours, deciding whether it may be
    /// retried.
    async fn classify(&self, e: tryon_api::Error<ErrorBody>, call: Call<'_>) -> Failure<CallError> {
        let rid = call.request_id().map(str::to_string);
        match e {
            tryon_api::Error::InvalidResponsePayload(raw, err) => {
                Failure::Fatal(CallError::Payload(RawPayload {
                    body: raw,
                    error: err.to_string(),
                }))
            }
            tryon_api::Error::CommunicationError(source) => {
                let sent = !source.is_connect();
                lost_answer(
                    call,
                    rid,
                    source,
                    sent,
                    "the request was sent but no answer came back",
                )
            }
            tryon_api::Error::ResponseBodyError(source) => {
                match UnreadableAnswer::find(&source).cloned() {
                    Some(UnreadableAnswer::NotServiceError {
                        status,
                        headers,
                        body,
                    }) => {
                        let raw = truncate(&String::from_utf8_lossy(&body));
                        let answer = ErrorAnswer {
                            status,
                            headers: &headers,
                            message: &raw,
                            raw: &raw,
                            services_own: false,
                        };
                        self.by_status(&answer, call)
                    }
                    Some(too_large) => over_the_cap(call, rid, &too_large, source),
                    None => lost_answer(call, rid, source, true, "the answer's body was cut off"),
                }
            }
            tryon_api::Error::ErrorResponse(rv) => {
                let status = rv.status().as_u16();
                let headers = rv.headers().clone();
                let body = rv.into_inner();
                let raw = serde_json::to_string(&body).unwrap_or_default();
                let answer = ErrorAnswer {
                    status,
                    headers: &headers,
                    message: &body.error,
                    raw: &raw,
                    services_own: true,
                };
                self.by_status(&answer, call)
            }
            tryon_api::Error::UnexpectedResponse(resp) => {
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let (raw, services_own) = read_unexpected(resp).await;
                if (200..300).contains(&status) {
                    return fatal(Error::InvalidResponse {
                        request_id: rid,
                        problem: format!("unexpected success status {status}"),
                    });
                }
                let message = serde_json::from_str::<serde_json::Value>(&raw)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                    .unwrap_or_else(|| raw.clone());
                let answer = ErrorAnswer {
                    status,
                    headers: &headers,
                    message: &message,
                    raw: &raw,
                    services_own,
                };
                self.by_status(&answer, call)
            }
            tryon_api::Error::InvalidRequest(problem) => {
                fatal(Error::invalid("request_id", problem))
            }
            other => fatal(Error::InvalidResponse {
                request_id: rid,
                problem: other.to_string(),
            }),
        }
    }

    /// An error answer, by its status, whose answer it is, and the kind of
    /// call (the rules are on [`RetryPolicy`](crate::RetryPolicy); each
    /// `5xx` on a submit is decided in [`submit_5xx`]).
    fn by_status(&self, answer: &ErrorAnswer<'_>, call: Call<'_>) -> Failure<CallError> {
        let status = answer.status;
        let message = self.scrub(answer.message);
        let rid = call.request_id().map(str::to_string);
        let retry_after = parse_retry_after(answer.headers, self.executor.clock().system_time());
        let retry = |error| {
            Failure::Retry(Retryable {
                error,
                retry_after,
                throttled: status == 429,
            })
        };
        let api = || Error::Api {
            status,
            message: message.clone(),
            body: self.scrub(&truncate(answer.raw)),
            request_id: rid.clone(),
        };
        let read = call
            .request_id()
            .filter(|_| matches!(call, Call::Read { .. }));
        match (status, read) {
            (401, _) => fatal(Error::Unauthorized {
                request_id: rid,
                message,
            }),
            (403, _) => fatal(Error::Forbidden {
                request_id: rid,
                message,
            }),
            (406, _) => fatal(Error::InsufficientCredits {
                request_id: rid,
                message,
            }),
            (404, Some(id)) => fatal(Error::Expired {
                request_id: id.to_string(),
            }),
            (422, Some(id)) => fatal(Error::Failed {
                request_id: id.to_string(),
                detail: message,
            }),
            (429, _) => retry(Error::RateLimited {
                request_id: rid.clone(),
                retry_after,
                message: message.clone(),
            }),
            (500..=599, _) if call == Call::Submit => match submit_5xx(status, answer.services_own)
            {
                Submit5xx::Retry => retry(api()),
                Submit5xx::Refused => fatal(api()),
                Submit5xx::MayHaveBeenAccepted(why) => fatal(Error::AmbiguousSubmit {
                    detail: format!(
                        "submit answered {status} ({why}): the service may have accepted and billed the job; body: {}",
                        self.scrub(&one_line(answer.raw))
                    ),
                    source: None,
                }),
            },
            (500 | 502 | 503 | 504, _) => retry(api()),
            _ => fatal(api()),
        }
    }
}

/// An error answer as the classifier reads it.
struct ErrorAnswer<'a> {
    status: u16,
    headers: &'a HeaderMap,
    /// The `error` text, or the body itself.
    message: &'a str,
    raw: &'a str,
    /// The body is the service's own error body (`{"error": …}`), not a
    /// gateway's page.
    services_own: bool,
}

/// What a `5xx` answer to a submit means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Submit5xx {
    /// Not taken: retried like a `429`.
    Retry,
    /// The service's own refusal: not taken, not retried.
    Refused,
    /// Nothing says the service did not take it: ambiguous, never retried.
    MayHaveBeenAccepted(&'static str),
}

/// The one rule for a `5xx` answer to a submit (v2 or v1); why each is so
/// is written in `docs/CONTRACT.md` ("A 5xx answer to a submit").
fn submit_5xx(status: u16, services_own: bool) -> Submit5xx {
    match (status, services_own) {
        // "Not able to handle the request now": a front end with no
        // service behind it, or the service refusing; nothing was taken.
        (503, _) => Submit5xx::Retry,
        // A gateway gave up waiting for the service, which may have
        // taken the job meanwhile, whoever wrote the body.
        (504, _) => Submit5xx::MayHaveBeenAccepted("a gateway timed out waiting for the service"),
        // The service's own error body: the service answered, and only a
        // 200 is billed.
        (_, true) => Submit5xx::Refused,
        // A page that is not the service's error: something between the
        // client and the service answered and cannot say what the
        // service did.
        (_, false) => Submit5xx::MayHaveBeenAccepted(
            "a body that is not the service's JSON error: a gateway's answer",
        ),
    }
}

/// A body over the answer reader's cap: never retried (it would be read
/// again); a submit's is ambiguous (the job may be billed).
fn over_the_cap(
    call: Call<'_>,
    request_id: Option<String>,
    reason: &UnreadableAnswer,
    source: reqwest::Error,
) -> Failure<CallError> {
    if call == Call::Submit {
        return fatal(Error::AmbiguousSubmit {
            detail: format!("{reason}; the job may have been accepted and billed"),
            source: Some(source),
        });
    }
    fatal(Error::InvalidResponse {
        request_id,
        problem: reason.to_string(),
    })
}

/// An error from an API call, keeping an unreadable 2xx body apart so
/// the submit can still salvage the `request_id` of a billed job.
pub(crate) enum CallError {
    Error(Error),
    Payload(RawPayload),
}

pub(crate) struct RawPayload {
    body: Bytes,
    error: String,
}

impl CallError {
    pub(crate) fn into_error(self) -> Error {
        match self {
            CallError::Error(e) => e,
            CallError::Payload(p) => Error::InvalidResponse {
                request_id: None,
                problem: format!(
                    "{} (body: {})",
                    p.error,
                    truncate(&String::from_utf8_lossy(&p.body))
                ),
            },
        }
    }
}

/// A `200` submit whose body did not match the schema: the job is billed,
/// so keep it if the body still names its `request_id`.
pub(crate) fn salvage_request_id(raw: &RawPayload) -> Result<String> {
    let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(&raw.body) else {
        // The 200 body itself was lost (cut short, or not JSON at all): the
        // job is billed but its id is unknown. That is an ambiguous submit,
        // so callers who guard against paying twice see it as one.
        return Err(Error::AmbiguousSubmit {
            detail: format!(
                "submit answered 200 (the job is billed) but its body is unreadable, so its request_id is unknown: {} (body: {})",
                raw.error,
                truncate(&String::from_utf8_lossy(&raw.body))
            ),
            source: None,
        });
    };
    let id = parsed
        .get("request_id")
        .and_then(|i| i.as_str())
        .map(str::to_string);
    if let Some(id) = id.filter(|i| !i.trim().is_empty()) {
        tracing::warn!(request_id = %id, problem = %raw.error, "submit answer did not match the schema; using its request_id");
        return Ok(id);
    }
    Err(Error::InvalidResponse {
        request_id: None,
        problem: format!(
            "submit answered without a usable request_id (the job may be billed): {} (body: {})",
            raw.error,
            truncate(&String::from_utf8_lossy(&raw.body))
        ),
    })
}

/// A read whose body did not match: a FAILED body without `error` (or
/// any odd shape with `status: FAILED`) is still a failure.
fn payload_as_failed<T>(e: CallError, request_id: &str) -> Result<T> {
    match e {
        CallError::Error(e) => Err(e),
        CallError::Payload(p) => {
            let v = serde_json::from_slice::<serde_json::Value>(&p.body).ok();
            let failed = v
                .as_ref()
                .and_then(|v| v.get("status"))
                .and_then(|s| s.as_str())
                == Some("FAILED");
            if failed {
                let detail = v
                    .as_ref()
                    .and_then(|v| v.get("error"))
                    .and_then(|e| e.as_str())
                    .unwrap_or("no detail given")
                    .to_string();
                return Err(Error::Failed {
                    request_id: request_id.to_string(),
                    detail,
                });
            }
            Err(Error::InvalidResponse {
                request_id: Some(request_id.to_string()),
                problem: format!(
                    "{} (body: {})",
                    p.error,
                    truncate(&String::from_utf8_lossy(&p.body))
                ),
            })
        }
    }
}

/// Most characters of a body quoted in a one-line message.
const MAX_QUOTED: usize = 160;

/// `s` on one line (runs of white space made one space), cut to
/// [`MAX_QUOTED`] characters.
fn one_line(s: &str) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= MAX_QUOTED {
        return flat;
    }
    let cut: String = flat.chars().take(MAX_QUOTED).collect();
    format!("{cut}…")
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_ERROR_BODY {
        return s.to_string();
    }
    let mut end = MAX_ERROR_BODY;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

/// The body of an answer the spec does not list, at most
/// [`MAX_ERROR_BODY`] bytes of it, and whether it is the service's own
/// error body (the answer reader fails the body of an error status that is
/// not, keeping the body in the reason).
async fn read_unexpected(resp: reqwest::Response) -> (String, bool) {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    loop {
        match stream.try_next().await {
            Ok(Some(chunk)) => {
                out.extend_from_slice(&chunk);
                if out.len() > MAX_ERROR_BODY {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                if let Some(UnreadableAnswer::NotServiceError { body, .. }) =
                    UnreadableAnswer::find(&e)
                {
                    return (truncate(&String::from_utf8_lossy(body)), false);
                }
                break;
            }
        }
    }
    let own = serde_json::from_slice::<ErrorBody>(&out).is_ok();
    (truncate(&String::from_utf8_lossy(&out)), own)
}
