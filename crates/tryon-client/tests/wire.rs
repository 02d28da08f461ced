//! Exact wire checks with httpmock: the submit body, headers, uploads,
//! batches with a shared limiter, configuration errors. (The key's absence
//! from logs is checked in `secrets.rs`, a binary of its own.)
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::StreamExt as _;
use httpmock::prelude::*;
use tryon_client::test_util::VirtualClock;
use tryon_client::{Client, Format, Image, TryOnRequest};

#[tokio::test]
async fn submit_body_and_headers_are_exact() {
    // Every request field of the spec, each set to a non-default value.
    let body = serde_json::json!({
        "person_image": "https://example.com/person.jpg",
        "garment_images": ["https://example.com/a.jpg", "https://example.com/b.jpg"],
        "prompt": "the red one",
        "seed": 7,
        "turbo": true,
        "output_format": "webp",
        "output_quality": 80,
        "preserve_input_size": true,
        "reference_pose": "https://example.com/pose.jpg"
    });
    // The spec's fields, as the generated type's schemars schema lists them:
    // a field added to the spec fails here until the builder carries it.
    let spec = serde_json::to_value(schemars::schema_for!(
        tryon_client::tryon_api::types::TryOnInput
    ))
    .unwrap();
    let spec_fields: Vec<&String> = spec["properties"].as_object().unwrap().keys().collect();
    let sent_fields: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        spec_fields, sent_fields,
        "every request field of the spec is set here"
    );
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/v2/p-image-try-on")
                .header("x-api-key", KEY)
                .header("content-type", "application/json")
                .json_body(body);
            then.status(200).json_body(serde_json::json!({
                "request_id": ID, "status": "QUEUED",
                "status_url": "https://x/status", "response_url": "https://x/r"
            }));
        })
        .await;
    let req = TryOnRequest::builder()
        .person(Image::url("https://example.com/person.jpg"))
        .garments([
            Image::url("https://example.com/a.jpg"),
            Image::url("https://example.com/b.jpg"),
        ])
        .prompt("the red one")
        .seed(7)
        .turbo(true)
        .output_format(Format::Webp)
        .output_quality(80)
        .preserve_input_size(true)
        .reference_pose(Image::url("https://example.com/pose.jpg"))
        .build()
        .unwrap();
    let clock = VirtualClock::new();
    let job = client(&server.base_url(), &clock)
        .submit(&req)
        .await
        .unwrap();
    assert_eq!(job.request_id(), ID);
    assert_eq!(job.expected_duration(), Some(Duration::from_secs(2)));
    m.assert_async().await;
}

#[tokio::test]
async fn uploads_go_to_the_storage_host_and_urls_are_sent() {
    let storage = MockServer::start_async().await;
    let upload = storage
        .mock_async(|when, then| {
            when.method(POST)
                .path("/upload-asset")
                .header("x-api-key", KEY)
                .body_includes("data:image/png;base64,");
            then.status(200).json_body(serde_json::json!({
                "file_urls": ["https://storage.example/p.png"], "message": "ok"
            }));
        })
        .await;
    let api = MockServer::start_async().await;
    let submit = api
        .mock_async(|when, then| {
            when.method(POST).path("/v2/p-image-try-on").json_body_includes(
                r#"{"person_image": "https://storage.example/p.png", "garment_images": ["https://example.com/g0.jpg"]}"#,
            );
            then.status(200).json_body(serde_json::json!({
                "request_id": ID, "status": "QUEUED",
                "status_url": "https://x/status", "response_url": "https://x/r"
            }));
        })
        .await;
    let clock = VirtualClock::new();
    let client = builder(&api.base_url(), &clock)
        .upload_base_url(storage.base_url())
        .upload_local_images(true)
        .build()
        .unwrap();
    let req = TryOnRequest::builder()
        .person(Image::bytes(PNG.to_vec(), "image/png"))
        .garment(Image::url("https://example.com/g0.jpg"))
        .build()
        .unwrap();
    client.submit(&req).await.unwrap();
    upload.assert_async().await;
    submit.assert_async().await;
}

#[tokio::test]
async fn run_many_bounds_concurrency_and_slows_everyone_on_429() {
    let in_flight = Arc::new(Mutex::new((0usize, 0usize))); // (now, max)
    let seen = in_flight.clone();
    let api = serve(move |r, n| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/v2/p-image-try-on") if n == 1 => Reply::JsonWith(
            429,
            serde_json::json!({"error": "Too many requests"}),
            vec![("retry-after", "5".into())],
        ),
        ("POST", _) => {
            let mut g = seen.lock().unwrap();
            g.0 += 1;
            g.1 = g.1.max(g.0);
            submitted("https://elsewhere.example")
        }
        // The wait polls the result URL: done, with the output.
        ("GET", p) if p.starts_with("/v2/requests/") => {
            let mut g = seen.lock().unwrap();
            g.0 = g.0.saturating_sub(1);
            result("https://cdn.example/out.png")
        }
        _ => Reply::Json(404, serde_json::json!({"error": "nope"})),
    })
    .await;
    let clock = VirtualClock::new();
    let client = client(&api.url, &clock);
    let reqs: Vec<TryOnRequest> = (0..6).map(|_| request(1)).collect();
    let mut got: Vec<usize> = client
        .run_many(reqs, 2)
        .map(|(i, r)| {
            r.unwrap();
            i
        })
        .collect()
        .await;
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(
        api.count("POST", "/v2/p-image-try-on"),
        7,
        "6 jobs + one 429"
    );
    assert!(in_flight.lock().unwrap().1 <= 2, "at most 2 jobs in flight");
    // The 429's Retry-After held the batch for 5 s of virtual time.
    assert!(tryon_client::Clock::now(&clock) >= Duration::from_secs(5));
}

#[test]
fn config_errors() {
    let err = Client::builder()
        .api_key(KEY)
        .base_url("http://api.segmind.com")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("https is required"), "{err}");
    let err = Client::builder().build().unwrap_err();
    assert!(err.to_string().contains("api_key"), "{err}");
    let err = Client::builder().api_key("bad\nkey").build().unwrap_err();
    assert!(!err.to_string().contains("bad"), "{err}");
}
