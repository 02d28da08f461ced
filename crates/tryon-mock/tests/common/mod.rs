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

pub async fn post(uri: &str, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{uri}{path}"))
        .header("x-api-key", KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

pub async fn get(url: &str) -> reqwest::Response {
    client()
        .get(url)
        .header("x-api-key", KEY)
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

/// A PNG data URI of a `w`x`h` image of one colour.
pub fn png_data_uri(w: u32, h: u32, rgb: [u8; 3]) -> String {
    use base64::Engine as _;
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(out.into_inner())
    )
}
