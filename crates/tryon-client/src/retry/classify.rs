//! The classifier of API answers: turns a generated-client error into ours
//! and says whether the executor may retry it, by the rules on
//! [`RetryPolicy`](crate::RetryPolicy); the `Retry-After` reader; and
//! [`ApiCaller`], which sends every keyed API call through the executor
//! with this classifier.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::TryStreamExt as _;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret as _, SecretString};
use tryon_api::ResponseValue;
use tryon_api::types::ErrorBody;

use super::executor::{Call, Deadline, Executor, Failure, Retryable};
use crate::error::{Error, Result};

/// Most bytes of an error body kept in an [`Error`].
const MAX_ERROR_BODY: usize = 4096;

/// Sends every keyed API call (submit, v1 run, upload, status, result)
/// through the executor, each failed attempt classified here. Holds the key
/// only to scrub it from text a server sends back.
pub(crate) struct ApiCaller {
    executor: Arc<Executor>,
    api_key: SecretString,
}

impl std::fmt::Debug for ApiCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiCaller")
            .field("executor", &self.executor)
            .finish_non_exhaustive()
    }
}

impl ApiCaller {
    pub(crate) fn new(executor: Arc<Executor>, api_key: SecretString) -> Self {
        Self { executor, api_key }
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

    /// Removes the key from text that came from a server, in case a server
    /// echoes it back.
    fn scrub(&self, text: &str) -> String {
        let key = self.api_key.expose_secret();
        if key.len() >= 4 && text.contains(key) {
            text.replace(key, "[REDACTED]")
        } else {
            text.to_string()
        }
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
                lost_answer(call, rid, source, true, "the answer's body was cut off")
            }
            tryon_api::Error::ErrorResponse(rv) => {
                let status = rv.status().as_u16();
                let headers = rv.headers().clone();
                let body = rv.into_inner();
                let raw = serde_json::to_string(&body).unwrap_or_default();
                self.by_status(status, &headers, &body.error, &raw, call)
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
                self.by_status(status, &headers, &message, &raw, call)
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

    /// An error answer, by its status and the kind of call.
    fn by_status(
        &self,
        status: u16,
        headers: &HeaderMap,
        message: &str,
        raw: &str,
        call: Call<'_>,
    ) -> Failure<CallError> {
        let message = self.scrub(message);
        let rid = call.request_id().map(str::to_string);
        let retry_after = parse_retry_after(headers, self.executor.clock().system_time());
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
            body: self.scrub(&truncate(raw)),
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

/// Reads `Retry-After`: a number of seconds (fractions allowed) or an HTTP
/// date, relative to `now` (wall clock). A date in the past means "now".
pub(crate) fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::try_from_secs_f64(secs).ok())
            .flatten();
    }
    let when = httpdate::parse_http_date(raw).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::any;
    use reqwest::header::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after(&headers("3"), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after(&headers("1.5"), now),
            Some(Duration::from_millis(1500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(
            parse_retry_after(&headers(&later), now),
            Some(Duration::from_secs(7))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(
            parse_retry_after(&headers(&earlier), now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(&headers("-1"), now), None);
        assert_eq!(parse_retry_after(&headers("soon"), now), None);
        assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }

    proptest::proptest! {
    /// `Retry-After` in seconds or as an HTTP date, relative to `now`; a
    /// past date is zero; garbage is ignored without a panic.
    #[test]
    fn retry_after_parses_seconds_dates_and_ignores_garbage(
        secs in 0u64..1_000_000,
        past in any::<bool>(),
        garbage in ".{0,30}",
        base in 1_000_000_000u64..2_000_000_000,
    ) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(base);
        let h = headers(&secs.to_string());
        proptest::prop_assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(secs)));

        let when = if past {
            now - Duration::from_secs(secs)
        } else {
            now + Duration::from_secs(secs)
        };
        let h = headers(&httpdate::fmt_http_date(when));
        let expected = if past { Duration::ZERO } else { Duration::from_secs(secs) };
        proptest::prop_assert_eq!(parse_retry_after(&h, now), Some(expected));

        if let Ok(v) = HeaderValue::from_str(&garbage) {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, v);
            let parsed = parse_retry_after(&h, now);
            if garbage.trim().parse::<f64>().is_err() && httpdate::parse_http_date(garbage.trim()).is_err() {
                proptest::prop_assert_eq!(parsed, None);
            }
        }
        proptest::prop_assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }
    }
}
