//! The HTTP front, by layer: [`conn`] accepts and bounds connections,
//! [`pipeline`] runs every request through faults, auth, the request log and the
//! spec check, [`routes`] names the API's endpoints, [`api`] answers them and
//! [`control`] is the `/__mock/` API.

// Handlers return a `Reply` as the error of small internal results (an
// early answer); boxing it would only add an allocation per request.
#![allow(clippy::result_large_err)]

mod api;
pub(crate) mod conn;
pub(crate) mod control;
mod pipeline;
mod routes;

use bytes::Bytes;
use hyper::Response;
use hyper::StatusCode;
use hyper::header::{self, HeaderValue};
use serde::Serialize;
use tryon_api::types::ErrorBody;

/// A response as the handlers build it; the body is sent as one chunk.
pub(crate) type Reply = Response<Bytes>;

/// Marks an answer the mock was configured to give against the spec (the
/// result URL's departures, [`ResultBeforeCompletion`](crate::ResultBeforeCompletion)):
/// the spec check takes it as an injected fault, not a mock bug.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Departure;

pub(crate) fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Bytes::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(crate) fn error(status: StatusCode, text: impl Into<String>) -> Reply {
    json_response(
        status,
        &ErrorBody {
            error: text.into(),
            metrics: None,
            request_id: None,
            status: None,
        },
    )
}

/// 405 with the `Allow` header RFC 9110 requires.
pub(crate) fn method_not_allowed(allow: &str) -> Reply {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    if let Ok(v) = HeaderValue::from_str(allow) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

pub(crate) fn with_retry_after(mut r: Reply, value: &str) -> Reply {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Reads a request body up to `limit` bytes (413 above).
pub(crate) async fn read_body(
    limit: usize,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<Bytes, Reply> {
    use http_body_util::BodyExt as _;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body: more than {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    http_body_util::Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .map_err(|_| too_large())
}
