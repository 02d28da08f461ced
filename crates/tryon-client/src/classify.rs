//! The classifier of API answers: turns a generated-client error into
//! ours and says whether the executor may retry it.
//!
//! - Reads (status, result) and uploads may be retried on transport errors
//!   and on `429`, `500`, `502`, `503`, `504`.
//! - A billed `POST` (submit, v1 run) may be retried only when the server
//!   provably did not take it: the connection could not be made, or it
//!   answered `429` or `503`. Any other failure after the request went out
//!   is [`Error::AmbiguousSubmit`] and is never retried.
//! - A read's `404` is [`Error::Expired`] and its `422` is [`Error::Failed`].

use bytes::Bytes;
use futures::TryStreamExt as _;
use reqwest::header::HeaderMap;
use tryon_api::types::ErrorBody;

use crate::error::{Error, Result};
use crate::retry::parse_retry_after;
use crate::transport::{Call, Failure, Retryable, Transport};

/// Most bytes of an error body kept in an [`Error`].
const MAX_ERROR_BODY: usize = 4096;

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

/// Maps a generated-client error to ours, deciding whether it may be
/// retried.
pub(crate) async fn classify(
    e: tryon_api::Error<ErrorBody>,
    call: Call<'_>,
    transport: &Transport,
) -> Failure<CallError> {
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
            lost_answer(call, rid, source, true, "the answer's body was cut off")
        }
        tryon_api::Error::ErrorResponse(rv) => {
            let status = rv.status().as_u16();
            let headers = rv.headers().clone();
            let body = rv.into_inner();
            let raw = serde_json::to_string(&body).unwrap_or_default();
            by_status(status, &headers, &body.error, &raw, call, transport)
        }
        tryon_api::Error::UnexpectedResponse(resp) => {
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let raw = read_capped(resp).await;
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
            by_status(status, &headers, &message, &raw, call, transport)
        }
        tryon_api::Error::InvalidRequest(problem) => fatal(Error::invalid("request_id", problem)),
        other => fatal(Error::InvalidResponse {
            request_id: rid,
            problem: other.to_string(),
        }),
    }
}

/// An error answer, by its status and the kind of call.
fn by_status(
    status: u16,
    headers: &HeaderMap,
    message: &str,
    raw: &str,
    call: Call<'_>,
    transport: &Transport,
) -> Failure<CallError> {
    let message = transport.scrub(message);
    let rid = call.request_id().map(str::to_string);
    let retry_after = parse_retry_after(headers, transport.clock().system_time());
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
        body: transport.scrub(&truncate(raw)),
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
        (503, _) => retry(api()),
        (500 | 502 | 504, _) if call != Call::Submit => retry(api()),
        _ => fatal(api()),
    }
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
pub(crate) fn payload_as_failed<T>(e: CallError, request_id: &str) -> Result<T> {
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

async fn read_capped(resp: reqwest::Response) -> String {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Ok(Some(chunk)) = stream.try_next().await {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_ERROR_BODY {
            break;
        }
    }
    truncate(&String::from_utf8_lossy(&out))
}
