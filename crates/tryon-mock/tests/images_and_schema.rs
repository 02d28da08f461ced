//! Real output images, uploads, the v1 endpoint, and a check of every JSON
//! body the mock sent in these scenarios against the spec's schemas.
#![allow(
    clippy::unwrap_used,
    clippy::too_many_lines,
    clippy::doc_markdown,
    clippy::single_match_else,
    clippy::collapsible_if,
    clippy::cast_possible_truncation
)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tryon_mock::{FailRule, Fault, FaultRoute, JobMatch, MockServer};

async fn completed_output(server: &MockServer, body: &Value) -> (String, Vec<u8>) {
    let uri = server.uri();
    let id = submit_id(&uri, body).await;
    server.advance(Duration::from_secs(10));
    let (code, r) = result_of(&uri, &id).await;
    assert_eq!(code, 200, "{r}");
    let resp = get(r["output"].as_str().unwrap()).await;
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    (ct, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn outputs_are_real_deterministic_images() {
    let server = MockServer::builder().virtual_time().start().await;
    let person = png_data_uri(40, 50, [200, 10, 10]);
    let garment = png_data_uri(8, 8, [10, 200, 10]);
    let body = json!({
        "person_image": person,
        "garment_images": [garment],
        "seed": 5,
        "preserve_input_size": true,
    });
    let (ct, a) = completed_output(&server, &body).await;
    assert_eq!(ct, "image/png");
    let img = image::load_from_memory(&a).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (40, 50));
    // The person shows at the edge, the garment over the torso.
    assert_eq!(img.get_pixel(39, 49).0, [200, 10, 10]);
    assert_eq!(img.get_pixel(20, 25).0, [10, 200, 10]);
    let (_, b) = completed_output(&server, &body).await;
    assert_eq!(a, b, "same inputs and seed, same bytes");
    let mut other_seed = body.clone();
    other_seed["seed"] = json!(6);
    assert_ne!(completed_output(&server, &other_seed).await.1, a);

    for (format, ct) in [("jpg", "image/jpeg"), ("webp", "image/webp")] {
        let mut b = body.clone();
        b["output_format"] = json!(format);
        b["output_quality"] = json!(80);
        let (got, bytes) = completed_output(&server, &b).await;
        assert_eq!(got, ct);
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!((img.width(), img.height()), (40, 50));
    }
}

#[tokio::test]
async fn uploads_are_served_and_usable_as_inputs() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    let person = png_data_uri(30, 20, [1, 2, 3]);
    let r = post(&uri, "/upload-asset", &json!({"data_urls": [person]})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let url = v["file_urls"][0].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{uri}/assets/")), "{url}");
    let stored = get(&url).await;
    assert_eq!(stored.headers()["content-type"], "image/png");
    assert_eq!(
        image::load_from_memory(&stored.bytes().await.unwrap())
            .unwrap()
            .width(),
        30
    );
    let body = json!({"person_image": url, "garment_images": ["https://example.com/g.jpg"], "preserve_input_size": true});
    let (_, bytes) = completed_output(&server, &body).await;
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!((img.width(), img.height()), (30, 20));
    let bad = post(
        &uri,
        "/upload-asset",
        &json!({"data_urls": ["https://not-a-data-uri"]}),
    )
    .await;
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn v1_returns_the_image_bytes() {
    let server = MockServer::builder()
        .virtual_time()
        .fail(FailRule::new(JobMatch::Seed(99), "nope"))
        .start()
        .await;
    let uri = server.uri();
    let mut b = body(2);
    b["output_format"] = json!("jpg");
    let r = post(&uri, "/v1/p-image-try-on", &b).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
    b["seed"] = json!(99);
    let r = post(&uri, "/v1/p-image-try-on", &b).await;
    assert_eq!(r.status(), 422);
    assert_eq!(server.billed_submits(), 1);
}

// ---- schema check ------------------------------------------------------
//
// Every server in this crate's tests checks each JSON body it sends (the
// `spec-check` feature, on for the crate's own tests) and fails its drop on
// a violation. This scenario makes sure every status code the mock can send
// is among them, and keeps the spec's known gaps visible.

#[tokio::test]
async fn every_body_sent_matches_the_spec() {
    let server = MockServer::builder()
        .virtual_time()
        .max_body_bytes(64 * 1024)
        .fail(FailRule::content_block(JobMatch::Seed(66)))
        .credits(tryon_mock::Credits::with_balance(0.02))
        .rate_limit(tryon_mock::RateLimitRule::new(100.0, 1000))
        .start()
        .await;
    let uri = server.uri();
    // Successes in every state.
    let id = submit_id(&uri, &body(1)).await;
    status_of(&uri, &id).await;
    result_of(&uri, &id).await;
    server.advance(Duration::from_millis(30));
    status_of(&uri, &id).await;
    result_of(&uri, &id).await;
    server.advance(Duration::from_secs(1));
    status_of(&uri, &id).await;
    result_of(&uri, &id).await;
    get(&format!("{uri}/v1/requests/{id}")).await;
    // A failed job.
    let mut b = body(1);
    b["seed"] = json!(66);
    server.set_balance(KEY, 10.0);
    let failed = submit_id(&uri, &b).await;
    server.advance(Duration::from_secs(1));
    status_of(&uri, &failed).await;
    result_of(&uri, &failed).await;
    post(&uri, "/v1/p-image-try-on", &b).await;
    // Errors: 400, 401, 404, 405, 406, 413, 422, 429, 5xx.
    post_raw(&uri, "/v2/p-image-try-on", "{").await;
    client()
        .post(format!("{uri}/v2/p-image-try-on"))
        .json(&body(1))
        .send()
        .await
        .unwrap();
    status_of(&uri, "5b9f0e62-8c51-4a64-9a3e-6ad1f2f0c9d4").await;
    client()
        .get(format!("{uri}/v2/p-image-try-on"))
        .send()
        .await
        .unwrap();
    server.set_balance(KEY, 0.0);
    post(&uri, "/v2/p-image-try-on", &body(1)).await;
    post_raw(&uri, "/upload-asset", vec![b' '; 100_000]).await;
    post(&uri, "/v2/p-image-try-on", &body(12)).await;
    client()
        .post(format!("{uri}/v2/p-image-try-on"))
        .header("x-api-key", KEY)
        .header("content-type", "text/plain")
        .body(body(1).to_string())
        .send()
        .await
        .unwrap();
    post(&uri, "/upload-asset", &json!({"data_urls": []})).await;
    post(
        &uri,
        "/upload-asset",
        &json!({"data_urls": [png_data_uri(2, 2, [0, 0, 0])]}),
    )
    .await;
    server.set_rate_limit(Some(tryon_mock::RateLimitRule::new(0.0, 1)));
    get(&format!("{uri}/v2/requests/{id}/status")).await;
    get(&format!("{uri}/v2/requests/{id}/status")).await;
    server.set_rate_limit(None);
    for code in [500, 502, 504] {
        server.push_fault(Fault::server_error(FaultRoute::Result, code));
        result_of(&uri, &id).await;
    }
    server.push_fault(Fault::server_error(FaultRoute::Status, 503));
    status_of(&uri, &id).await;

    let report = server.spec_report();
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    let expected_codes: BTreeSet<u16> = [
        200, 400, 401, 404, 405, 406, 413, 415, 422, 429, 500, 502, 503, 504,
    ]
    .into();
    assert_eq!(report.statuses, expected_codes);
    assert!(report.checked >= 25, "{}", report.checked);
    // A method the spec does not declare on a path: 405, its body checked
    // as an ErrorBody by rule.
    assert_eq!(
        report.exceptions.into_iter().collect::<Vec<_>>(),
        ["GET /v2/p-image-try-on 405"],
    );
    // Faults the test injected: only their bodies are held to the spec.
    assert!(
        report.injected.iter().any(|e| e.ends_with("/status 503")),
        "{:?}",
        report.injected
    );
    // The spec documents every other status the mock sends on its own.
    assert!(tryon_mock::spec_check::EXCEPTIONS.is_empty());
}

#[tokio::test]
async fn bodies_off_the_spec_are_caught_and_injected_statuses_are_the_tests_choice() {
    // The check itself, on a body the mock would never send: it is caught
    // and reported the way a drifted body would be.
    let errs = tryon_mock::spec_check::check_response(
        "POST",
        "/v2/p-image-try-on",
        200,
        br#"{"request_id":"x","status":"QUEUED"}"#,
    )
    .unwrap_err();
    assert!(
        errs.iter().any(|e| e.contains("missing required")),
        "{errs:?}"
    );
    // An undocumented status the mock made up on a spec route is a
    // violation...
    let errs = tryon_mock::spec_check::check_response(
        "POST",
        "/v2/p-image-try-on",
        503,
        br#"{"error":"Service unavailable"}"#,
    )
    .unwrap_err();
    assert!(errs[0].contains("does not document 503"), "{errs:?}");
    // ...while one a test injects is its choice: only the body is checked,
    // so fault tests run with the check on, across the whole workspace.
    let server = MockServer::builder().virtual_time().start().await;
    server.push_fault(Fault::server_error(FaultRoute::Submit, 503));
    post(&server.uri(), "/v2/p-image-try-on", &body(1)).await;
    let report = server.spec_report();
    assert!(report.violations.is_empty(), "{report:?}");
    assert_eq!(
        report.injected.into_iter().collect::<Vec<_>>(),
        ["POST /v2/p-image-try-on 503"]
    );
}
