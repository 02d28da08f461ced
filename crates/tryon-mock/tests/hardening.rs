//! Hostile and careless input to the in-process mock: control values that
//! would overflow, image bombs, slow and idle connections, the wire's small
//! print (405 `Allow`, 415, canonical ids), uploads, and what the mock
//! writes about its callers.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tryon_mock::MockServer;

async fn control(uri: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let r = client()
        .request(method.parse().unwrap(), format!("{uri}/__mock/{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// Submit, advance, status, result and the output image all work.
async fn normal_flow_works(uri: &str) {
    let id = submit_id(uri, &body(1)).await;
    let (code, _) = control(uri, "POST", "advance", r#"{"seconds": 10}"#).await;
    assert_eq!(code, 200);
    assert_eq!(status_of(uri, &id).await.1["status"], "COMPLETED");
    let (code, result) = result_of(uri, &id).await;
    assert_eq!(code, 200, "{result}");
    let image = get(result["output"].as_str().unwrap()).await;
    assert_eq!(image.status(), 200);
}

#[tokio::test]
async fn hostile_control_values_are_refused_and_the_mock_keeps_working() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    let long = "x".repeat(5000);
    let many_keys = serde_json::to_string(&vec!["k"; 10_001]).unwrap();
    let many_faults =
        serde_json::to_string(&vec![json!({"route": "output", "kind": "not_json"}); 1001]).unwrap();
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("POST", "advance", r#"{"seconds": 1.8e10}"#.into(), 422, "seconds:"),
        ("POST", "advance", r#"{"seconds": -1}"#.into(), 422, "seconds:"),
        ("POST", "advance", r#"{"seconds": "5"}"#.into(), 422, "seconds:"),
        ("POST", "advance", r#"{"seconds": null}"#.into(), 422, "seconds:"),
        ("POST", "advance", "{}".into(), 422, "seconds:"),
        ("POST", "advance", r#"{"seconds": 1e400}"#.into(), 400, "advance:"),
        ("POST", "advance", "{nope".into(), 400, "advance:"),
        (
            "POST",
            "faults",
            r#"{"route":"any","kind":{"status":{"code":429,"retry_after":{"http_date":1000000000000}}}}"#.into(),
            422,
            "faults[0].kind.status.retry_after:",
        ),
        (
            "POST",
            "faults",
            r#"{"route":"any","kind":{"status":{"code":429,"retry_after":{"seconds":-1}}}}"#.into(),
            422,
            "faults:",
        ),
        (
            "POST",
            "faults",
            r#"[{"route":"any","kind":{"latency":1.5e19}},{"route":"any","kind":{"latency":1.5e19}}]"#.into(),
            422,
            "faults[0].kind.latency:",
        ),
        ("POST", "faults", r#"{"route":"any","kind":{"latency":-1}}"#.into(), 422, "faults:"),
        ("POST", "faults", r#"{"route":"any","kind":{"latency":"1"}}"#.into(), 422, "faults:"),
        ("POST", "faults", r#"{"route":"any","kind":{"status":{"code":99}}}"#.into(), 422, "faults[0].kind.status.code:"),
        ("POST", "faults", r#"{"route":"any","kind":{"status":{"code":70000}}}"#.into(), 422, "faults:"),
        ("POST", "faults", r#"{"route":"any","kind":"not_json","times":-1}"#.into(), 422, "faults:"),
        ("POST", "faults", r#"{"route":"nowhere","kind":"not_json"}"#.into(), 422, "faults:"),
        ("POST", "faults", many_faults, 422, "faults: 1001 given"),
        ("PUT", "fail_rules", r#"{"match":{"every_nth":0},"error":"x"}"#.into(), 422, "fail_rules[0].match.every_nth:"),
        ("PUT", "fail_rules", format!(r#"{{"match":"all","error":"{long}"}}"#), 422, "fail_rules[0].error:"),
        ("PUT", "rate_limit", r#"{"per_second":-1,"burst":1}"#.into(), 422, "rate_limit.per_second:"),
        ("PUT", "rate_limit", r#"{"per_second":1e300,"burst":1}"#.into(), 422, "rate_limit.per_second:"),
        ("PUT", "rate_limit", r#"{"per_second":1,"burst":0}"#.into(), 422, "rate_limit.burst:"),
        ("PUT", "rate_limit", r#"{"per_second":1,"burst":-3}"#.into(), 422, "rate_limit:"),
        ("PUT", "keys", r#"[""]"#.into(), 422, "keys[0]:"),
        ("PUT", "keys", r#""sk-a""#.into(), 422, "keys:"),
        ("PUT", "keys", many_keys, 422, "keys: 10001 given"),
    ];
    for (method, path, body, want, prefix) in &cases {
        let (code, v) = control(&uri, method, path, body).await;
        let shown: String = body.chars().take(80).collect();
        assert_eq!(code, *want, "{method} {path} {shown}: {v}");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(prefix),
            "{method} {path} {shown}: {error}"
        );
    }
    // Nothing was taken in: no faults, the clock where it was.
    assert_eq!(server.now(), Duration::ZERO);
    assert_eq!(control(&uri, "GET", "faults", "").await.1, json!([]));
    normal_flow_works(&uri).await;
    // Reset takes the clock's advances back.
    assert_eq!(control(&uri, "POST", "reset", "").await.1["now"], 0.0);
    assert_eq!(server.now(), Duration::ZERO);
}

#[tokio::test]
async fn the_largest_accepted_values_never_panic_a_request() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    // At the bounds: a year-long HTTP-date Retry-After, a 10-year advance
    // (twice), a 10-year retention of the stages.
    let (code, v) = control(
        &uri,
        "POST",
        "faults",
        r#"{"route":"status","kind":{"status":{"code":429,"retry_after":{"http_date":31536000}}},"times":1}"#,
    )
    .await;
    assert_eq!(code, 200, "{v}");
    for _ in 0..2 {
        assert_eq!(
            control(&uri, "POST", "advance", r#"{"seconds": 315360000}"#)
                .await
                .0,
            200
        );
    }
    let r = get(&format!("{uri}/v2/requests/{}/status", uuid())).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    normal_flow_works(&uri).await;
}

fn uuid() -> String {
    "5b9f0e62-8c51-4a64-9a3e-6ad1f2f0c9d4".to_string()
}

#[tokio::test]
async fn an_image_bomb_is_refused_at_submit_naming_the_field() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    let bomb = bomb_png(20_000, 20_000);
    assert!(bomb.len() < 100, "{}", bomb.len());
    let started = Instant::now();
    let mut b = body(1);
    b["person_image"] = json!(png_uri(&bomb));
    let r = post(&uri, "/v2/p-image-try-on", &b).await;
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    let e = e["error"].as_str().unwrap();
    assert!(
        e.starts_with("person_image: the image is 20000x20000 pixels, at most 25000000 pixels"),
        "{e}"
    );
    // Through an upload, as a garment: the same check, on the v1 route too.
    let up: Value = post(
        &uri,
        "/upload-asset",
        &json!({"data_urls": [png_uri(&bomb)]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let mut b = body(2);
    b["garment_images"][1] = up["file_urls"][0].clone();
    let r = post(&uri, "/v1/p-image-try-on", &b).await;
    let (code, e) = error_of(r).await;
    assert_eq!(code, 422);
    assert!(
        e.starts_with("garment_images[1]: the image is 20000x20000"),
        "{e}"
    );
    assert_eq!(server.billed_submits(), 0);
    // Nothing was decoded: this is quick even in a debug build.
    assert!(started.elapsed() < Duration::from_secs(5));
    normal_flow_works(&uri).await;
}

#[tokio::test]
async fn an_output_is_rendered_once() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    let mut b = body(1);
    b["person_image"] = json!(png_data_uri(300, 400, [200, 10, 10]));
    b["preserve_input_size"] = json!(true);
    let id = submit_id(&uri, &b).await;
    server.advance(Duration::from_secs(10));
    let url = result_of(&uri, &id).await.1["output"]
        .as_str()
        .unwrap()
        .to_string();
    let first = get(&url).await.bytes().await.unwrap();
    let again = get(&url).await.bytes().await.unwrap();
    assert_eq!(first, again);
    let img = image::load_from_memory(&first).unwrap();
    assert_eq!((img.width(), img.height()), (300, 400));
}

/// POSTs `body` as it is, declared as `content_type`.
async fn post_as(url: &str, content_type: &str, body: String) -> reqwest::Response {
    client()
        .post(url)
        .header("x-api-key", KEY)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn wire_details_allow_415_and_canonical_ids() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    // 405 names the allowed method (RFC 9110), on the API and the control API.
    let status_path = format!("/v2/requests/{}/status", uuid());
    for (method, path, allow) in [
        (reqwest::Method::GET, "/v2/p-image-try-on", "POST"),
        (reqwest::Method::DELETE, status_path.as_str(), "GET"),
        (reqwest::Method::PUT, "/__mock/faults", "GET, POST, DELETE"),
    ] {
        let r = client()
            .request(method, format!("{uri}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{path}");
        assert_eq!(r.headers()["allow"], allow, "{path}");
    }
    // A body declared as something else than JSON: 415, not billed.
    for path in ["/v2/p-image-try-on", "/v1/p-image-try-on", "/upload-asset"] {
        let r = post_as(&format!("{uri}{path}"), "text/plain", body(1).to_string()).await;
        let (code, e) = error_of(r).await;
        assert_eq!(code, 415, "{path}");
        assert!(e.starts_with("content-type: text/plain"), "{e}");
    }
    // JSON with a charset is JSON.
    let r = post_as(
        &format!("{uri}/v2/p-image-try-on"),
        "application/json; charset=utf-8",
        body(1).to_string(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let id: Value = r.json().await.unwrap();
    let id = id["request_id"].as_str().unwrap().to_string();
    // Only the canonical form of an id names the job.
    let simple = id.replace('-', "");
    for other in [
        format!("urn:uuid:{id}"),
        simple,
        id.to_uppercase(),
        format!("{{{id}}}"),
    ] {
        assert_eq!(status_of(&uri, &other).await.0, 404, "{other}");
        assert_eq!(result_of(&uri, &other).await.0, 404, "{other}");
    }
    assert_eq!(status_of(&uri, &id).await.0, 200);
    // A seed beyond u64: 422 naming the bound the spec states.
    let r = post_as(
        &format!("{uri}/v2/p-image-try-on"),
        "application/json",
        r#"{"person_image":"https://x/p.jpg","garment_images":["https://x/g.jpg"],"seed":18446744073709551616}"#.to_string(),
    )
    .await;
    let (code, e) = error_of(r).await;
    assert_eq!(code, 422);
    assert!(e.contains("from 0 to 18446744073709551615"), "{e}");
    assert_eq!(server.billed_submits(), 1);
}

#[tokio::test]
async fn uploads_are_served_with_a_sniffed_type_and_bounded() {
    let server = MockServer::builder()
        .config(tryon_mock::MockConfig {
            max_uploads: 2,
            ..tryon_mock::MockConfig::default()
        })
        .start()
        .await;
    let uri = server.uri();
    let html = "data:text/html;base64,PGh0bWw+PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==";
    let png = png_data_uri(2, 2, [1, 2, 3]);
    let up: Value = post(
        &uri,
        "/upload-asset",
        &json!({"data_urls": [html, png, png]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let urls: Vec<&str> = up["file_urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    // The oldest (the HTML) was evicted: at most 2 uploads are kept.
    assert_eq!(get(urls[0]).await.status(), 404);
    let r = get(urls[1]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    // An HTML upload kept is served as bytes, never as HTML.
    let up: Value = post(&uri, "/upload-asset", &json!({"data_urls": [html]}))
        .await
        .json()
        .await
        .unwrap();
    let r = get(up["file_urls"][0].as_str().unwrap()).await;
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn urls_never_come_from_the_host_header() {
    let server = MockServer::builder().virtual_time().start().await;
    let r = client()
        .post(format!("{}/v2/p-image-try-on", server.uri()))
        .header("x-api-key", KEY)
        .header("host", "evil.example")
        .json(&body(1))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(
        v["status_url"].as_str().unwrap().starts_with(&server.uri()),
        "{v}"
    );
    assert!(!v.to_string().contains("evil"), "{v}");
    let public = MockServer::builder()
        .config(tryon_mock::MockConfig {
            public_url: Some("https://mock.test/".into()),
            ..tryon_mock::MockConfig::default()
        })
        .start()
        .await;
    let v = submit(&public.uri(), &body(1)).await;
    assert!(
        v["status_url"]
            .as_str()
            .unwrap()
            .starts_with("https://mock.test/v2/requests/"),
        "{v}"
    );
}

#[tokio::test]
async fn the_control_token_guards_the_control_api() {
    let server = MockServer::builder()
        .virtual_time()
        .control_token("s3cret")
        .start()
        .await;
    let uri = server.uri();
    let advance = |token: Option<&str>| {
        let mut r = client()
            .post(format!("{uri}/__mock/advance"))
            .json(&json!({"seconds": 1}));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(advance(None).await.unwrap().status(), 401);
    assert_eq!(advance(Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(server.now(), Duration::ZERO);
    assert_eq!(advance(Some("s3cret")).await.unwrap().status(), 200);
    assert_eq!(server.now(), Duration::from_secs(1));
    // Readiness needs no token.
    assert_eq!(health(&uri).await, 200);
}

/// Reads until the server closes the connection; `None` if it has not
/// within `within` (the guard of a test that would otherwise hang).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|()| seen)
}

/// A raw connection to `server` that has sent `bytes`.
async fn connect_and_send(server: &MockServer, bytes: &[u8]) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(server.address())
        .await
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let server = MockServer::builder()
        .header_timeout(Duration::from_millis(300))
        .start()
        .await;
    // A head that never ends (slowloris).
    let mut slow = connect_and_send(&server, b"GET /__mock/health HTTP/1.1\r\nHost: x\r\n").await;
    let started = Instant::now();
    assert!(
        closed_within(&mut slow, Duration::from_secs(10))
            .await
            .is_some()
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    // A kept-alive connection that goes quiet after one request.
    let mut idle =
        connect_and_send(&server, b"GET /__mock/health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let seen = closed_within(&mut idle, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        seen.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
}

#[tokio::test]
async fn past_the_connection_cap_idle_connections_make_room() {
    let server = MockServer::builder().max_connections(8).start().await;
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(
            tokio::net::TcpStream::connect(server.address())
                .await
                .unwrap(),
        );
    }
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        client()
            .get(format!("{}/__mock/health", server.uri()))
            .send(),
    )
    .await
    .expect("a request past the cap must still be served")
    .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn billing_for_a_key_reads_the_key_percent_decoded() {
    // A key with characters a query string must escape.
    let key = "sk+a&b=c %d";
    let server = MockServer::builder().keys([key]).start().await;
    let r = post_with_key(key, &server.uri(), "/v2/p-image-try-on", &body(1)).await;
    assert_eq!(r.status(), 200);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("key", key)
        .finish();
    let billing: Value = get(&format!("{}/__mock/billing?{query}", server.uri()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(billing["billed_submits_for_key"], 1, "{billing}");
}

/// Sends one raw HTTP/1.1 request on a fresh connection and returns the
/// head of the answer, lower-cased.
async fn raw_head(uri: &str, request: String) -> String {
    let addr = uri.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).to_ascii_lowercase()
}

#[tokio::test]
async fn a_post_refused_before_its_body_is_read_says_the_connection_closes() {
    let server = MockServer::builder().keys(["sk-allowed"]).start().await;
    let body = body(1).to_string();
    let post = |key: &str| {
        format!(
            "POST /v2/p-image-try-on HTTP/1.1\r\nhost: x\r\nx-api-key: {key}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // 401 before the body is read: the client must not reuse the connection.
    let refused = raw_head(&server.uri(), post("sk-other")).await;
    assert!(refused.starts_with("http/1.1 401"), "{refused}");
    assert!(refused.contains("connection: close"), "{refused}");
    // An accepted submit keeps its connection.
    let accepted = raw_head(&server.uri(), post("sk-allowed")).await;
    assert!(accepted.starts_with("http/1.1 200"), "{accepted}");
    assert!(!accepted.contains("connection: close"), "{accepted}");
}

/// A body of about 2 MB: a person image as a data URI of random bytes (the
/// mock refuses the key before it reads any of it).
fn two_megabyte_body() -> Value {
    use base64::Engine as _;
    let noise: Vec<u8> = (0..1_500_000u32)
        .map(|i| u8::try_from(i.wrapping_mul(2_654_435_761) >> 24).unwrap())
        .collect();
    let data = base64::engine::general_purpose::STANDARD.encode(noise);
    json!({
        "person_image": format!("data:image/png;base64,{data}"),
        "garment_images": ["https://example.com/shirt.jpg"],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_with_a_large_body_is_answered_401_every_time() {
    // Answered before the body is read; the mock must read (and drop) the
    // rest before it closes, as nginx's lingering close does, or the kernel
    // resets the connection and the client never reads the 401.
    let server = MockServer::builder().keys(["sk-good"]).start().await;
    let body = two_megabyte_body();
    assert!(body.to_string().len() > 2_000_000);
    let tries = (0..20).map(|_| {
        let (uri, body) = (server.uri(), body.clone());
        tokio::spawn(async move {
            match try_post_with_key("sk-bad", &uri, "/v2/p-image-try-on", &body).await {
                Ok(r) => r.status().as_u16().to_string(),
                Err(e) => format!("error: {e:?}"),
            }
        })
    });
    let mut seen = Vec::new();
    for t in tries.collect::<Vec<_>>() {
        seen.push(t.await.unwrap());
    }
    assert!(seen.iter().all(|s| s == "401"), "{seen:#?}");
    assert_eq!(server.billed_submits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_early_answer_the_rest_of_the_body_is_read_not_reset() {
    // The deterministic form of the test above: a client that has read the
    // 401 (given before the body was read) and goes on sending its body, as
    // HTTP clients do. Closing with the client still sending resets the
    // connection (the client's writes fail with a broken pipe: 8 times in
    // 10 before the fix); the mock now reads and drops the rest first.
    let server = MockServer::builder().keys(["sk-good"]).start().await;
    let addr = server.address();
    let seen = tokio::task::spawn_blocking(move || {
        use std::io::{Read as _, Write as _};
        let body = vec![b'x'; 2_000_000];
        (0..10)
            .map(|_| {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
                let head = format!(
                    "POST /v2/p-image-try-on HTTP/1.1\r\nhost: x\r\nx-api-key: sk-bad\r\n\
                     content-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                s.write_all(head.as_bytes()).unwrap();
                let mut answer = Vec::new();
                let read = s.read_to_end(&mut answer).map_err(|e| e.kind());
                let wrote = s.write_all(&body).map_err(|e| e.kind());
                let status = String::from_utf8_lossy(&answer[..answer.len().min(12)]).into_owned();
                format!("answer {status:?} ({read:?}), rest of the body sent: {wrote:?}")
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let want = "answer \"HTTP/1.1 401\" (Ok(178)), rest of the body sent: Ok(())";
    assert!(seen.iter().all(|s| s == want), "{seen:#?}");
}

/// A listener that answers every request with a head declaring a body of
/// `declared` bytes, then nothing: an upstream whose answer is over the
/// proxy's bound.
async fn huge_answer_upstream(declared: u64) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n{{"
                );
                let _ = s.write_all(head.as_bytes()).await;
                // Hold the connection; the proxy gives up on its own.
                let _ = s.read(&mut buf).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn the_proxy_never_makes_up_an_answer_the_upstream_did_not_give() {
    use tryon_mock::{Fault, FaultRoute, Proxy, ProxyOptions};
    let loopback: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    // 1. The upstream accepts (bills) the submit, then its answer is lost.
    let upstream = MockServer::builder()
        .fault(Fault::drop_after_accept())
        .start()
        .await;
    let proxy = Proxy::start(ProxyOptions::new(upstream.uri()), loopback)
        .await
        .unwrap();
    let r = try_post(&proxy.uri(), "/v2/p-image-try-on", &body(1)).await;
    // Before: a 502 of the proxy's own, which a client reads as "refused"
    // and a batch journals "not sent, rerun to submit": billed twice.
    let e = r.expect_err("no answer: the upstream gave none");
    assert!(!e.is_status() && !e.is_connect(), "{e:?}");
    assert_eq!(upstream.billed_submits(), 1);
    let drift = proxy.drift();
    assert_eq!(drift.len(), 1, "{drift:#?}");
    let d = &drift[0];
    assert_eq!(
        (d.operation.as_str(), d.status, d.pointer.as_str()),
        ("submit_try_on", 0, ""),
        "{d:#?}"
    );
    assert!(
        d.actual.contains("broke after the request was sent"),
        "{d:#?}"
    );
    // The next submit goes through as usual.
    let r = try_post(&proxy.uri(), "/v2/p-image-try-on", &body(1))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // 2. The upstream does not answer within the proxy's timeout.
    let slow = MockServer::builder()
        .fault(Fault::latency(FaultRoute::Submit, Duration::from_secs(30)).times(1))
        .start()
        .await;
    let mut options = ProxyOptions::new(slow.uri());
    options.timeout = Duration::from_millis(300);
    let proxy = Proxy::start(options, loopback).await.unwrap();
    let e = try_post(&proxy.uri(), "/v2/p-image-try-on", &body(1))
        .await
        .expect_err("no answer: the upstream timed out");
    assert!(!e.is_status(), "{e:?}");
    assert!(
        proxy.drift()[0]
            .actual
            .contains("within the proxy's timeout"),
        "{:#?}",
        proxy.drift()
    );

    // 3. The upstream's answer is over the proxy's bound.
    let huge = huge_answer_upstream(tryon_mock::limits::MAX_PROXY_BODY as u64 + 1).await;
    let proxy = Proxy::start(ProxyOptions::new(format!("http://{huge}")), loopback)
        .await
        .unwrap();
    let e = try_post(&proxy.uri(), "/v2/p-image-try-on", &body(1))
        .await
        .expect_err("no answer: the upstream's answer is over the bound");
    assert!(!e.is_status(), "{e:?}");
    let actual = &proxy.drift()[0].actual;
    assert!(
        actual.contains("200 answer: more than 67108864 bytes"),
        "{actual}"
    );

    // 4. An upstream that cannot be reached took nothing: 502, saying so.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    let proxy = Proxy::start(ProxyOptions::new(format!("http://{gone}")), loopback)
        .await
        .unwrap();
    let r = try_post(&proxy.uri(), "/v2/p-image-try-on", &body(1))
        .await
        .unwrap();
    let (code, text) = error_of(r).await;
    assert_eq!(code, 502);
    assert!(text.contains("cannot be reached"), "{text}");
    assert!(proxy.drift().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_large_submit_through_the_recording_proxy_keeps_its_401() {
    // The measuring tool must not change the answer: the upstream refuses
    // before reading the body, and used to reset the proxy's connection,
    // which the proxy turned into a 502 (almost always with --record).
    use tryon_mock::{Proxy, ProxyOptions};
    let upstream = MockServer::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = ProxyOptions::new(upstream.uri());
    options.record = Some(dir.path().join("rec"));
    let proxy = Proxy::start(options, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let body = two_megabyte_body();
    let tries: Vec<_> = (0..20)
        .map(|_| {
            let (url, body) = (format!("{}/v2/p-image-try-on", proxy.uri()), body.clone());
            tokio::spawn(async move {
                match client().post(url).json(&body).send().await {
                    Ok(r) => r.status().as_u16().to_string(),
                    Err(e) => format!("error: {e:?}"),
                }
            })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tries {
        seen.push(t.await.unwrap());
    }
    assert!(seen.iter().all(|s| s == "401"), "{seen:#?}");
    assert!(
        proxy.drift().iter().all(|d| d.status != 0),
        "{:#?}",
        proxy.drift()
    );
}

/// Whether a file name is a temporary one (`NAME.tmp`).
fn is_tmp(name: &str) -> bool {
    std::path::Path::new(name)
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("tmp"))
}

/// Every file under `dir`, relative, sorted.
fn names_under(dir: &std::path::Path) -> Vec<String> {
    files(dir).into_iter().map(|(name, _)| name).collect()
}

/// Submit, then its status three times, through the proxy at `uri`.
async fn some_exchanges(uri: &str) {
    let id = submit_id(uri, &body(1)).await;
    for _ in 0..3 {
        assert_eq!(status_of(uri, &id).await.0, 200);
    }
}

#[tokio::test]
async fn a_recording_that_lost_an_exchange_says_so_and_is_never_replayed() {
    use tryon_mock::{Proxy, ProxyOptions, Replay, ReplayOptions};
    let upstream = MockServer::builder().virtual_time().start().await;
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let mut options = ProxyOptions::new(upstream.uri());
    options.record = Some(rec.clone());
    // Room for the submit's exchange, not for every status after it.
    options.record_limit = 2500;
    let proxy = Proxy::start(options, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    some_exchanges(&proxy.uri()).await;
    // Before: health said only {"status":"ok"}, recording.json nothing, and
    // the replay loaded what was there as if it were the whole exchange.
    let health = control_get(&proxy.uri(), "/__mock/health").await;
    let recording = &health["recording"];
    assert_eq!(recording["complete"], false, "{health}");
    assert!(recording["lost"].as_u64().unwrap() >= 1, "{health}");
    assert!(
        recording["reason"]
            .as_str()
            .unwrap()
            .contains("--record-limit (2500 bytes)"),
        "{health}"
    );
    let e = proxy.finish_recording().unwrap_err();
    assert!(
        e.lost >= 1 && e.to_string().contains("is incomplete"),
        "{e}"
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(rec.join("recording.json")).unwrap()).unwrap();
    assert_eq!(manifest["incomplete"]["lost"], e.lost, "{manifest}");
    let left = names_under(&rec);
    assert!(
        left.iter().all(|n| !is_tmp(n) && !n.starts_with('.')),
        "{left:?}"
    );
    let refused = Replay::start(ReplayOptions::new(&rec), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap_err();
    let text = refused.to_string();
    assert!(
        text.contains("recording.json: the recording is incomplete")
            && text.contains("Record it again"),
        "{text}"
    );
}

#[tokio::test]
async fn an_empty_recording_is_refused_by_replay() {
    use tryon_mock::{Proxy, ProxyOptions, Replay, ReplayOptions};
    let dir = tempfile::tempdir().unwrap();
    let mut options = ProxyOptions::new("http://127.0.0.1:9");
    options.record = Some(dir.path().to_path_buf());
    let proxy = Proxy::start(options, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    proxy.finish_recording().unwrap();
    assert_eq!(proxy.recorded(), Some(0));
    let text = Replay::start(
        ReplayOptions::new(dir.path()),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(text.contains("the recording holds no exchanges"), "{text}");
}

/// A square PNG of noise `side` pixels wide (about `3 * side * side`
/// bytes: noise does not compress), as a data URI.
fn png_of_noise(side: u32) -> String {
    use base64::Engine as _;
    let noise: Vec<u8> = (0..side * side * 3)
        .map(|i| u8::try_from(i.wrapping_mul(2_654_435_761) >> 24).unwrap())
        .collect();
    let img = image::RgbImage::from_raw(side, side, noise).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(out.into_inner())
    )
}

#[test]
fn a_write_that_fails_mid_recording_marks_it_incomplete_and_the_exit_says_so() {
    // A real failing write: the standalone proxy under a file-size limit
    // (RLIMIT_FSIZE, `ulimit -f`, SIGXFSZ ignored) fails with EFBIG on the
    // first file over it: the submit's inline image, stored under images/.
    // Small files (recording.json, the exchanges) still fit, as on a disk
    // that fills up part way.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = rt.block_on(MockServer::builder().virtual_time().start());
    let upstream = mock.uri();
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            r#"trap "" XFSZ; ulimit -f 64; exec "$@""#,
            "sh",
            env!("CARGO_BIN_EXE_tryon-mock"),
            "--port",
            "0",
            "--proxy",
            &upstream,
            "--record",
        ])
        .arg(&rec)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let line = first_line(&mut child);
    let proxy = line.trim().to_string();
    rt.block_on(async {
        // 64 blocks are 32 KiB (or 64 KiB): the 200 KB image cannot be written.
        let mut big = body(1);
        big["person_image"] = Value::from(png_of_noise(260));
        let r = post(&proxy, "/v2/p-image-try-on", &big).await;
        assert_eq!(r.status(), 200, "the proxy keeps serving");
        some_exchanges(&proxy).await;
        let health = control_get(&proxy, "/__mock/health").await;
        assert_eq!(health["recording"]["complete"], false, "{health}");
        assert!(
            health["recording"]["reason"]
                .as_str()
                .unwrap()
                .contains("cannot write"),
            "{health}"
        );
    });
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("the recording is incomplete"), "{stderr}");
    let manifest = std::fs::read_to_string(rec.join("recording.json")).unwrap();
    assert!(manifest.contains("\"incomplete\""), "{manifest}");
    let left = names_under(&rec);
    assert!(left.iter().all(|n| !is_tmp(n)), "{left:?}");
}

#[tokio::test]
async fn a_recording_keeps_no_url_credentials_no_signed_parameters_and_no_encoded_key() {
    use base64::Engine as _;
    use tryon_mock::{Proxy, ProxyOptions, Replay, ReplayOptions};
    let key = "sk-live+rec/0123456789";
    let pct: String = form_urlencoded::byte_serialize(key.as_bytes()).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    let upstream = MockServer::builder().keys([key]).start().await;
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let mut options = ProxyOptions::new(upstream.uri());
    options.record = Some(rec.clone());
    let proxy = Proxy::start(options, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let secrets = [
        "hunter2",
        "AMZSIGSECRET",
        "AKIACREDSECRET",
        "AZURESIG",
        "TOKSECRET",
        key,
        pct.as_str(),
        b64.as_str(),
    ];
    let body = json!({
        "person_image": "https://alice:hunter2@photos.example/p.png",
        "garment_images": [
            "https://b.s3.amazonaws.com/g.png?X-Amz-Credential=AKIACREDSECRET&X-Amz-Signature=AMZSIGSECRET",
            "https://a.blob.core.windows.net/c/g.png?sv=1&sig=AZURESIG",
        ],
        "prompt": format!("percent {pct} base64 {b64}"),
    });
    let r = post_with_key(key, &proxy.uri(), "/v2/p-image-try-on", &body).await;
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    // A query with a token, and the key percent-encoded in another.
    let r = client()
        .get(format!(
            "{}/v2/requests/{id}/status?token=TOKSECRET&k={pct}",
            proxy.uri()
        ))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    proxy.finish_recording().unwrap();
    drop(proxy);
    for (name, content) in files(&rec) {
        let text = String::from_utf8_lossy(&content);
        for s in secrets {
            assert!(!text.contains(s), "{name} holds {s:?}:\n{text}");
        }
    }
    // Replay still matches the same request: both sides redact alike.
    let replay = Replay::start(ReplayOptions::new(&rec), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let r = post_with_key(key, &replay.uri(), "/v2/p-image-try-on", &body).await;
    let replayed: Value = r.json().await.unwrap();
    assert_eq!(replayed["request_id"], id.as_str(), "{replayed}");
}
