//! A tiny scripted HTTP/1.1 server for client tests: each request is
//! recorded and answered by a closure that sees how many requests came
//! before, so a test can script lifecycles and faults (a dropped
//! connection, for one) that a static mock cannot.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::missing_panics_doc
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
pub mod logs;
pub mod png;

use tryon_client::test_util::VirtualClock;
use tryon_client::{Client, ClientBuilder, Image, RetryPolicy, TryOnRequest};

pub const KEY: &str = "sk-test-SECRET-0123456789";
pub const ID: &str = "5b9f0e62-8c51-4a64-9a3e-6ad1f2f0c9d4";
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\xdac\xfc\xcf\xc0\x50\x0f\0\x04\x85\x01\x80\x84\xa9\x8c!\0\0\0\0IEND\xaeB`\x82";

#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub enum Reply {
    Json(u16, serde_json::Value),
    JsonWith(u16, serde_json::Value, Vec<(&'static str, String)>),
    Raw(u16, &'static str, Vec<u8>),
    /// Read the request, then close without answering.
    Drop,
}

#[derive(Clone)]
pub struct Script {
    pub url: String,
    pub log: Arc<Mutex<Vec<Req>>>,
}

impl Script {
    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }
}

/// Serves `handler(request, n)` where `n` counts earlier requests with the
/// same method and path.
pub async fn serve<F>(handler: F) -> Script
where
    F: Fn(&Req, usize) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log: Arc<Mutex<Vec<Req>>> = Arc::default();
    let handler = Arc::new(handler);
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let log = log2.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 8192];
                let head_end = loop {
                    let n = sock.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.split("\r\n");
                let mut first = lines.next().unwrap_or("").split(' ');
                let method = first.next().unwrap_or("").to_string();
                let path = first.next().unwrap_or("").to_string();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = sock.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                }
                let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
                let req = Req {
                    method,
                    path,
                    headers,
                    body,
                };
                let n = {
                    let mut log = log.lock().unwrap();
                    let n = log
                        .iter()
                        .filter(|r| r.method == req.method && r.path == req.path)
                        .count();
                    log.push(req.clone());
                    n
                };
                let (status, ctype, body, extra) = match handler(&req, n) {
                    Reply::Drop => return,
                    Reply::Json(s, v) => {
                        (s, "application/json", v.to_string().into_bytes(), vec![])
                    }
                    Reply::JsonWith(s, v, h) => {
                        (s, "application/json", v.to_string().into_bytes(), h)
                    }
                    Reply::Raw(s, ct, b) => (s, ct, b, vec![]),
                };
                let mut out = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (k, v) in extra {
                    out.push_str(k);
                    out.push_str(": ");
                    out.push_str(&v);
                    out.push_str("\r\n");
                }
                out.push_str("\r\n");
                let _ = sock.write_all(out.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Script { url, log }
}

pub fn submitted(base: &str) -> Reply {
    Reply::Json(
        200,
        serde_json::json!({
            "request_id": ID,
            "status": "QUEUED",
            // Absolute URLs on a foreign host: the client must ignore them.
            "status_url": format!("{base}/v2/requests/{ID}/status"),
            "response_url": format!("{base}/v2/requests/{ID}"),
        }),
    )
}

/// `429` with `Retry-After: <secs>`.
pub fn too_many(message: &str, secs: u64) -> Reply {
    Reply::JsonWith(
        429,
        serde_json::json!({ "error": message }),
        vec![("retry-after", secs.to_string())],
    )
}

pub fn status(s: &str) -> Reply {
    Reply::Json(
        200,
        serde_json::json!({"status": s, "request_id": ID, "metrics": {}}),
    )
}

pub fn result(output: &str) -> Reply {
    Reply::Json(
        200,
        serde_json::json!({"status": "COMPLETED", "error": null, "metrics": {"inference_time": 2.31}, "output": output}),
    )
}

pub fn builder(base: &str, clock: &VirtualClock) -> ClientBuilder {
    Client::builder()
        .api_key(KEY)
        .base_url(base)
        .clock(clock.clone())
        .request_timeout(Duration::from_secs(20))
        .retry_policy(RetryPolicy::default())
}

pub fn client(base: &str, clock: &VirtualClock) -> Client {
    builder(base, clock).build().unwrap()
}

/// A client clock that follows `server`'s virtual clock: the client's
/// sleeps advance the mock's time, so jobs move as the client waits.
pub fn following(server: &tryon_mock::MockServer) -> VirtualClock {
    VirtualClock::following(
        server.clock(),
        tryon_mock::MockClock::now,
        tryon_mock::MockClock::advance,
    )
}

pub fn request(garments: usize) -> TryOnRequest {
    TryOnRequest::builder()
        .person(Image::url("https://example.com/person.jpg"))
        .garments((0..garments).map(|i| Image::url(format!("https://example.com/g{i}.jpg"))))
        .seed(12345)
        .build()
        .unwrap()
}

/// A port where nothing listens.
pub async fn refused_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}
