//! Helpers shared by the integration tests.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::missing_panics_doc
)]

use serde_json::{Value, json};

pub const KEY: &str = "sk-test-key";

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

pub fn body(garments: usize) -> Value {
    json!({
        "person_image": "https://example.com/person.jpg",
        "garment_images": vec!["https://example.com/shirt.jpg"; garments],
    })
}

/// A POST to `uri` + `path` carrying the API key `key`.
fn keyed_post(key: &str, uri: &str, path: &str) -> reqwest::RequestBuilder {
    client()
        .post(format!("{uri}{path}"))
        .header("x-api-key", key)
}

/// POSTs `body` to `uri` + `path` with the API key `key`; a dropped
/// connection is an `Err`.
pub async fn try_post_with_key(
    key: &str,
    uri: &str,
    path: &str,
    body: &Value,
) -> reqwest::Result<reqwest::Response> {
    keyed_post(key, uri, path).json(body).send().await
}

/// [`try_post_with_key`] with the test key.
pub async fn try_post(uri: &str, path: &str, body: &Value) -> reqwest::Result<reqwest::Response> {
    try_post_with_key(KEY, uri, path, body).await
}

/// POSTs `body` to `uri` + `path` with the API key `key`.
pub async fn post_with_key(key: &str, uri: &str, path: &str, body: &Value) -> reqwest::Response {
    try_post_with_key(key, uri, path, body).await.unwrap()
}

pub async fn post(uri: &str, path: &str, body: &Value) -> reqwest::Response {
    post_with_key(KEY, uri, path, body).await
}

pub async fn get(url: &str) -> reqwest::Response {
    client()
        .get(url)
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
}

/// GETs `url` without an API key.
pub async fn get_without_key(url: &str) -> reqwest::Response {
    client().get(url).send().await.unwrap()
}

/// The status code of `GET /__mock/health` (no key) on the mock at `url`.
pub async fn health(url: &str) -> u16 {
    get_without_key(&format!("{url}/__mock/health"))
        .await
        .status()
        .as_u16()
}

/// POSTs the raw `body` (no content type) to `uri` + `path` with the test
/// key.
pub async fn post_raw(uri: &str, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    keyed_post(KEY, uri, path).body(body).send().await.unwrap()
}

/// GETs the control API's `path` (no key) and returns its JSON.
pub async fn control_get(uri: &str, path: &str) -> Value {
    get_without_key(&format!("{uri}{path}"))
        .await
        .json()
        .await
        .unwrap()
}

/// POSTs `body` to the control API's `path` (no key).
pub async fn control_post(uri: &str, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{uri}{path}"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Submits and returns the submit response's JSON.
pub async fn submit(uri: &str, body: &Value) -> Value {
    let r = post(uri, "/v2/p-image-try-on", body).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Submits and returns the new job's `request_id`.
pub async fn submit_id(uri: &str, body: &Value) -> String {
    submit(uri, body).await["request_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Submits and returns only the answer's status code.
pub async fn submit_status(uri: &str, body: &Value) -> u16 {
    post(uri, "/v2/p-image-try-on", body)
        .await
        .status()
        .as_u16()
}

/// The status code and the `error` text of an error answer.
pub async fn error_of(r: reqwest::Response) -> (u16, String) {
    let code = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    (code, v["error"].as_str().unwrap().to_string())
}

pub async fn status_of(uri: &str, id: &str) -> (u16, Value) {
    let r = get(&format!("{uri}/v2/requests/{id}/status")).await;
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

pub async fn result_of(uri: &str, id: &str) -> (u16, Value) {
    let r = get(&format!("{uri}/v2/requests/{id}")).await;
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// A PNG of a `w`x`h` image of one colour.
pub fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A PNG data URI of a `w`x`h` image of one colour.
pub fn png_data_uri(w: u32, h: u32, rgb: [u8; 3]) -> String {
    png_uri(&png(w, h, rgb))
}

/// Appends a PNG chunk of `kind` holding `data`, with its length and CRC.
pub fn chunk(out: &mut Vec<u8>, kind: [u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
    let start = out.len();
    out.extend_from_slice(&kind);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// An image bomb: a valid PNG header declaring a `w`x`h` grayscale image,
/// with a tiny (incomplete) data stream. A few dozen bytes.
pub fn bomb_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grayscale
    chunk(&mut out, *b"IHDR", &ihdr);
    // zlib of one zero byte: the first row's filter byte.
    chunk(
        &mut out,
        *b"IDAT",
        &[0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01],
    );
    chunk(&mut out, *b"IEND", &[]);
    out
}

/// `bytes` as a `data:image/png;base64,…` URI.
pub fn png_uri(bytes: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The first line a spawned server printed on its (piped) stdout: its
/// readiness line.
pub fn first_line(child: &mut std::process::Child) -> String {
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    line
}

/// Every file under `dir` (a recording), relative path and content, sorted.
pub fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((name, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}
