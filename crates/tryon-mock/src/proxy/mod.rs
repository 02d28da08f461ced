//! The validating proxy (feature `proxy`): serves the API's routes,
//! forwards each request to the real service with the caller's own key, and
//! records every way the answer departs from the API spec
//! ([`tryon_api::SPEC`]) or the contract's job lifecycle as a [`DriftRecord`].
//!
//! [`forward`] talks to the upstream, [`drift`] judges one answer against
//! the spec, [`lifecycle`] judges a job's answers against each other.

mod drift;
mod forward;
mod lifecycle;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

pub use drift::DriftRecord;
use drift::{DriftLog, Exchange};
use forward::Lost;
pub(crate) use forward::{OUTPUT_PREFIX, Outputs, rewrite};
use lifecycle::Lifecycle;

use crate::http::conn::{DropConnection, Handler, Serving, bind};
use crate::http::control::carries_token;
use crate::http::{Reply, error, json_response, read_body};
use crate::limits::{DEFAULT_RECORD_LIMIT, MAX_PROXY_BODY};
use crate::record::writer::{Capture, Recorder};
use crate::sync::lock;

/// How the proxy is set up.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// The API host to forward to (`--proxy URL`), e.g.
    /// [`SEGMIND_API`](Self::SEGMIND_API).
    pub upstream: String,
    /// The upload host (`--proxy-upload URL`). Default:
    /// [`SEGMIND_UPLOAD`](Self::SEGMIND_UPLOAD) when `upstream` is
    /// [`SEGMIND_API`](Self::SEGMIND_API), else `upstream` itself.
    pub upload: Option<String>,
    /// Leave `output` URLs pointing at the upstream's CDN
    /// (`--keep-output-urls`) instead of through the proxy.
    pub keep_output_urls: bool,
    /// The base the rewritten URLs use; default: the address listened on.
    pub public_url: Option<String>,
    /// Required as `Authorization: Bearer <token>` on `/__mock/drift`.
    pub control_token: Option<String>,
    /// Bound on each upstream exchange. Default 120 s.
    pub timeout: Duration,
    /// Record every exchange into this directory (`--record DIR`), in the
    /// format [`RECORDING_FORMAT`](crate::Replay::RECORDING_FORMAT) that
    /// [`Replay`](crate::Replay) serves. It is created if missing and must
    /// not hold a recording yet. Default: no recording.
    pub record: Option<PathBuf>,
    /// Most bytes the recording may hold (`--record-limit`). Default
    /// [`DEFAULT_RECORD_LIMIT`].
    pub record_limit: u64,
}

impl ProxyOptions {
    /// The real service's API host; its upload host is
    /// [`SEGMIND_UPLOAD`](Self::SEGMIND_UPLOAD).
    pub const SEGMIND_API: &'static str = "https://api.segmind.com";

    /// The real service's upload host (`POST /upload-asset`).
    pub const SEGMIND_UPLOAD: &'static str = "https://workflows-api.segmind.com";

    /// Options forwarding to `upstream`, every other value its default.
    pub fn new(upstream: impl Into<String>) -> Self {
        Self {
            upstream: upstream.into(),
            upload: None,
            keep_output_urls: false,
            public_url: None,
            control_token: None,
            timeout: Duration::from_mins(2),
            record: None,
            record_limit: DEFAULT_RECORD_LIMIT,
        }
    }
}

/// Checks an `http(s)` base URL given for `flag`; returns it without a
/// trailing `/`.
fn base_url(flag: &str, url: &str) -> std::io::Result<String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.trim_end_matches('/').to_string())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{flag}: {url:?} is not an http(s) URL"),
        ))
    }
}

struct Shared {
    client: reqwest::Client,
    upstream: String,
    upload: String,
    base: String,
    keep_output_urls: bool,
    control_token: Option<String>,
    drift: Mutex<DriftLog>,
    lifecycle: Mutex<Lifecycle>,
    outputs: Mutex<Outputs>,
    recorder: Option<Recorder>,
}

/// A running validating proxy; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _serving: Serving,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl Drop for Proxy {
    /// Ends the recording, as [`finish_recording`](Self::finish_recording)
    /// does (its answer is in `recording.json` either way).
    fn drop(&mut self) {
        let _ = self.finish_recording();
    }
}

impl Proxy {
    /// The response header counting the drift records one response
    /// produced (`0` for an answer that matched the spec).
    pub const DRIFT_HEADER: &'static str = "x-tryon-drift";

    /// Binds `addr` and serves until dropped.
    ///
    /// # Errors
    /// A URL that is not http(s) (`InvalidInput`, naming the flag), or the
    /// address cannot be bound.
    pub async fn start(options: ProxyOptions, addr: SocketAddr) -> std::io::Result<Self> {
        let upstream = base_url("--proxy", &options.upstream)?;
        let upload = match &options.upload {
            Some(u) => base_url("--proxy-upload", u)?,
            None if upstream == ProxyOptions::SEGMIND_API => {
                ProxyOptions::SEGMIND_UPLOAD.to_string()
            }
            None => upstream.clone(),
        };
        let public = options
            .public_url
            .as_deref()
            .map(|u| base_url("--public-url", u))
            .transpose()?;
        let client = forward::client(options.timeout).map_err(std::io::Error::other)?;
        let recorder = options
            .record
            .as_deref()
            .map(|dir| Recorder::create(dir, &upstream, options.record_limit))
            .transpose()?;
        let (listener, addr, local) = bind(addr).await?;
        let shared = Arc::new(Shared {
            client,
            upstream,
            upload,
            base: public.unwrap_or(local),
            keep_output_urls: options.keep_output_urls,
            control_token: options.control_token.filter(|t| !t.is_empty()),
            drift: Mutex::default(),
            lifecycle: Mutex::default(),
            outputs: Mutex::default(),
            recorder,
        });
        let serving = Serving::start(listener, Arc::clone(&shared));
        Ok(Self {
            addr,
            shared,
            _serving: serving,
        })
    }

    /// The base URL clients use (`http://127.0.0.1:PORT`, or the public
    /// URL given).
    pub fn uri(&self) -> String {
        self.shared.base.clone()
    }

    /// The address listened on.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// Every drift record so far (at most [`MAX_DRIFT_RECORDS`](crate::limits::MAX_DRIFT_RECORDS)).
    pub fn drift(&self) -> Vec<DriftRecord> {
        lock(&self.shared.drift).records.clone()
    }

    /// Ends the recording (`--record`; nothing to do without one): the
    /// proxy is done. Call it before dropping the proxy to learn whether
    /// every exchange was recorded. `GET /__mock/health` shows the same as
    /// it goes (`recording: {dir, exchanges, lost, complete, reason}`).
    ///
    /// # Errors
    /// The recording lost exchanges (a full disk, `--record-limit`):
    /// `recording.json` is marked incomplete and a replay refuses it.
    pub fn finish_recording(&self) -> Result<(), crate::RecordingIncomplete> {
        match &self.shared.recorder {
            Some(recorder) => recorder.finish().map(|_| ()),
            None => Ok(()),
        }
    }

    /// Exchanges recorded so far (`--record`), if recording.
    pub fn recorded(&self) -> Option<u64> {
        self.shared.recorder.as_ref().map(|r| r.status().exchanges)
    }

    /// The shutdown summary: the total, then one line per kind of drift.
    pub fn summary(&self) -> String {
        lock(&self.shared.drift).summary()
    }
}

impl Handler for Shared {
    type Error = DropConnection;

    async fn handle(
        self: Arc<Self>,
        req: Request<hyper::body::Incoming>,
    ) -> Result<Reply, DropConnection> {
        handle(&self, req).await
    }
}

/// The caller's answer when the upstream gave none: 502 when the request
/// never left (nothing can have been taken), else no answer at all, and a
/// drift record naming the failure.
fn lost(
    shared: &Shared,
    method: &str,
    path: &str,
    key: Option<&str>,
    e: &Lost,
) -> Result<Reply, DropConnection> {
    let ex = Exchange {
        method,
        path,
        status: 0,
        content_type: None,
        headers: Vec::new(),
        body: &[],
        key,
    };
    match e {
        Lost::NotSent(m) => {
            tracing::warn!(method, path = %ex.operation().1, error = %m, "upstream not reached; answered 502");
            Ok(error(
                StatusCode::BAD_GATEWAY,
                format!("tryon-mock proxy: {m}"),
            ))
        }
        Lost::Unknown(m) => {
            let mut record = ex.record(
                String::new(),
                "an answer from the upstream".into(),
                format!("none: {m}; the caller's connection was closed without an answer"),
            );
            if path.starts_with(OUTPUT_PREFIX) {
                "get_output".clone_into(&mut record.operation);
                "/outputs/{name}".clone_into(&mut record.path);
            }
            tracing::warn!(
                method,
                path = %record.path,
                error = %m,
                "upstream answer lost (the request was sent; its outcome is unknown): \
                 closing the caller's connection without an answer"
            );
            lock(&shared.drift).extend(vec![record]);
            Err(DropConnection)
        }
    }
}

fn authorized(shared: &Shared, req: &Request<hyper::body::Incoming>) -> bool {
    carries_token(shared.control_token.as_deref(), req.headers())
}

/// The proxy's own routes under `/__mock/`; `None` for any other path.
fn control(shared: &Shared, req: &Request<hyper::body::Incoming>, path: &str) -> Option<Reply> {
    Some(match (req.method(), path) {
        (&Method::GET, "/__mock/health") => {
            let mut health = serde_json::json!({"status": "ok"});
            if let Some(recorder) = &shared.recorder {
                health["recording"] = serde_json::to_value(recorder.status()).unwrap_or_default();
            }
            json_response(StatusCode::OK, &health)
        }
        (&Method::GET, "/__mock/drift") if authorized(shared, req) => {
            json_response(StatusCode::OK, &lock(&shared.drift).to_json())
        }
        (&Method::GET, "/__mock/drift") => {
            error(StatusCode::UNAUTHORIZED, "control token required")
        }
        _ if path.starts_with("/__mock/") => {
            error(StatusCode::NOT_FOUND, "the proxy serves /__mock/drift only")
        }
        _ => return None,
    })
}

async fn handle(
    shared: &Shared,
    req: Request<hyper::body::Incoming>,
) -> Result<Reply, DropConnection> {
    let path = req.uri().path().to_string();
    if let Some(reply) = control(shared, &req, &path) {
        return Ok(reply);
    }
    if path.starts_with(OUTPUT_PREFIX) {
        return output(shared, &req, &path).await;
    }
    let key = req
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let method = req.method().clone();
    let headers = req.headers().clone();
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let host = if path == "/upload-asset" {
        &shared.upload
    } else {
        &shared.upstream
    };
    let url = format!("{host}{target}");
    let query = req.uri().query().map(str::to_string);
    let body = match read_body(MAX_PROXY_BODY, req).await {
        Ok(b) => b,
        Err(reply) => return Ok(reply),
    };
    let answer = match forward::send(
        &shared.client,
        &method,
        &url,
        &headers,
        body.clone(),
        true,
        MAX_PROXY_BODY,
    )
    .await
    {
        Ok(a) => a,
        Err(e) => return lost(shared, method.as_str(), &path, key.as_deref(), &e),
    };
    let at = Instant::now();
    let ex = Exchange {
        method: method.as_str(),
        path: &path,
        status: answer.status,
        content_type: answer.media_type(),
        headers: answer
            .headers
            .keys()
            .map(|k| k.as_str().to_string())
            .collect(),
        body: &answer.body,
        key: key.as_deref(),
    };
    let mut records = ex.check();
    let json: Option<serde_json::Value> = (ex.content_type.as_deref() == Some("application/json"))
        .then(|| serde_json::from_slice(&answer.body).ok())
        .flatten();
    let id = job_id(&path, json.as_ref());
    if let Some(id) = &id {
        records.extend(lock(&shared.lifecycle).observe(id, &ex, json.as_ref(), at));
    }
    if let Some(recorder) = &shared.recorder {
        recorder.record(&Capture {
            method: method.as_str(),
            path: &path,
            query: query.as_deref(),
            key: key.as_deref(),
            request_body: &body,
            upstream_url: None,
            status: answer.status,
            headers: &answer.headers,
            media_type: ex.content_type.as_deref(),
            body: &answer.body,
            job: id.as_deref(),
            at,
        });
    }
    let (operation, masked) = ex.operation();
    let body = rewritten(shared, json, &answer.body);
    Ok(finish(shared, &answer, body, records, &operation, &masked))
}

/// The body the caller gets: a JSON one with its URLs rewritten to the
/// proxy, any other as the upstream sent it.
fn rewritten(shared: &Shared, json: Option<serde_json::Value>, body: &Bytes) -> Bytes {
    let Some(mut v) = json else {
        return body.clone();
    };
    let changed = forward::rewrite(
        &mut v,
        &shared.base,
        shared.keep_output_urls,
        &mut lock(&shared.outputs),
    );
    if changed {
        Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
    } else {
        body.clone()
    }
}

/// The job a response is about: the id in a status or result path, or the
/// `request_id` of a submit's answer.
pub(crate) fn job_id(path: &str, body: Option<&serde_json::Value>) -> Option<String> {
    if let Some(rest) = path
        .strip_prefix("/v2/requests/")
        .or_else(|| path.strip_prefix("/v1/requests/"))
    {
        let id = rest.strip_suffix("/status").unwrap_or(rest);
        return Some(id.to_string()).filter(|i| !i.is_empty() && !i.contains('/'));
    }
    if path == "/v2/p-image-try-on" {
        return body
            .and_then(|b| b["request_id"].as_str())
            .map(str::to_string);
    }
    None
}

/// An output image, fetched from its original URL without the key.
async fn output(
    shared: &Shared,
    req: &Request<hyper::body::Incoming>,
    path: &str,
) -> Result<Reply, DropConnection> {
    let Some(url) = lock(&shared.outputs).original(path) else {
        return Ok(error(StatusCode::NOT_FOUND, "unknown proxied output"));
    };
    let answer = match forward::send(
        &shared.client,
        req.method(),
        &url,
        req.headers(),
        Bytes::new(),
        false,
        MAX_PROXY_BODY,
    )
    .await
    {
        Ok(a) => a,
        Err(e) => return lost(shared, req.method().as_str(), path, None, &e),
    };
    let ex = Exchange {
        method: req.method().as_str(),
        path,
        status: answer.status,
        content_type: answer.media_type(),
        headers: Vec::new(),
        body: &answer.body,
        key: None,
    };
    let records = ex.check_output();
    if let Some(recorder) = &shared.recorder {
        recorder.record(&Capture {
            method: req.method().as_str(),
            path,
            query: None,
            key: None,
            request_body: &[],
            upstream_url: Some(&url),
            status: answer.status,
            headers: &answer.headers,
            media_type: ex.content_type.as_deref(),
            body: &answer.body,
            job: None,
            at: Instant::now(),
        });
    }
    Ok(finish(
        shared,
        &answer,
        answer.body.clone(),
        records,
        "get_output",
        "/outputs/{name}",
    ))
}

/// The reply to the caller: the upstream's status, body and the headers
/// that matter, plus the drift count; the records are logged and kept.
fn finish(
    shared: &Shared,
    answer: &forward::Answer,
    body: Bytes,
    records: Vec<DriftRecord>,
    operation: &str,
    masked: &str,
) -> Reply {
    let n = records.len();
    tracing::info!(
        operation,
        path = masked,
        status = answer.status,
        drift = n,
        "proxied"
    );
    for r in &records {
        tracing::warn!(
            operation = %r.operation,
            pointer = %r.pointer,
            expected = %r.expected,
            actual = %r.actual,
            "drift"
        );
    }
    lock(&shared.drift).extend(records);
    let mut reply = Response::new(body);
    *reply.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for name in [
        header::CONTENT_TYPE,
        header::RETRY_AFTER,
        header::CACHE_CONTROL,
        header::LOCATION,
        header::ALLOW,
    ] {
        if let Some(v) = answer.headers.get(name.as_str())
            && let Ok(v) = HeaderValue::from_bytes(v.as_bytes())
        {
            reply.headers_mut().insert(name, v);
        }
    }
    reply
        .headers_mut()
        .insert(Proxy::DRIFT_HEADER, HeaderValue::from(n));
    reply
}
