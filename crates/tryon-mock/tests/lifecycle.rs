//! Lifecycle, virtual time, retention, workers, request log, billing and
//! expectations.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tryon_mock::{MockServer, Stages, Timing};

#[tokio::test]
async fn job_runs_queued_processing_completed_then_expires() {
    let real = Instant::now();
    let server = MockServer::builder()
        .virtual_time()
        .stages(Duration::from_secs(1), Duration::from_secs(2))
        .start()
        .await;
    let uri = server.uri();
    let submitted = submit(&uri, &body(1)).await;
    assert_eq!(submitted["status"], "QUEUED");
    let id = submitted["request_id"].as_str().unwrap().to_string();
    assert_eq!(
        submitted["status_url"],
        format!("{uri}/v2/requests/{id}/status")
    );
    assert_eq!(submitted["response_url"], format!("{uri}/v2/requests/{id}"));
    assert_eq!(submitted["poll_url"], format!("{uri}/v1/requests/{id}"));
    uuid::Uuid::parse_str(&id).unwrap();

    let (code, s) = status_of(&uri, &id).await;
    assert_eq!((code, s["status"].as_str()), (200, Some("QUEUED")));
    assert_eq!(s["metrics"], json!({}));
    let (code, r) = result_of(&uri, &id).await;
    assert_eq!((code, r["status"].as_str()), (200, Some("QUEUED")));
    assert!(r.get("output").is_none());
    assert_eq!(r.get("error"), Some(&serde_json::Value::Null), "{r}");

    server.advance(Duration::from_secs(1));
    assert_eq!(status_of(&uri, &id).await.1["status"], "PROCESSING");

    server.advance(Duration::from_secs(2));
    let (code, s) = status_of(&uri, &id).await;
    assert_eq!((code, s["status"].as_str()), (200, Some("COMPLETED")));
    assert_eq!(s["metrics"]["inference_time"], 2.0);
    let (code, r) = result_of(&uri, &id).await;
    assert_eq!(code, 200);
    // As the service answers: `error` is present, and null.
    assert_eq!(r.get("error"), Some(&serde_json::Value::Null), "{r}");
    let output = r["output"].as_str().unwrap().to_string();
    assert!(output.starts_with(&uri), "{output}");
    let image = get(&output).await;
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()["content-type"], "image/png");
    let decoded = image::load_from_memory(&image.bytes().await.unwrap()).unwrap();
    assert_eq!(
        (decoded.width(), decoded.height()),
        tryon_mock::MockConfig::DEFAULT_OUTPUT_SIZE
    );

    server.advance(Duration::from_hours(1));
    assert_eq!(status_of(&uri, &id).await.0, 404);
    assert_eq!(result_of(&uri, &id).await.0, 404);
    // The output outlives the status (the output retention, 7 days).
    assert_eq!(get(&output).await.status(), 200);
    assert_eq!(server.job_count(), 0);
    server.advance(Duration::from_hours(7 * 24));
    assert_eq!(get(&output).await.status(), 404);
    // Virtual time: an hour passed in (much) less than a second. Not a timed
    // assertion of the mock's speed, just the "done when".
    assert!(real.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let server = MockServer::start().await;
    let uri = server.uri();
    for id in ["5b9f0e62-8c51-4a64-9a3e-6ad1f2f0c9d4", "not-a-uuid"] {
        let (code, body) = status_of(&uri, id).await;
        assert_eq!(code, 404);
        assert!(body["error"].is_string());
        assert_eq!(result_of(&uri, id).await.0, 404);
    }
}

#[tokio::test]
async fn default_server_completes_after_its_short_stages() {
    // Real time with 20 ms + 80 ms stages; advancing instead of sleeping.
    let server = MockServer::start().await;
    let uri = server.uri();
    let id = submit_id(&uri, &body(1)).await;
    server.advance(Duration::from_millis(100));
    assert_eq!(status_of(&uri, &id).await.1["status"], "COMPLETED");
}

#[tokio::test]
async fn retention_is_configurable() {
    let server = MockServer::builder()
        .virtual_time()
        .retention(Duration::from_secs(10))
        .start()
        .await;
    let uri = server.uri();
    let id = submit_id(&uri, &body(1)).await;
    server.advance(Duration::from_secs(9));
    assert_eq!(status_of(&uri, &id).await.0, 200);
    server.advance(Duration::from_secs(1));
    assert_eq!(status_of(&uri, &id).await.0, 404);
}

#[tokio::test]
async fn bounded_workers_make_jobs_queue() {
    let server = MockServer::builder()
        .virtual_time()
        .stages(Duration::ZERO, Duration::from_secs(2))
        .workers(1)
        .start()
        .await;
    let uri = server.uri();
    let a = submit_id(&uri, &body(1)).await;
    let b = submit_id(&uri, &body(1)).await;
    assert_eq!(status_of(&uri, &a).await.1["status"], "PROCESSING");
    assert_eq!(status_of(&uri, &b).await.1["status"], "QUEUED");
    server.advance(Duration::from_secs(2));
    assert_eq!(status_of(&uri, &a).await.1["status"], "COMPLETED");
    assert_eq!(status_of(&uri, &b).await.1["status"], "PROCESSING");
    server.advance(Duration::from_secs(2));
    assert_eq!(status_of(&uri, &b).await.1["status"], "COMPLETED");
}

#[tokio::test]
async fn per_request_timing_rule() {
    let server = MockServer::builder()
        .virtual_time()
        .timing(Timing::per_request(|input| {
            let n = u64::try_from(input.garment_images.len()).unwrap();
            Stages::new(Duration::ZERO, Duration::from_secs(10 * n))
        }))
        .start()
        .await;
    let uri = server.uri();
    let one = submit_id(&uri, &body(1)).await;
    let three = submit_id(&uri, &body(3)).await;
    server.advance(Duration::from_secs(10));
    assert_eq!(status_of(&uri, &one).await.1["status"], "COMPLETED");
    assert_eq!(status_of(&uri, &three).await.1["status"], "PROCESSING");
    server.advance(Duration::from_secs(20));
    assert_eq!(
        status_of(&uri, &three).await.1["metrics"]["inference_time"],
        30.0
    );
}

#[tokio::test]
async fn realistic_profile_is_about_two_seconds_per_garment() {
    let server = MockServer::builder()
        .virtual_time()
        .realistic()
        .start()
        .await;
    let uri = server.uri();
    let standard = submit_id(&uri, &body(11)).await;
    let mut turbo_body = body(11);
    turbo_body["turbo"] = json!(true);
    let turbo = submit_id(&uri, &turbo_body).await;
    server.advance(Duration::from_mins(1));
    let t = status_of(&uri, &standard).await.1["metrics"]["inference_time"]
        .as_f64()
        .unwrap();
    assert!((19.8..=24.2).contains(&t), "{t}");
    let t = status_of(&uri, &turbo).await.1["metrics"]["inference_time"]
        .as_f64()
        .unwrap();
    assert!(t <= 4.4, "{t}");
}

#[tokio::test]
async fn request_log_and_billing_per_key() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    submit(&uri, &body(1)).await;
    let other = post_with_key("sk-other", &uri, "/v2/p-image-try-on", &body(2)).await;
    assert_eq!(other.status(), 200);
    // A refused submit is not billed.
    let bad = post(&uri, "/v2/p-image-try-on", &json!({})).await;
    assert_eq!(bad.status(), 422);
    assert_eq!(server.billed_submits(), 2);
    assert_eq!(server.billed_submits_for(KEY), 1);
    assert_eq!(server.billed_submits_for("sk-other"), 1);
    assert_eq!(server.billed_submits_for("sk-nobody"), 0);

    let log = server.request_log();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].method, "POST");
    assert_eq!(log[0].path, "/v2/p-image-try-on");
    assert_eq!(log[0].key.as_deref(), Some(KEY));
    assert_eq!(log[2].status, Some(422));
    let debug = format!("{log:?}");
    assert!(!debug.contains(KEY), "key leaked in Debug: {debug}");
}

#[tokio::test]
async fn expectations_pass_when_met() {
    let server = MockServer::builder().expect_submits(1).start().await;
    submit(&server.uri(), &body(1)).await;
}

#[tokio::test]
#[should_panic(expected = "expected 2 billed submit(s), got 1")]
async fn expectations_fail_on_drop() {
    let server = MockServer::start().await;
    server.expect_submits(2);
    submit(&server.uri(), &body(1)).await;
}

#[tokio::test]
async fn reset_forgets_jobs_and_billing() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    let id = submit_id(&uri, &body(1)).await;
    server.reset();
    assert_eq!(server.billed_submits(), 0);
    assert!(server.request_log().is_empty());
    assert_eq!(status_of(&uri, &id).await.0, 404);
}

#[tokio::test]
async fn clock_handle_drives_a_sleeper() {
    // What a client's test does: a sleeper whose `sleep(d)` advances the
    // mock clock, so waiting for a 60 s job takes no real time.
    let server = MockServer::builder()
        .virtual_time()
        .stages(Duration::from_secs(10), Duration::from_secs(50))
        .start()
        .await;
    let clock = server.clock();
    let uri = server.uri();
    let id = submit_id(&uri, &body(1)).await;
    let mut polls = 0;
    loop {
        let (_, s) = status_of(&uri, &id).await;
        if s["status"] == "COMPLETED" {
            break;
        }
        polls += 1;
        clock.advance(Duration::from_secs(1)); // the "sleep"
    }
    assert_eq!(polls, 60);
    assert_eq!(server.now(), Duration::from_mins(1));
}

/// The result URL before completion: the contract's assumption by default,
/// or each departure a test can ask for (builder, control API, TOML); the
/// status URL and the completed result are the same in every mode, and the
/// spec check (on in these tests) takes the departures as asked for.
#[tokio::test]
async fn the_result_url_before_completion_answers_as_configured() {
    use tryon_mock::{MockConfig, ResultBeforeCompletion as Early};
    let server = MockServer::builder()
        .virtual_time()
        .stages(Duration::from_secs(1), Duration::from_secs(2))
        .result_before_completion(Early::NotFound)
        .start()
        .await;
    let uri = server.uri();
    let modes = [
        ("status", 200, Some("QUEUED")),
        ("not_found", 404, None),
        ("accepted", 202, None),
        ("no_status", 200, None),
    ];
    for (name, code, status) in modes {
        let r = client()
            .put(format!("{uri}/__mock/result_before_completion"))
            .json(&json!(name))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        let id = submit_id(&uri, &body(1)).await;
        let (got, r) = result_of(&uri, &id).await;
        assert_eq!((got, r["status"].as_str()), (code, status), "{name}: {r}");
        assert!(r.get("output").is_none(), "{name}: {r}");
        assert_eq!(status_of(&uri, &id).await.1["status"], "QUEUED", "{name}");
        server.advance(Duration::from_secs(3));
        let (got, r) = result_of(&uri, &id).await;
        assert_eq!(
            (got, r["status"].as_str()),
            (200, Some("COMPLETED")),
            "{name}"
        );
        assert!(r["output"].as_str().is_some(), "{name}");
    }
    // A value it does not know is refused, naming the field.
    let r = client()
        .put(format!("{uri}/__mock/result_before_completion"))
        .json(&json!("teapot"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 422);
    // The same setting from a config file.
    let config: MockConfig = toml::from_str("result_before_completion = \"accepted\"").unwrap();
    assert_eq!(config.result_before_completion, Early::Accepted);
    assert_eq!(
        MockConfig::default().result_before_completion,
        Early::Status
    );
}
