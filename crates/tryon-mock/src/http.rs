//! The HTTP front: routing, faults, auth, handlers and the control API.

// Handlers return `Response` as the error of small internal results; boxing
// them would only add allocations. The two dispatchers are long flat matches.
#![allow(clippy::result_large_err, clippy::too_many_lines)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use bytes::Bytes;
use serde::Serialize;
use tryon_api::types::{
    ErrorBody, JobStatus, Metrics, ResultResponse, StatusResponse, SubmitResponse,
    UploadAssetResponse,
};
use uuid::Uuid;

use crate::config::{FailRule, RateLimit};
use crate::fault::{Fault, FaultKind, Route};
use crate::journal::JournalEntry;
use crate::render;
use crate::state::{Asset, Refusal, State, lock};
use crate::validate::{self, Invalid};

/// Returned to hyper to close a connection without a response.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by a mock fault")
    }
}

impl std::error::Error for DropConnection {}

enum Endpoint<'a> {
    Submit,
    Run,
    Status(&'a str),
    Result(&'a str),
    Upload,
    Output(&'a str),
    Asset(&'a str),
    MethodNotAllowed,
    NotFound,
}

impl Endpoint<'_> {
    fn route(&self) -> Option<Route> {
        Some(match self {
            Endpoint::Submit => Route::Submit,
            Endpoint::Run => Route::Run,
            Endpoint::Status(_) => Route::Status,
            Endpoint::Result(_) => Route::Result,
            Endpoint::Upload => Route::Upload,
            Endpoint::Output(_) | Endpoint::Asset(_) => Route::Output,
            Endpoint::MethodNotAllowed | Endpoint::NotFound => return None,
        })
    }
}

fn classify<'a>(method: &Method, path: &'a str) -> Endpoint<'a> {
    let want = |m: Method, e: Endpoint<'a>| {
        if *method == m {
            e
        } else {
            Endpoint::MethodNotAllowed
        }
    };
    match path {
        "/v2/p-image-try-on" => return want(Method::POST, Endpoint::Submit),
        "/v1/p-image-try-on" => return want(Method::POST, Endpoint::Run),
        "/upload-asset" => return want(Method::POST, Endpoint::Upload),
        _ => {}
    }
    if let Some(rest) = path
        .strip_prefix("/v2/requests/")
        .or_else(|| path.strip_prefix("/v1/requests/"))
    {
        if let Some(id) = rest.strip_suffix("/status") {
            if !id.is_empty() && !id.contains('/') && path.starts_with("/v2/") {
                return want(Method::GET, Endpoint::Status(id));
            }
        } else if !rest.is_empty() && !rest.contains('/') {
            return want(Method::GET, Endpoint::Result(rest));
        }
    }
    if let Some(name) = path.strip_prefix("/outputs/")
        && !name.is_empty()
        && !name.contains('/')
    {
        return want(Method::GET, Endpoint::Output(name));
    }
    if let Some(id) = path.strip_prefix("/assets/")
        && !id.is_empty()
        && !id.contains('/')
    {
        return want(Method::GET, Endpoint::Asset(id));
    }
    Endpoint::NotFound
}

pub(crate) fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(crate) fn error(status: StatusCode, text: impl Into<String>) -> Response<Body> {
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

fn with_retry_after(mut r: Response<Body>, value: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn refusal(r: Refusal) -> Response<Body> {
    match r {
        Refusal::Unauthorized(text) => error(StatusCode::UNAUTHORIZED, text),
        Refusal::RateLimited { retry_after_secs } => with_retry_after(
            error(StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
            &retry_after_secs.to_string(),
        ),
        Refusal::NoCredits => error(StatusCode::NOT_ACCEPTABLE, "Insufficient credits"),
    }
}

fn invalid(i: Invalid) -> Response<Body> {
    match i {
        Invalid::Malformed(m) => error(StatusCode::BAD_REQUEST, m),
        Invalid::Field(m) => error(StatusCode::UNPROCESSABLE_ENTITY, m),
    }
}

impl State {
    fn base(&self, headers: &HeaderMap) -> String {
        if let Some(b) = &self.base_url {
            return b.clone();
        }
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .map_or_else(|| self.fallback_base.clone(), |h| format!("http://{h}"))
    }

    fn resolve_image(&self, base: &str, reference: &str) -> Option<Vec<u8>> {
        if reference.starts_with("data:") {
            return render::decode_data_uri(reference).map(|(_, b)| b);
        }
        let id = reference
            .strip_prefix(base)
            .or_else(|| {
                self.base_url
                    .as_deref()
                    .and_then(|b| reference.strip_prefix(b))
            })
            .or_else(|| reference.strip_prefix(self.fallback_base.as_str()))?
            .strip_prefix("/assets/")?;
        let id = Uuid::parse_str(id).ok()?;
        lock(&self.assets).get(&id).map(|a| a.bytes.to_vec())
    }
}

async fn read_body(
    state: &State,
    req: Request<hyper::body::Incoming>,
) -> Result<Bytes, Response<Body>> {
    let limit = lock(&state.settings).max_body_bytes;
    let too_large = || error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(Body::new(req.into_body()), limit)
        .await
        .map_err(|_| too_large())
}

/// Handles one request. `Err` closes the connection without a response.
pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let started = Instant::now();
    let at = state.clock.now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/__mock/") {
        let rest = rest.to_string();
        let response = control(&state, &method, &rest, req).await;
        tracing::info!(%method, %path, status = response.status().as_u16(), "control");
        return Ok(response);
    }
    let key = req
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let endpoint = classify(&method, &path);
    let route = endpoint.route();
    let (latency, action, drop_after) = match route {
        Some(r) => state.take_faults(r),
        None => (Duration::ZERO, None, false),
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let journal = |status: Option<u16>, body: Option<Bytes>| JournalEntry {
        at,
        method: method.to_string(),
        path: path.clone(),
        key: key.clone(),
        status,
        body,
    };
    let mut response = match &action {
        Some(FaultKind::DropBeforeAccept) => {
            state.record(journal(None, None));
            tracing::info!(%method, %path, "dropped connection (fault, before accept)");
            return Err(DropConnection);
        }
        Some(FaultKind::Status { code, retry_after }) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
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
        _ => dispatch(&state, endpoint, key.as_deref(), req).await,
    };
    let status = response.status();
    if drop_after && status == StatusCode::OK {
        if let Some(r) = route {
            state.consume_drop_after(r);
        }
        state.record(journal(None, None));
        tracing::info!(%method, %path, "dropped connection (fault, after accept)");
        return Err(DropConnection);
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json");
    let (record_bodies, mangle) = (
        lock(&state.settings).record_bodies,
        matches!(action, Some(FaultKind::NotJson | FaultKind::TruncatedBody)),
    );
    #[cfg(feature = "spec-check")]
    let spec_check = is_json && state.spec.is_some();
    #[cfg(not(feature = "spec-check"))]
    let spec_check = false;
    let mut recorded = None;
    if (record_bodies && is_json) || mangle || spec_check {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        // The body as the mock built it, before a fault mangles it.
        #[cfg(feature = "spec-check")]
        if let (true, Some(report)) = (spec_check, &state.spec) {
            let result = if matches!(action, Some(FaultKind::Status { .. })) {
                crate::spec_check::check_injected(method.as_str(), &path, status.as_u16(), &bytes)
            } else {
                crate::spec_check::check_response(method.as_str(), &path, status.as_u16(), &bytes)
            };
            lock(report).record(status.as_u16(), result);
        }
        let (out, ct): (Bytes, HeaderValue) = match action {
            Some(FaultKind::NotJson) => (
                Bytes::from_static(b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
                HeaderValue::from_static("text/html"),
            ),
            Some(FaultKind::TruncatedBody) => (
                bytes.slice(..bytes.len() / 2),
                parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .cloned()
                    .unwrap_or(HeaderValue::from_static("application/json")),
            ),
            _ => {
                if record_bodies && is_json {
                    recorded = Some(bytes.clone());
                }
                (
                    bytes,
                    parts
                        .headers
                        .get(header::CONTENT_TYPE)
                        .cloned()
                        .unwrap_or(HeaderValue::from_static("application/json")),
                )
            }
        };
        response = Response::from_parts(parts, Body::from(out));
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    state.record(journal(Some(status.as_u16()), recorded));
    tracing::info!(
        %method,
        %path,
        status = status.as_u16(),
        elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    Ok(response)
}

async fn dispatch(
    state: &State,
    endpoint: Endpoint<'_>,
    key: Option<&str>,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    match endpoint {
        Endpoint::NotFound => return error(StatusCode::NOT_FOUND, "Not found"),
        Endpoint::MethodNotAllowed => {
            return error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        }
        Endpoint::Output(name) => return output(state, name),
        Endpoint::Asset(id) => return asset(state, id),
        _ => {}
    }
    if let Err(r) = state.admit(key) {
        return refusal(r);
    }
    let key = key.unwrap_or_default();
    let base = state.base(req.headers());
    match endpoint {
        Endpoint::Submit => submit(state, key, &base, req).await,
        Endpoint::Run => run(state, key, &base, req).await,
        Endpoint::Status(id) => status(state, &base, id),
        Endpoint::Result(id) => result(state, &base, id),
        Endpoint::Upload => upload(state, &base, req).await,
        _ => error(StatusCode::NOT_FOUND, "Not found"),
    }
}

fn urls(base: &str, id: &str) -> (String, String, String) {
    (
        format!("{base}/v2/requests/{id}/status"),
        format!("{base}/v2/requests/{id}"),
        format!("{base}/v1/requests/{id}"),
    )
}

/// The body of either POST, read, validated and paid for: the steps a
/// submit and a synchronous run share before a job exists.
async fn checked_and_charged(
    state: &State,
    key: &str,
    req: Request<hyper::body::Incoming>,
) -> Result<tryon_api::types::TryOnInput, Response<Body>> {
    let bytes = read_body(state, req).await?;
    let input = validate::try_on_input(&bytes).map_err(invalid)?;
    state
        .charge(key, input.garment_images.len())
        .map_err(refusal)?;
    Ok(input)
}

async fn submit(
    state: &State,
    key: &str,
    base: &str,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let input = match checked_and_charged(state, key, req).await {
        Ok(input) => input,
        Err(r) => return r,
    };
    let (id, _, _) = state.accept(input);
    state.bill(key);
    let id = id.to_string();
    let (status_url, response_url, poll_url) = urls(base, &id);
    json_response(
        StatusCode::OK,
        &SubmitResponse {
            poll_url: Some(poll_url),
            request_id: id,
            response_url,
            status: JobStatus::Queued,
            status_url,
        },
    )
}

fn failed_body(id: &str, error: String, inference_time: f64) -> Response<Body> {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &ErrorBody {
            error,
            metrics: Some(Metrics {
                inference_time: Some(inference_time),
            }),
            request_id: Some(id.to_string()),
            status: Some(JobStatus::Failed),
        },
    )
}

fn not_found() -> Response<Body> {
    error(StatusCode::NOT_FOUND, "request not found or expired")
}

fn status(state: &State, base: &str, id: &str) -> Response<Body> {
    let Some(job) = state.job(id) else {
        return not_found();
    };
    match job.status {
        JobStatus::Failed => failed_body(id, job.failure.unwrap_or_default(), job.inference_time),
        JobStatus::Completed => json_response(
            StatusCode::OK,
            &StatusResponse {
                error: None,
                metrics: Some(Metrics {
                    inference_time: Some(job.inference_time),
                }),
                request_id: Some(id.to_string()),
                response_url: None,
                status: JobStatus::Completed,
                status_url: None,
            },
        ),
        waiting => {
            let (status_url, response_url, _) = urls(base, id);
            json_response(
                StatusCode::OK,
                &StatusResponse {
                    error: None,
                    metrics: Some(Metrics {
                        inference_time: None,
                    }),
                    request_id: Some(id.to_string()),
                    response_url: Some(response_url),
                    status: waiting,
                    status_url: Some(status_url),
                },
            )
        }
    }
}

fn output_url(base: &str, id: &str, job: &crate::state::JobView) -> String {
    let ext = render::extension(job.input.output_format.unwrap_or_default());
    format!("{base}/outputs/{id}.{ext}")
}

fn result(state: &State, base: &str, id: &str) -> Response<Body> {
    let Some(job) = state.job(id) else {
        return not_found();
    };
    match job.status {
        JobStatus::Failed => failed_body(
            id,
            job.failure.clone().unwrap_or_default(),
            job.inference_time,
        ),
        JobStatus::Completed => json_response(
            StatusCode::OK,
            &ResultResponse {
                error: None,
                metrics: Some(Metrics {
                    inference_time: Some(job.inference_time),
                }),
                output: Some(output_url(base, id, &job)),
                request_id: Some(id.to_string()),
                status: JobStatus::Completed,
            },
        ),
        waiting => json_response(
            StatusCode::OK,
            &ResultResponse {
                error: None,
                metrics: Some(Metrics {
                    inference_time: None,
                }),
                output: None,
                request_id: Some(id.to_string()),
                status: waiting,
            },
        ),
    }
}

fn image_response(bytes: Vec<u8>, content_type: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(bytes));
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn render_job(state: &State, base: &str, input: &tryon_api::types::TryOnInput) -> Response<Body> {
    let resolve = |r: &str| state.resolve_image(base, r);
    let size = lock(&state.settings).output_size;
    match render::render(input, size, &resolve) {
        Ok(bytes) => image_response(
            bytes,
            render::content_type(input.output_format.unwrap_or_default()),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn output(state: &State, name: &str) -> Response<Body> {
    let id = name.split_once('.').map_or(name, |(id, _)| id);
    match state.job(id) {
        Some(job) if job.status == JobStatus::Completed => {
            let base = state
                .base_url
                .clone()
                .unwrap_or_else(|| state.fallback_base.clone());
            render_job(state, &base, &job.input)
        }
        _ => error(StatusCode::NOT_FOUND, "output not found or expired"),
    }
}

fn asset(state: &State, id: &str) -> Response<Body> {
    let Ok(id) = Uuid::parse_str(id) else {
        return error(StatusCode::NOT_FOUND, "asset not found");
    };
    match lock(&state.assets).get(&id) {
        Some(a) => {
            let mut r = Response::new(Body::from(a.bytes.clone()));
            if let Ok(v) = HeaderValue::from_str(&a.mime) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            r
        }
        None => error(StatusCode::NOT_FOUND, "asset not found"),
    }
}

async fn run(
    state: &State,
    key: &str,
    base: &str,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let input = match checked_and_charged(state, key, req).await {
        Ok(input) => input,
        Err(r) => return r,
    };
    let (id, failure, stages) = state.accept(input);
    // In real time the call is held for the job's duration; with a virtual
    // clock it answers at once (nothing would ever advance it mid-call).
    if !state.clock.is_virtual() {
        tokio::time::sleep(stages.queued + stages.processing).await;
    }
    let id = id.to_string();
    let Some(job) = state.job(&id) else {
        return not_found();
    };
    if let Some(error) = failure {
        return failed_body(&id, error, job.inference_time);
    }
    state.bill(key);
    render_job(state, base, &job.input)
}

async fn upload(state: &State, base: &str, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let bytes = match read_body(state, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request = match validate::upload_request(&bytes) {
        Ok(r) => r,
        Err(e) => return invalid(e),
    };
    let mut file_urls = Vec::with_capacity(request.data_urls.len());
    let mut decoded = Vec::with_capacity(request.data_urls.len());
    for (i, uri) in request.data_urls.iter().enumerate() {
        match render::decode_data_uri(uri) {
            Some(d) => decoded.push(d),
            None => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("data_urls[{i}]: base64 data does not decode"),
                );
            }
        }
    }
    let mut assets = lock(&state.assets);
    for (mime, bytes) in decoded {
        let id = Uuid::new_v4();
        assets.insert(
            id,
            Asset {
                mime,
                bytes: Bytes::from(bytes),
            },
        );
        file_urls.push(format!("{base}/assets/{id}"));
    }
    json_response(
        StatusCode::OK,
        &UploadAssetResponse {
            file_urls,
            message: Some("Files uploaded successfully".to_string()),
        },
    )
}

// ---- control API -------------------------------------------------------

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

fn ok_json(v: &serde_json::Value) -> Response<Body> {
    json_response(StatusCode::OK, v)
}

async fn control(
    state: &State,
    method: &Method,
    rest: &str,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let query = req.uri().query().unwrap_or("").to_string();
    let body = if *method == Method::GET || *method == Method::DELETE {
        Bytes::new()
    } else {
        match read_body(state, req).await {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
    let parse = |what: &str| -> Result<serde_json::Value, Response<Body>> {
        if body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&body)
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("{what}: {e}")))
    };
    macro_rules! typed {
        ($ty:ty, $what:expr) => {
            match parse($what).and_then(|v| {
                serde_json::from_value::<$ty>(v)
                    .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, format!("{}: {e}", $what)))
            }) {
                Ok(v) => v,
                Err(r) => return r,
            }
        };
    }
    let now = || serde_json::json!({ "now": state.clock.now().as_secs_f64() });
    match (method.as_str(), rest) {
        ("GET", "now") => ok_json(&now()),
        ("POST", "advance") => {
            #[derive(serde::Deserialize)]
            struct Advance {
                seconds: f64,
            }
            let a = typed!(Advance, "advance");
            match Duration::try_from_secs_f64(a.seconds) {
                Ok(d) => {
                    state.clock.advance(d);
                    ok_json(&now())
                }
                Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, format!("seconds: {e}")),
            }
        }
        ("POST", "reset") => {
            state.reset();
            ok_json(&now())
        }
        ("GET", "journal") => {
            let entries: Vec<JournalEntry> = lock(&state.journal).iter().cloned().collect();
            json_response(StatusCode::OK, &entries)
        }
        ("GET", "billing") => {
            let billing = lock(&state.billing);
            let mut v = serde_json::json!({ "billed_submits": billing.total });
            if let Some(k) = query.strip_prefix("key=") {
                v["billed_submits_for_key"] = billing.per_key.get(k).copied().unwrap_or(0).into();
                if let Some(b) = billing.balances.get(k) {
                    v["balance"] = (*b).into();
                }
            }
            ok_json(&v)
        }
        ("GET", "faults") => {
            let faults: Vec<Fault> = lock(&state.settings)
                .faults
                .iter()
                .map(|f| f.fault.clone())
                .collect();
            json_response(StatusCode::OK, &faults)
        }
        ("POST", "faults") => {
            let faults = typed!(OneOrMany<Fault>, "faults").into_vec();
            let mut s = lock(&state.settings);
            s.faults.extend(
                faults
                    .into_iter()
                    .map(|fault| crate::state::ActiveFault { fault }),
            );
            ok_json(&serde_json::json!({ "faults": s.faults.len() }))
        }
        ("DELETE", "faults") => {
            lock(&state.settings).faults.clear();
            ok_json(&serde_json::json!({ "faults": 0 }))
        }
        ("PUT", "fail_rules") => {
            let rules = typed!(OneOrMany<FailRule>, "fail_rules").into_vec();
            lock(&state.settings).fail_rules = rules;
            ok_json(&serde_json::json!({}))
        }
        ("PUT", "rate_limit") => {
            let rate = typed!(Option<RateLimit>, "rate_limit");
            lock(&state.settings).rate_limit = rate;
            lock(&state.buckets).clear();
            ok_json(&serde_json::json!({}))
        }
        ("PUT", "keys") => {
            let keys = typed!(Option<Vec<String>>, "keys");
            lock(&state.settings).keys = keys;
            ok_json(&serde_json::json!({}))
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no control endpoint {method} /__mock/{rest}"),
        ),
    }
}
