//! Validation, auth, limits, credits, failure rules and injected faults.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tryon_mock::{
    Credits, FailRule, Fault, FaultRoute, JobMatch, MockServer, RateLimitRule, RetryAfter,
};

#[tokio::test]
async fn validation_errors_name_the_field() {
    let server = MockServer::start().await;
    let uri = server.uri();
    let (code, e) = error_of(post(&uri, "/v2/p-image-try-on", &body(12)).await).await;
    assert_eq!(
        (code, e.as_str()),
        (422, "garment_images: 12 given, at most 11 allowed")
    );
    let mut b = body(1);
    b["output_quality"] = json!(101);
    let (code, e) = error_of(post(&uri, "/v2/p-image-try-on", &b).await).await;
    assert_eq!(
        (code, e.as_str()),
        (422, "output_quality: 101 given, at most 100 allowed")
    );
    let mut b = body(1);
    b["output_format"] = json!("gif");
    let (code, e) = error_of(post(&uri, "/v1/p-image-try-on", &b).await).await;
    assert_eq!(code, 422);
    assert!(e.starts_with("output_format:"), "{e}");
    let (code, e) =
        error_of(post(&uri, "/v2/p-image-try-on", &json!({"garment_images": []})).await).await;
    assert_eq!(code, 422);
    assert!(e.starts_with("person_image:"), "{e}");
    let mut b = body(1);
    b["seed"] = json!("12345");
    assert_eq!(
        error_of(post(&uri, "/v2/p-image-try-on", &b).await).await.0,
        422
    );

    let malformed = post_raw(&uri, "/v2/p-image-try-on", "{not json").await;
    assert_eq!(error_of(malformed).await.0, 400);
    assert_eq!(server.billed_submits(), 0);
}

#[tokio::test]
async fn oversized_wrong_method_unknown_path() {
    let server = MockServer::builder().max_body_bytes(1024).start().await;
    let uri = server.uri();
    let big = post_raw(&uri, "/v2/p-image-try-on", vec![b' '; 4096]).await;
    assert_eq!(error_of(big).await.0, 413);
    let wrong = client()
        .get(format!("{uri}/v2/p-image-try-on"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(wrong).await.0, 405);
    let wrong = client()
        .delete(format!(
            "{uri}/v2/requests/5b9f0e62-8c51-4a64-9a3e-6ad1f2f0c9d4/status"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(wrong).await.0, 405);
    assert_eq!(
        error_of(get(&format!("{uri}/v3/nothing")).await).await.0,
        404
    );
}

#[tokio::test]
async fn missing_and_unknown_keys_are_401() {
    let server = MockServer::builder().keys(["sk-good"]).start().await;
    let uri = server.uri();
    let none = client()
        .post(format!("{uri}/v2/p-image-try-on"))
        .json(&body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(none).await.0, 401);
    assert_eq!(
        error_of(post(&uri, "/v2/p-image-try-on", &body(1)).await)
            .await
            .0,
        401
    );
    let good = post_with_key("sk-good", &uri, "/v2/p-image-try-on", &body(1)).await;
    assert_eq!(good.status(), 200);
    server.set_keys(None);
    assert_eq!(submit_status(&uri, &body(1)).await, 200);
}

#[tokio::test]
async fn failure_rules_serve_422_with_the_failed_body() {
    let server = MockServer::builder()
        .virtual_time()
        .fail(FailRule::new(JobMatch::Seed(13), "unlucky seed"))
        .fail(FailRule::content_block(JobMatch::PromptContains(
            "forbidden".into(),
        )))
        .start()
        .await;
    let uri = server.uri();
    let mut b = body(1);
    b["seed"] = json!(13);
    let seeded = submit_id(&uri, &b).await;
    let mut b = body(1);
    b["prompt"] = json!("a forbidden shirt");
    let blocked = submit_id(&uri, &b).await;
    let fine = submit_id(&uri, &body(1)).await;
    server.advance(Duration::from_secs(1));
    for (id, text) in [
        (&seeded, "unlucky seed"),
        (&blocked, FailRule::CONTENT_BLOCKED),
    ] {
        for (code, v) in [status_of(&uri, id).await, result_of(&uri, id).await] {
            assert_eq!(code, 422);
            assert_eq!(v["status"], "FAILED");
            assert_eq!(v["error"], text);
            assert_eq!(v["request_id"], id.as_str());
            assert!(v["metrics"]["inference_time"].is_number());
        }
    }
    assert_eq!(status_of(&uri, &fine).await.1["status"], "COMPLETED");
    // Failed jobs were accepted, so they are billed.
    assert_eq!(server.billed_submits(), 3);
}

#[tokio::test]
async fn every_nth_job_fails_and_rules_change_at_runtime() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    server.push_fail_rule(FailRule::new(JobMatch::EveryNth(2), "every second job"));
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(submit_id(&uri, &body(1)).await);
    }
    server.advance(Duration::from_secs(1));
    let mut codes = Vec::new();
    for id in &ids {
        codes.push(status_of(&uri, id).await.0);
    }
    assert_eq!(codes, [200, 422, 200, 422]);
    server.clear_fail_rules();
    let id = submit_id(&uri, &body(1)).await;
    server.advance(Duration::from_secs(1));
    assert_eq!(status_of(&uri, &id).await.0, 200);
}

#[tokio::test]
async fn token_bucket_per_key_with_retry_after() {
    let server = MockServer::builder()
        .virtual_time()
        .rate_limit(RateLimitRule::new(0.5, 2))
        .start()
        .await;
    let uri = server.uri();
    assert_eq!(submit_status(&uri, &body(1)).await, 200);
    assert_eq!(submit_status(&uri, &body(1)).await, 200);
    let limited = post(&uri, "/v2/p-image-try-on", &body(1)).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    // Another key has its own bucket.
    let other = post_with_key("sk-other", &uri, "/v2/p-image-try-on", &body(1)).await;
    assert_eq!(other.status(), 200);
    server.advance(Duration::from_secs(2));
    assert_eq!(submit_status(&uri, &body(1)).await, 200);
    assert_eq!(server.billed_submits_for(KEY), 3);
}

#[tokio::test]
async fn credits_run_out_with_406() {
    let server = MockServer::builder()
        .credits(Credits::with_balance(0.05).cost_per_garment(0.02))
        .start()
        .await;
    let uri = server.uri();
    assert_eq!(submit_status(&uri, &body(2)).await, 200);
    let (code, e) = error_of(post(&uri, "/v2/p-image-try-on", &body(1)).await).await;
    assert_eq!((code, e.as_str()), (406, "Insufficient credits"));
    assert_eq!(server.billed_submits(), 1);
    assert!((server.balance(KEY).unwrap() - 0.01).abs() < 1e-9);
    server.set_balance(KEY, 1.0);
    assert_eq!(submit_status(&uri, &body(1)).await, 200);
}

#[tokio::test]
async fn server_errors_for_the_next_n_calls() {
    let server = MockServer::builder()
        .virtual_time()
        .fault(
            Fault::server_error(FaultRoute::Status, 503)
                .times(2)
                .retry_after(RetryAfter::Seconds(7)),
        )
        .start()
        .await;
    let uri = server.uri();
    let id = submit_id(&uri, &body(1)).await;
    for _ in 0..2 {
        let r = get(&format!("{uri}/v2/requests/{id}/status")).await;
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "7");
    }
    assert_eq!(status_of(&uri, &id).await.0, 200);
    for code in [500, 502, 504] {
        server.push_fault(Fault::server_error(FaultRoute::Submit, code));
        assert_eq!(submit_status(&uri, &body(1)).await, code);
    }
    assert_eq!(server.billed_submits(), 1);
}

#[tokio::test]
async fn rate_limited_fault_with_http_date_or_without_header() {
    let server = MockServer::start().await;
    let uri = server.uri();
    server
        .push_fault(Fault::rate_limited(FaultRoute::Submit).retry_after(RetryAfter::HttpDate(30)));
    let r = post(&uri, "/v2/p-image-try-on", &body(1)).await;
    assert_eq!(r.status(), 429);
    let date = r.headers()["retry-after"].to_str().unwrap().to_string();
    assert!(httpdate::parse_http_date(&date).is_ok(), "{date}");
    server.push_fault(Fault::rate_limited(FaultRoute::Any));
    let r = post(&uri, "/v2/p-image-try-on", &body(1)).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none());
    assert_eq!(submit_status(&uri, &body(1)).await, 200);
}

#[tokio::test]
async fn latency_is_added() {
    let server = MockServer::start().await;
    // A sleep never ends early, so the call cannot take less than the
    // latency: without the fault this takes a few milliseconds and fails.
    let latency = Duration::from_millis(250);
    server.push_fault(Fault::latency(FaultRoute::Submit, latency).times(1));
    let started = std::time::Instant::now();
    let r = post(&server.uri(), "/v2/p-image-try-on", &body(1)).await;
    let took = started.elapsed();
    assert_eq!(r.status(), 200);
    assert!(took >= latency, "took {took:?}, latency {latency:?}");
}

#[tokio::test]
async fn dropped_connection_before_accept_is_not_billed() {
    let server = MockServer::builder()
        .fault(Fault::drop_before_accept(FaultRoute::Submit))
        .start()
        .await;
    let r = try_post(&server.uri(), "/v2/p-image-try-on", &body(1)).await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(server.billed_submits(), 0);
    assert_eq!(server.job_count(), 0);
    assert_eq!(server.request_log()[0].status, None);
}

#[tokio::test]
async fn dropped_connection_after_accept_is_billed() {
    let server = MockServer::builder()
        .fault(Fault::drop_after_accept())
        .start()
        .await;
    // A refused submit does not consume the fault.
    assert_eq!(submit_status(&server.uri(), &body(12)).await, 422);
    let r = try_post(&server.uri(), "/v2/p-image-try-on", &body(1)).await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(server.billed_submits(), 1);
    assert_eq!(server.job_count(), 1);
    assert_eq!(submit_status(&server.uri(), &body(1)).await, 200);
}

#[tokio::test]
async fn bodies_that_are_not_json_or_truncated() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    let id = submit_id(&uri, &body(1)).await;
    server.push_fault(Fault::not_json(FaultRoute::Status));
    let r = get(&format!("{uri}/v2/requests/{id}/status")).await;
    assert_eq!(r.headers()["content-type"], "text/html");
    assert!(serde_json::from_slice::<serde_json::Value>(&r.bytes().await.unwrap()).is_err());
    server.push_fault(Fault::truncated_body(FaultRoute::Status).times(2));
    for _ in 0..2 {
        let r = get(&format!("{uri}/v2/requests/{id}/status")).await;
        assert_eq!(r.status(), 200);
        let bytes = r.bytes().await.unwrap();
        assert!(!bytes.is_empty());
        assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_err());
    }
    assert_eq!(status_of(&uri, &id).await.0, 200);
}

#[tokio::test]
async fn faults_from_config_toml() {
    let config: tryon_mock::MockConfig = toml::from_str(
        r#"
        virtual_time = true
        output_size = [120, 160]
        [[faults]]
        route = "submit"
        kind = { status = { code = 502 } }
        times = 1
        "#,
    )
    .unwrap();
    assert_eq!(config.output_size, (120, 160));
    let server = MockServer::builder().config(config).start().await;
    assert_eq!(submit_status(&server.uri(), &body(1)).await, 502);
    assert_eq!(submit_status(&server.uri(), &body(1)).await, 200);
}

#[tokio::test]
async fn control_api_drives_the_mock() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    let http = client();
    let id = submit_id(&uri, &body(1)).await;
    let now: serde_json::Value = control_post(&uri, "/__mock/advance", &json!({"seconds": 5}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["now"], 5.0);
    assert_eq!(status_of(&uri, &id).await.1["status"], "COMPLETED");
    let r = control_post(
        &uri,
        "/__mock/faults",
        &json!({"route": "status", "kind": {"status": {"code": 503, "retry_after": {"seconds": 1}}}, "times": 1}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(status_of(&uri, &id).await.0, 503);
    let log = control_get(&uri, "/__mock/request_log").await;
    assert_eq!(log.as_array().unwrap().len(), 3);
    // A fingerprint of the key, never a piece of it.
    let logged = &server.request_log()[0];
    assert_eq!(logged.key.as_deref(), Some(KEY));
    assert_eq!(log[0]["key_fingerprint"], logged.key_fingerprint().unwrap());
    assert!(!log.to_string().contains("sk-t"), "{log}");
    // The request log's first name answers the same.
    assert_eq!(control_get(&uri, "/__mock/journal").await, log);
    let billing = control_get(&uri, &format!("/__mock/billing?key={KEY}")).await;
    assert_eq!(billing["billed_submits_for_key"], 1);
    assert_eq!(
        http.post(format!("{uri}/__mock/reset"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(status_of(&uri, &id).await.0, 404);
    assert_eq!(server.billed_submits(), 0);
}

/// A `drop_after_accept` fault with `times: 2` drops exactly two answers,
/// however many submits arrive at once (each call takes one before it is
/// answered; a call that does not succeed gives it back).
#[tokio::test]
async fn drop_after_accept_drops_exactly_its_count_under_concurrency() {
    let server = MockServer::builder()
        .fault(Fault::drop_after_accept().times(2))
        .start()
        .await;
    let uri = server.uri();
    let calls = (0..8).map(|_| {
        let uri = uri.clone();
        tokio::spawn(async move {
            try_post(&uri, "/v2/p-image-try-on", &body(1))
                .await
                .is_err()
        })
    });
    let mut dropped = 0;
    for call in calls {
        dropped += usize::from(call.await.unwrap());
    }
    assert_eq!(dropped, 2);
    assert_eq!(server.billed_submits(), 8);

    // A call that does not succeed gives its fault back: the next that
    // does is dropped instead.
    server.push_fault(Fault::drop_after_accept().times(1));
    let refused = try_post(&uri, "/v2/p-image-try-on", &json!({"person_image": "x"})).await;
    assert_eq!(refused.unwrap().status(), 422);
    assert!(
        try_post(&uri, "/v2/p-image-try-on", &body(1))
            .await
            .is_err()
    );
    assert!(try_post(&uri, "/v2/p-image-try-on", &body(1)).await.is_ok());
}
