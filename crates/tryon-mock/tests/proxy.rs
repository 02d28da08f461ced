//! The validating proxy (feature `proxy`): in front of the mock it passes
//! the official flows through with zero drift; in front of a deliberately
//! drifted upstream it reports each departure once, and nothing else; and
//! the caller's key reaches the upstream only (never the drift records, the
//! logs, or the output host).
#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::too_many_lines
)]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tryon_mock::test_util::DriftedUpstream;
use tryon_mock::{DriftRecord, MockServer, Proxy, ProxyOptions};

const SECRET: &str = DriftedUpstream::SECRET;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn call(
    method: &str,
    url: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut r = common::client().request(method.parse().unwrap(), url);
    if let Some(k) = key {
        r = r.header("x-api-key", k);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    r.send().await.unwrap()
}

/// [`call`] with the drifted upstream's (and the mock's) key.
async fn keyed(method: &str, url: &str, body: Option<&Value>) -> reqwest::Response {
    call(method, url, Some(SECRET), body).await
}

/// The status of an answer through the proxy, and its drift count.
fn seen(r: &reqwest::Response) -> (u16, usize) {
    (r.status().as_u16(), drift_of(r))
}

fn drift_of(r: &reqwest::Response) -> usize {
    r.headers()[Proxy::DRIFT_HEADER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_official_flows_pass_through_the_proxy_with_zero_drift() {
    let mock = MockServer::builder()
        .virtual_time()
        .keys([SECRET])
        .start()
        .await;
    let proxy = Proxy::start(ProxyOptions::new(mock.uri()), loopback())
        .await
        .unwrap();
    let p = proxy.uri();
    let body = common::body(2);

    let r = keyed("POST", &format!("{p}/v2/p-image-try-on"), Some(&body)).await;
    assert_eq!(seen(&r), (200, 0));
    let submitted: Value = r.json().await.unwrap();
    assert_eq!(submitted["status"], "QUEUED");
    let id = submitted["request_id"].as_str().unwrap().to_string();
    for field in ["status_url", "response_url", "poll_url"] {
        assert!(
            submitted[field].as_str().unwrap().starts_with(&p),
            "{submitted}"
        );
    }
    let status_url = submitted["status_url"].as_str().unwrap().to_string();
    let r = keyed("GET", &status_url, None).await;
    assert_eq!(seen(&r), (200, 0));
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "QUEUED");

    mock.advance(Duration::from_mins(10));
    let r = keyed("GET", &status_url, None).await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "COMPLETED");
    let r = keyed("GET", submitted["response_url"].as_str().unwrap(), None).await;
    assert_eq!(seen(&r), (200, 0));
    let result: Value = r.json().await.unwrap();
    let output = result["output"].as_str().unwrap();
    assert!(
        output.starts_with(&format!("{p}/__proxy/outputs/")),
        "{result}"
    );
    // Bytes through the proxy equal the mock's own.
    let direct: Value = keyed("GET", &format!("{}/v2/requests/{id}", mock.uri()), None)
        .await
        .json()
        .await
        .unwrap();
    let direct_bytes = common::client()
        .get(direct["output"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let r = call("GET", output, None, None).await;
    assert_eq!(seen(&r), (200, 0));
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap(), direct_bytes);
    // Legacy poll URL.
    let r = keyed("GET", submitted["poll_url"].as_str().unwrap(), None).await;
    assert_eq!(seen(&r), (200, 0));

    // v1 run: image bytes.
    let r = keyed("POST", &format!("{p}/v1/p-image-try-on"), Some(&body)).await;
    assert_eq!(seen(&r), (200, 0));
    assert_eq!(r.headers()["content-type"], "image/png");
    // Upload (the upload host defaults to the --proxy URL here).
    let upload = json!({"data_urls": [common::png_data_uri(4, 4, [9, 9, 9])]});
    let r = keyed("POST", &format!("{p}/upload-asset"), Some(&upload)).await;
    assert_eq!(seen(&r), (200, 0));
    assert_eq!(
        r.json::<Value>().await.unwrap()["file_urls"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Errors, with the same statuses and bodies as the mock's.
    let unknown = format!("/v2/requests/{}/status", uuid::Uuid::new_v4());
    let invalid = json!({"person_image": "https://example.com/p.jpg", "garment_images": []});
    for (method, path, key, body, code) in [
        ("GET", unknown.as_str(), Some(SECRET), None, 404),
        (
            "POST",
            "/v2/p-image-try-on",
            Some(SECRET),
            Some(&invalid),
            422,
        ),
        (
            "POST",
            "/v2/p-image-try-on",
            Some("sk-wrong"),
            Some(&body),
            401,
        ),
        ("POST", "/v2/p-image-try-on", None, Some(&body), 401),
    ] {
        let via = call(method, &format!("{p}{path}"), key, body).await;
        assert_eq!(seen(&via), (code, 0), "{method} {path}");
        let direct = call(method, &format!("{}{path}", mock.uri()), key, body).await;
        assert_eq!(via.bytes().await.unwrap(), direct.bytes().await.unwrap());
    }

    assert_eq!(proxy.drift(), Vec::<DriftRecord>::new());
    let listed: Value = call("GET", &format!("{p}/__mock/drift"), None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!({"count": 0, "dropped": 0, "records": []}));
    assert!(proxy.summary().contains("0 drift record(s)"));
}

/// A `Write` into a shared buffer, for capturing the proxy's log lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_departure_of_a_drifted_upstream_is_reported_once_and_the_key_stays_private() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    // Global, not per thread: a thread-local subscriber races with the
    // other test's first use of the same log sites. The other test's lines
    // land here too; none may hold the key either.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let drifted = DriftedUpstream::start().await.unwrap();
    let proxy = Proxy::start(ProxyOptions::new(drifted.uri()), loopback())
        .await
        .unwrap();
    let p = proxy.uri();
    let body = common::body(1);
    let submit = format!("{p}/v2/p-image-try-on");

    let r = keyed("POST", &submit, Some(&body)).await;
    assert_eq!(seen(&r), (200, 0));
    let submitted: Value = r.json().await.unwrap();
    assert_eq!(
        submitted["status_url"],
        format!("{p}/v2/requests/job-1/status")
    );
    let status_url = format!("{p}/v2/requests/job-1/status");
    let mut counts = Vec::new();
    for _ in 0..3 {
        counts.push(drift_of(&keyed("GET", &status_url, None).await));
    }
    assert_eq!(counts, [0, 1, 1], "rename, then backwards");
    let r = keyed("GET", &format!("{p}/v2/requests/job-1"), None).await;
    assert_eq!(drift_of(&r), 0);
    let output = r.json::<Value>().await.unwrap()["output"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        output.starts_with(&format!("{p}/__proxy/outputs/")),
        "{output}"
    );
    let r = keyed("GET", &output, None).await;
    assert_eq!(seen(&r), (200, 1));
    let r = keyed("POST", &submit, Some(&body)).await;
    assert_eq!(seen(&r), (429, 1));
    let r = keyed("POST", &format!("{p}/v1/p-image-try-on"), Some(&body)).await;
    assert_eq!(seen(&r), (418, 1));
    // A wrong key: a documented 401, no drift; the upstream's echo of the
    // key reaches the caller (it is their own), but no record.
    let r = call("POST", &submit, Some("sk-wrong"), Some(&body)).await;
    assert_eq!(seen(&r), (401, 0));

    let records = proxy.drift();
    let got: Vec<(String, String, u16, String, String, String)> = records
        .iter()
        .map(|r| {
            (
                r.operation.clone(),
                r.path.clone(),
                r.status,
                r.pointer.clone(),
                r.expected.clone(),
                r.actual.clone(),
            )
        })
        .collect();
    let s = |x: &str| x.to_string();
    let expected = [
        (
            s("get_status"),
            s("/v2/requests/{request_id}/status"),
            200,
            s("/body/requestId"),
            s("no such property (undeclared property)"),
            s("\"job-1\""),
        ),
        (
            s("get_status"),
            s("/v2/requests/{request_id}/status"),
            200,
            s("/body/status"),
            s("PROCESSING or a later status (seen before)"),
            s("QUEUED"),
        ),
        (
            s("get_output"),
            s("/outputs/{name}"),
            200,
            s("/headers/content-type"),
            s("one of image/png, image/jpeg, image/webp"),
            s("text/plain"),
        ),
        (
            s("submit_try_on"),
            s("/v2/p-image-try-on"),
            429,
            s("/headers/retry-after"),
            s("header Retry-After (declared for 429)"),
            s("absent"),
        ),
    ];
    assert_eq!(got[..4], expected[..], "{records:#?}");
    assert_eq!(got.len(), 5, "{records:#?}");
    let teapot = &records[4];
    assert_eq!(
        (
            teapot.operation.as_str(),
            teapot.status,
            teapot.pointer.as_str(),
            teapot.actual.as_str()
        ),
        ("run_try_on_sync", 418, "/status", "418")
    );
    assert!(
        teapot.expected.starts_with("one of 200, 400, 401"),
        "{teapot:?}"
    );
    assert!(records[0].example.contains("requestId"), "{records:?}");
    assert!(
        teapot.example.contains("I'm a teapot, key [key removed]"),
        "{teapot:?}"
    );

    // The key: upstream got it on every API call, the output host never.
    let listed = call("GET", &format!("{p}/__mock/drift"), None, None)
        .await
        .text()
        .await
        .unwrap();
    let listed_json: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed_json["count"], 5);
    assert_eq!(
        listed_json["records"],
        serde_json::to_value(&records).unwrap()
    );
    let summary = proxy.summary();
    assert!(
        summary.starts_with("tryon-mock: proxy: 5 drift record(s)"),
        "{summary}"
    );
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("proxied") && logged.contains("drift"),
        "{logged}"
    );
    for (what, text) in [
        ("records", format!("{records:?}")),
        ("GET /__mock/drift", listed),
        ("summary", summary),
        ("logs", logged),
    ] {
        assert!(!text.contains(SECRET), "the key is in the {what}: {text}");
    }
    let seen = drifted.seen();
    let to_output: Vec<_> = seen
        .requests
        .iter()
        .filter(|(p, _)| p.starts_with("/cdn/"))
        .collect();
    assert_eq!(to_output.len(), 1);
    assert_eq!(to_output[0].1, None, "the output host got x-api-key");
    assert!(
        seen.requests
            .iter()
            .filter(|(p, _)| !p.starts_with("/cdn/"))
            .all(|(_, k)| k.is_some()),
        "{:?}",
        seen.requests.len()
    );
}
