//! What every request goes through: the control API's token, faults
//! (latency, injected statuses, dropped connections, mangled bodies), the
//! request log and the spec check, around the handlers in [`api`](super::api).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::conn::DropConnection;
use super::routes::classify;
use super::{Reply, api, control, error, with_retry_after};
use crate::fault::FaultKind;
use crate::limits::MAX_RECORDED_BODY;
use crate::request_log::RequestLogEntry;
use crate::state::{CallFaults, State};
use crate::sync::lock;

/// The answer to an injected status fault.
fn injected(code: u16, retry_after: Option<crate::fault::RetryAfter>) -> Reply {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let text = match status.as_u16() {
        429 => "Too many requests",
        502 => "Service temporarily unavailable",
        503 => "Service unavailable",
        504 => "Request timed out",
        _ => "Internal server error",
    };
    let r = error(status, text);
    match retry_after {
        Some(ra) => with_retry_after(r, &ra.header_value()),
        None => r,
    }
}

/// A gateway's own error page (nginx's shape), not the service's JSON.
fn gateway_page(code: u16) -> Reply {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Gateway Error")
    );
    let page = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    let mut r = Response::new(Bytes::from(page));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    r
}

/// Whether a request carries a body.
fn declares_body(headers: &header::HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// A refusal may come before the body is read (a fault, 401, 429, 415), and
/// hyper cannot reuse a connection whose body it has not read: the answer
/// says so, or a client reusing the connection meets a reset.
fn closing(mut response: Reply) -> Reply {
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

/// Handles one request. `Err` closes the connection without a response.
pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<hyper::body::Incoming>,
) -> Result<Reply, DropConnection> {
    let started = Instant::now();
    let at = state.clock.now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if path.starts_with("/__mock/") {
        let response = control::handle(&state, req).await;
        #[cfg(feature = "spec-check")]
        check_spec(&state, method.as_str(), &path, &response, false);
        tracing::info!(%method, %path, status = response.status().as_u16(), "control");
        return Ok(response);
    }
    let key = req
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let has_body = declares_body(req.headers());
    let endpoint = classify(&method, &path);
    let route = endpoint.route();
    let CallFaults {
        latency,
        action,
        drop_after_accept,
    } = route.map(|r| state.take_faults(r)).unwrap_or_default();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let entry = |status: Option<u16>, body: Option<Bytes>| RequestLogEntry {
        at,
        method: method.to_string(),
        path: path.clone(),
        key: key.clone(),
        status,
        body,
    };
    let response = match &action {
        Some(FaultKind::DropBeforeAccept) => {
            state.log_request(entry(None, None));
            tracing::info!(%method, %path, "dropped connection (fault, before accept)");
            return Err(DropConnection);
        }
        Some(FaultKind::Status { code, retry_after }) => injected(*code, *retry_after),
        Some(FaultKind::Gateway {
            code,
            accepted: false,
        }) => gateway_page(*code),
        Some(FaultKind::Gateway {
            code,
            accepted: true,
        }) => {
            let handled = api::dispatch(&state, endpoint, key.as_deref(), req).await;
            tracing::info!(%method, %path, status = handled.status().as_u16(), "answer replaced by a gateway page (fault)");
            gateway_page(*code)
        }
        _ => api::dispatch(&state, endpoint, key.as_deref(), req).await,
    };
    let response = if has_body && !response.status().is_success() {
        closing(response)
    } else {
        response
    };
    let is_injected = matches!(action, Some(FaultKind::Status { .. }))
        || response.extensions().get::<super::Departure>().is_some();
    let status = response.status();
    match drop_after_accept {
        Some(fault) if status != StatusCode::OK => state.give_back_drop_after(fault),
        Some(_) => {
            state.log_request(entry(None, None));
            tracing::info!(%method, %path, "dropped connection (fault, after accept)");
            return Err(DropConnection);
        }
        None => {}
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json");
    #[cfg(feature = "spec-check")]
    if is_json {
        check_spec(&state, method.as_str(), &path, &response, is_injected);
    }
    #[cfg(not(feature = "spec-check"))]
    let _ = is_injected;
    let recorded = (is_json && lock(&state.settings).record_bodies).then(|| {
        let body = response.body();
        body.slice(..body.len().min(MAX_RECORDED_BODY))
    });
    let response = mangle(response, action.as_ref());
    state.log_request(entry(Some(status.as_u16()), recorded));
    tracing::info!(
        %method,
        %path,
        status = status.as_u16(),
        elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    Ok(response)
}

/// Records the spec check of a JSON answer (the control API's against its
/// own document) in the server's report; `injected` when a test chose the
/// status with a fault.
#[cfg(feature = "spec-check")]
fn check_spec(state: &State, method: &str, path: &str, response: &Reply, injected: bool) {
    let Some(report) = &state.spec else {
        return;
    };
    let status = response.status().as_u16();
    let result = if injected {
        crate::spec_check::check_injected(method, path, status, response.body())
    } else {
        crate::spec_check::check_response(method, path, status, response.body())
    };
    lock(report).record(status, result);
}

/// Applies a body fault, keeping the status and side effects.
fn mangle(response: Reply, action: Option<&FaultKind>) -> Reply {
    let (mut parts, body) = response.into_parts();
    let body = match action {
        Some(FaultKind::NotJson) => {
            parts
                .headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            Bytes::from_static(b"<html><body><h1>502 Bad Gateway</h1></body></html>")
        }
        Some(FaultKind::TruncatedBody) => body.slice(..body.len() / 2),
        _ => body,
    };
    Response::from_parts(parts, body)
}
