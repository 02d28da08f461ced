//! A deliberately drifted upstream: a small server that departs from
//! the API spec (`tryon_api::SPEC`) in five planted ways and is otherwise as the
//! spec says. The proxy's tests (`tests/proxy.rs`) and `tryon parity`'s
//! (`crates/tryon-cli/tests/parity.rs`, which includes this file by path)
//! use the same one, so there is one drifted upstream, not two.
//!
//! The planted departures:
//! 1. the second status call renames `request_id` to `requestId`;
//! 2. the third status call goes back from `PROCESSING` to `QUEUED`;
//! 3. the output image is served as `text/plain`;
//! 4. every submit after the first is a `429` without `Retry-After`;
//! 5. the synchronous v1 run answers an undeclared `418`.
//!
//! From the fourth status call on, the job is `COMPLETED`, so a client that
//! polls to completion gets there. The `401` and `418` bodies echo the key
//! sent, and the `429` body echoes it too: whoever reports these answers
//! must remove it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use serde_json::{Value, json};

/// The only key the drifted upstream accepts (distinctive, so a test can
/// grep for it).
pub const SECRET: &str = "sk-proxy-secret-7f3a9c";

/// What the drifted upstream saw, for the key checks.
#[derive(Default)]
pub struct Seen {
    /// `(path, x-api-key)` of every request.
    pub requests: Vec<(String, Option<String>)>,
    /// Status calls for `job-1` so far.
    pub status_calls: usize,
    /// Submits with the right key so far.
    pub submits: usize,
}

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    r
}

/// Starts the drifted upstream on a random loopback port; returns its base
/// URL. It serves until the runtime ends.
pub async fn start(seen: Arc<Mutex<Seen>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let me = base.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (seen, base) = (Arc::clone(&seen), me.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (seen, base) = (Arc::clone(&seen), base.clone());
                        async move { Ok::<_, Infallible>(answer(&seen, &base, &req)) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    base
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
    let mut seen = seen.lock().unwrap();
    seen.requests.push((path.clone(), key.clone()));
    let json = |status: u16, v: Value| reply(status, "application/json", v.to_string());
    match path.as_str() {
        "/v2/p-image-try-on" if key.as_deref() != Some(SECRET) => json(
            401,
            json!({"error": format!("key {} is not valid", key.unwrap_or_default())}),
        ),
        "/v2/p-image-try-on" => {
            seen.submits += 1;
            if seen.submits == 1 {
                json(
                    200,
                    json!({
                        "request_id": "job-1", "status": "QUEUED",
                        "poll_url": format!("{base}/v1/requests/job-1"),
                        "status_url": format!("{base}/v2/requests/job-1/status"),
                        "response_url": format!("{base}/v2/requests/job-1"),
                    }),
                )
            } else {
                json(
                    429,
                    json!({"error": format!("Too many requests for key {}", key.unwrap_or_default())}),
                )
            }
        }
        "/v2/requests/job-1/status" => {
            seen.status_calls += 1;
            match seen.status_calls {
                1 => json(200, json!({"status": "PROCESSING", "request_id": "job-1"})),
                2 => json(200, json!({"status": "PROCESSING", "requestId": "job-1"})),
                3 => json(200, json!({"status": "QUEUED", "request_id": "job-1"})),
                _ => json(
                    200,
                    json!({"status": "COMPLETED", "request_id": "job-1",
                           "metrics": {"inference_time": 1.5}}),
                ),
            }
        }
        "/v2/requests/job-1" => json(
            200,
            json!({
                "status": "COMPLETED", "request_id": "job-1", "error": null,
                "metrics": {"inference_time": 1.5},
                "output": format!("{base}/cdn/out.png"),
            }),
        ),
        // Undeclared, and echoing the key: a drift record's example must not.
        "/v1/p-image-try-on" => json(
            418,
            json!({"error": format!("I'm a teapot, key {}", key.unwrap_or_default())}),
        ),
        "/cdn/out.png" => reply(200, "text/plain", "not an image"),
        _ => json(404, json!({"error": "Not Found"})),
    }
}
