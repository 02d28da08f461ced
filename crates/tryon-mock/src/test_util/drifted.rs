//! A deliberately drifted upstream: a small server that departs from the
//! API spec ([`tryon_api::SPEC`]) in five planted ways and is otherwise as
//! the spec says.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::sync::lock;

/// What the drifted upstream saw, for the key checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Seen {
    /// `(path, x-api-key)` of every request.
    pub requests: Vec<(String, Option<String>)>,
    /// Status calls for `job-1` so far.
    pub status_calls: usize,
    /// Submits with the right key so far.
    pub submits: usize,
}

/// An upstream that departs from the API spec in five planted ways:
///
/// 1. the second status call renames `request_id` to `requestId`;
/// 2. the third status call goes back from `PROCESSING` to `QUEUED`;
/// 3. the output image is served as `text/plain`;
/// 4. every submit after the first is a `429` without `Retry-After`;
/// 5. the synchronous v1 run answers an undeclared `418`.
///
/// From the fourth status call on, the job (always `job-1`) is
/// `COMPLETED`, so a client that polls to completion gets there. It accepts
/// only [`SECRET`](Self::SECRET); the `401`, `418` and `429` bodies echo the
/// key sent, so whoever reports these answers must remove it. It serves on
/// a random loopback port until dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use tryon_mock::test_util::DriftedUpstream;
///
/// let upstream = DriftedUpstream::start().await?;
/// assert!(upstream.uri().starts_with("http://127.0.0.1:"));
/// assert_eq!(upstream.seen().submits, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DriftedUpstream {
    uri: String,
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl DriftedUpstream {
    /// The only key it accepts (distinctive, so a test can search any
    /// output for it).
    pub const SECRET: &'static str = "sk-proxy-secret-7f3a9c";

    /// Binds a random loopback port and serves on the current tokio
    /// runtime.
    ///
    /// # Errors
    /// No loopback port can be bound.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let uri = format!("http://{}", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task = tokio::spawn(serve(listener, Arc::clone(&seen), uri.clone()));
        Ok(Self { uri, seen, task })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        self.uri.clone()
    }

    /// What it saw so far.
    pub fn seen(&self) -> Seen {
        lock(&self.seen).clone()
    }

    /// Forgets what it saw: the next calls meet the planted departures
    /// again from the start.
    pub fn reset(&self) {
        *lock(&self.seen) = Seen::default();
    }
}

impl Drop for DriftedUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: tokio::net::TcpListener, seen: Arc<Mutex<Seen>>, base: String) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (seen, base) = (Arc::clone(&seen), base.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let reply = answer(&seen, &base, &req);
                async move { Ok::<_, Infallible>(reply) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json_reply(status: StatusCode, v: &Value) -> Response<Full<Bytes>> {
    reply(status, "application/json", v.to_string())
}

fn answer(
    seen: &Mutex<Seen>,
    base: &str,
    req: &Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let key = req
        .headers()
        .get("x-api-key")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let mut seen = lock(seen);
    seen.requests.push((path.clone(), key.clone()));
    let ok = StatusCode::OK;
    let echoed = key.clone().unwrap_or_default();
    match path.as_str() {
        "/v2/p-image-try-on" if key.as_deref() != Some(DriftedUpstream::SECRET) => json_reply(
            StatusCode::UNAUTHORIZED,
            &json!({"error": format!("key {echoed} is not valid")}),
        ),
        "/v2/p-image-try-on" => {
            seen.submits += 1;
            if seen.submits == 1 {
                json_reply(
                    ok,
                    &json!({
                        "request_id": "job-1", "status": "QUEUED",
                        "poll_url": format!("{base}/v1/requests/job-1"),
                        "status_url": format!("{base}/v2/requests/job-1/status"),
                        "response_url": format!("{base}/v2/requests/job-1"),
                    }),
                )
            } else {
                json_reply(
                    StatusCode::TOO_MANY_REQUESTS,
                    &json!({"error": format!("Too many requests for key {echoed}")}),
                )
            }
        }
        "/v2/requests/job-1/status" => {
            seen.status_calls += 1;
            let body = match seen.status_calls {
                1 => json!({"status": "PROCESSING", "request_id": "job-1"}),
                2 => json!({"status": "PROCESSING", "requestId": "job-1"}),
                3 => json!({"status": "QUEUED", "request_id": "job-1"}),
                _ => json!({"status": "COMPLETED", "request_id": "job-1",
                            "metrics": {"inference_time": 1.5}}),
            };
            json_reply(ok, &body)
        }
        "/v2/requests/job-1" => json_reply(
            ok,
            &json!({
                "status": "COMPLETED", "request_id": "job-1", "error": null,
                "metrics": {"inference_time": 1.5},
                "output": format!("{base}/cdn/out.png"),
            }),
        ),
        // Undeclared, and echoing the key: a drift record's example must not.
        "/v1/p-image-try-on" => json_reply(
            StatusCode::IM_A_TEAPOT,
            &json!({"error": format!("I'm a teapot, key {echoed}")}),
        ),
        "/cdn/out.png" => reply(ok, "text/plain", "not an image"),
        _ => json_reply(StatusCode::NOT_FOUND, &json!({"error": "Not Found"})),
    }
}
