//! The one reader of the generated client's answers: every answer the
//! [`Client`](crate::Client) gets is read here, through progenitor's `exec`
//! hook, before the generated code hands it to serde. (The synchronous
//! run's `200` body, the image itself, is passed on as a stream: the caller
//! reads it with its own image cap.)
//!
//! - **A cap on every JSON body**: [`MAX_JSON_BYTES`], or
//!   [`MAX_RESULT_BYTES`] for a result (whose `output` may be a `data:`
//!   URI). A declared length over the cap is refused without reading; a body
//!   that grows past it is cut off there. A server cannot fill the
//!   caller's memory.
//! - **An error answer keeps its status**: an error status (400 and up)
//!   whose body is not the service's own error body ([`ErrorBody`]: a JSON
//!   object with an `error` text), a gateway's HTML page say, would reach
//!   the caller as [`Error::InvalidResponsePayload`](crate::Error), which
//!   carries no status. It is passed on instead as a body error whose
//!   source is [`UnreadableAnswer::NotServiceError`], with the status, the
//!   headers and the start of the body, so a caller can still tell a `502`
//!   page from a `200` it could not read.
//!
//! Either way the caller sees [`Error::ResponseBodyError`](crate::Error)
//! (or, for a status the spec does not list, a body that fails to read)
//! and finds the reason with [`UnreadableAnswer::find`].

use std::error::Error as StdError;

use bytes::Bytes;
use progenitor_client::{ClientHooks, ClientInfo, OperationInfo};
use reqwest::ResponseBuilderExt as _;
use reqwest::header::HeaderMap;

use crate::types::ErrorBody;

/// Most bytes of a JSON answer the client reads (a submit's, a status's,
/// an upload's, any error body): 1 MiB. The service's answers are a few
/// hundred bytes.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

/// Most bytes of a result (`GET /v2/requests/{request_id}`): 72 MiB, so
/// that an `output` sent as a `data:` URI of a 50 MiB image (the client's
/// default download cap, base64-encoded) still fits.
pub const MAX_RESULT_BYTES: usize = 72 * 1024 * 1024;

/// Most bytes of a foreign error body kept in
/// [`UnreadableAnswer::NotServiceError`].
const KEPT_BODY: usize = 4096;

/// Why an answer's body was not handed to the generated code: the source
/// of its body error (find it with [`find`](Self::find)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnreadableAnswer {
    /// The body is (or declares to be) over the cap for its operation.
    TooLarge {
        /// The operation (`submit_try_on`, `get_status`, …).
        operation: &'static str,
        /// The answer's status.
        status: u16,
        /// The cap, in bytes ([`MAX_JSON_BYTES`] or [`MAX_RESULT_BYTES`]).
        limit: usize,
    },
    /// An error status whose body is not the service's error body (a
    /// gateway's or a proxy's page, an empty body).
    NotServiceError {
        /// The answer's status.
        status: u16,
        /// The answer's headers (`Retry-After` among them).
        headers: HeaderMap,
        /// The start of the body (at most 4 KiB).
        body: Bytes,
    },
}

impl std::fmt::Display for UnreadableAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnreadableAnswer::TooLarge {
                operation,
                status,
                limit,
            } => write!(
                f,
                "{operation}: the {status} answer's body is over {limit} bytes, the most a JSON answer may hold"
            ),
            UnreadableAnswer::NotServiceError { status, body, .. } => write!(
                f,
                "a {status} answer whose body is not the service's JSON error ({} bytes)",
                body.len()
            ),
        }
    }
}

impl StdError for UnreadableAnswer {}

impl UnreadableAnswer {
    /// The reason in `error`'s chain of sources, if the reader put one
    /// there.
    pub fn find<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a UnreadableAnswer> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(found) = e.downcast_ref::<UnreadableAnswer>() {
                return Some(found);
            }
            next = e.source();
        }
        None
    }
}

impl ClientHooks<()> for crate::Client {
    /// Sends the request and reads the answer: every JSON body under its
    /// cap ([`MAX_JSON_BYTES`], [`MAX_RESULT_BYTES`]), an error status whose
    /// body is not the service's kept as [`UnreadableAnswer`].
    async fn exec(
        &self,
        request: reqwest::Request,
        info: &OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        let response = self.client().execute(request).await?;
        Ok(read(response, info.operation_id).await)
    }
}

/// What a body read ended with.
enum Read {
    Whole(Bytes),
    /// Cut off by the transport after these bytes.
    Broken(Bytes, reqwest::Error),
    TooLarge,
}

/// Reads `response`'s body under its operation's cap and hands back an
/// answer whose body is those bytes, or a body that fails with the reason
/// (see the module docs).
async fn read(mut response: reqwest::Response, operation: &'static str) -> reqwest::Response {
    let status = response.status();
    if operation == "run_try_on_sync" && status.is_success() {
        return response;
    }
    let limit = if operation == "get_result" {
        MAX_RESULT_BYTES
    } else {
        MAX_JSON_BYTES
    };
    let version = response.version();
    let url = response.url().clone();
    let headers = response.headers().clone();
    let too_large = UnreadableAnswer::TooLarge {
        operation,
        status: status.as_u16(),
        limit,
    };
    let read = if response.content_length().is_some_and(|n| n > limit as u64) {
        Read::TooLarge
    } else {
        let mut buf: Vec<u8> = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if buf.len() + chunk.len() > limit => break Read::TooLarge,
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                Ok(None) => break Read::Whole(Bytes::from(buf)),
                Err(e) => break Read::Broken(Bytes::from(buf), e),
            }
        }
    };
    drop(response);
    let body: Vec<Result<Bytes, Box<dyn StdError + Send + Sync>>> = match read {
        Read::TooLarge => vec![Err(Box::new(too_large))],
        Read::Broken(bytes, e) => vec![Ok(bytes), Err(Box::new(e))],
        Read::Whole(bytes)
            if status.as_u16() >= 400 && serde_json::from_slice::<ErrorBody>(&bytes).is_err() =>
        {
            vec![Err(Box::new(UnreadableAnswer::NotServiceError {
                status: status.as_u16(),
                headers: headers.clone(),
                body: bytes.slice(..bytes.len().min(KEPT_BODY)),
            }))]
        }
        Read::Whole(bytes) => vec![Ok(bytes)],
    };
    let mut out = http::Response::new(reqwest::Body::wrap_stream(futures::stream::iter(body)));
    *out.status_mut() = status;
    *out.version_mut() = version;
    *out.headers_mut() = headers;
    if let Ok(with_url) = http::Response::builder().url(url).body(()) {
        *out.extensions_mut() = with_url.into_parts().0.extensions;
    }
    reqwest::Response::from(out)
}
