//! Submit, poll, wait, result and download against scripted servers, in
//! virtual time.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt as _;
use httpmock::prelude::*;
use tryon_client::test_util::VirtualClock;
use tryon_client::{Clock as _, Error, Status};

const STATUS: &str = "/v2/requests/5b9f0e62-8c51-4a64-9a3e-6ad1f2f0c9d4/status";
const RESULT: &str = "/v2/requests/5b9f0e62-8c51-4a64-9a3e-6ad1f2f0c9d4";
const SUBMIT: &str = "/v2/p-image-try-on";

/// The output host, on another port: it must never see the key.
async fn output_host() -> (&'static MockServer, httpmock::Mock<'static>) {
    let server = MockServer::start_async().await;
    // Leak so the mock handle can outlive this function in tests.
    let server: &'static MockServer = Box::leak(Box::new(server));
    let with_key = server
        .mock_async(|when, then| {
            when.header_exists("x-api-key");
            then.status(500);
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/out.png");
            then.status(200)
                .header("content-type", "image/png")
                .body(PNG);
        })
        .await;
    (server, with_key)
}

#[tokio::test]
async fn run_polls_downloads_and_keeps_the_key_home() {
    let (foreign, with_key) = output_host().await;
    let out_url = foreign.url("/out.png");
    let foreign_base = foreign.base_url();
    // The result URL answers the current status before completion, as the
    // contract assumes, then the result.
    let api = serve(move |r, n| match (r.method.as_str(), r.path.as_str()) {
        ("POST", SUBMIT) => submitted(&foreign_base),
        ("GET", RESULT) if n < 1 => status("PROCESSING"),
        ("GET", RESULT) => result(&out_url),
        _ => Reply::Json(404, serde_json::json!({"error": "nope"})),
    })
    .await;
    let clock = VirtualClock::new();
    let client = client(&api.url, &clock);
    let out = client.run(&request(3)).await.unwrap();
    assert_eq!(out.request_id(), ID);
    assert_eq!(out.inference_time(), Some(Duration::from_secs_f64(2.31)));
    let dir = std::env::temp_dir().join(format!("tryon-client-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("out.png");
    assert_eq!(out.save(&path).await.unwrap(), PNG.len() as u64);
    assert_eq!(std::fs::read(&path).unwrap(), PNG);

    // Every API call carried the key; the output host never saw it, and the
    // absolute URLs the server returned (on the foreign host) were ignored.
    for r in api.requests() {
        assert_eq!(r.header("x-api-key"), Some(KEY), "{}", r.path);
        assert!(r.header("user-agent").unwrap().starts_with("tryon-client/"));
    }
    with_key.assert_calls_async(0).await;
    // Two polls of the result URL, the second with the output: no status
    // call, no separate result read.
    assert_eq!(api.count("GET", RESULT), 2);
    assert_eq!(api.count("GET", STATUS), 0);
    // Model-aware: 3 garments ≈ 6 s; the first poll waited most of it.
    assert!(clock.now() >= Duration::from_secs(4), "{:?}", clock.now());
}

#[tokio::test]
async fn failed_job_422_and_200_bodies() {
    for failed_as_200 in [false, true] {
        let api = serve(move |r, _| match (r.method.as_str(), r.path.as_str()) {
            ("POST", SUBMIT) => submitted("https://elsewhere.example"),
            ("GET", STATUS) if failed_as_200 => Reply::Json(
                200,
                serde_json::json!({"status": "FAILED", "error": "Content blocked", "request_id": ID}),
            ),
            ("GET", STATUS) => Reply::Json(
                422,
                serde_json::json!({"status": "FAILED", "error": "Content blocked", "request_id": ID, "metrics": {"inference_time": 1.4}}),
            ),
            _ => Reply::Json(404, serde_json::json!({"error": "nope"})),
        })
        .await;
        let clock = VirtualClock::new();
        let err = client(&api.url, &clock).run(&request(1)).await.unwrap_err();
        match &err {
            Error::Failed { request_id, detail } => {
                assert_eq!(request_id, ID);
                assert_eq!(detail, "Content blocked");
            }
            other => panic!("{other:?}"),
        }
        assert!(!err.is_retryable());
        // This service's result URL knows only finished jobs (a 404
        // otherwise): its 404 was not taken for expiry but checked once
        // with the status URL, whose body said FAILED.
        assert_eq!(api.count("GET", RESULT), 1);
        assert_eq!(api.count("GET", STATUS), 1);
    }
}

#[tokio::test]
async fn deadline_is_never_overslept_and_times_out_with_the_id() {
    let api = serve(|r, _| match (r.method.as_str(), r.path.as_str()) {
        ("POST", SUBMIT) => submitted("https://elsewhere.example"),
        _ => status("PROCESSING"),
    })
    .await;
    let clock = VirtualClock::new();
    let client = client(&api.url, &clock);
    let job = client.submit(&request(11)).await.unwrap();
    let start = clock.now();
    let err = job.wait_with(Duration::from_secs(7)).await.unwrap_err();
    match err {
        Error::Timeout {
            request_id,
            elapsed,
        } => {
            assert_eq!(request_id, ID);
            assert_eq!(elapsed, Duration::from_secs(7));
        }
        other => panic!("{other:?}"),
    }
    // 11 garments ≈ 22 s expected, deadline 7 s: one poll (of the result
    // URL), at the deadline.
    assert_eq!(clock.now().saturating_sub(start), Duration::from_secs(7));
    assert_eq!(api.count("GET", RESULT), 1);
}

#[tokio::test]
async fn reattach_by_id_and_events_stream() {
    let api = serve(|r, n| match (r.method.as_str(), r.path.as_str()) {
        ("GET", RESULT) if n == 0 => status("QUEUED"),
        ("GET", RESULT) if n < 3 => status("PROCESSING"),
        ("GET", RESULT) => result("https://cdn.example/out.png"),
        _ => Reply::Json(404, serde_json::json!({"error": "nope"})),
    })
    .await;
    let clock = VirtualClock::new();
    let client = client(&api.url, &clock);
    let job = client.job(ID);
    let events: Vec<Status> = job.events().map(Result::unwrap).collect().await;
    assert_eq!(
        events,
        vec![Status::Queued, Status::Processing, Status::Completed]
    );
    let out = client.job(ID).result().await.unwrap();
    assert_eq!(out.url().as_str(), "https://cdn.example/out.png");
}

#[tokio::test]
async fn result_before_completion_is_not_ready() {
    let api = serve(|_, _| status("PROCESSING")).await;
    let clock = VirtualClock::new();
    let err = client(&api.url, &clock).job(ID).result().await.unwrap_err();
    assert!(matches!(err, Error::NotReady { .. }), "{err:?}");
}

/// The one home of the HTTP-date `Retry-After` scenario: exact, because
/// the virtual clock's wall time is known (the fault matrix runs the same
/// against the mock, outcome only).
#[tokio::test]
async fn retry_after_as_http_date_is_honoured() {
    let clock = VirtualClock::new();
    let when =
        httpdate::fmt_http_date(tryon_client::Clock::system_time(&clock) + Duration::from_secs(9));
    let api = serve(move |_, n| {
        if n == 0 {
            Reply::JsonWith(
                503,
                serde_json::json!({"error": "busy"}),
                vec![("retry-after", when.clone())],
            )
        } else {
            status("QUEUED")
        }
    })
    .await;
    let s = client(&api.url, &clock).job(ID).status().await.unwrap();
    assert_eq!(s, Status::Queued);
    assert_eq!(clock.now(), Duration::from_secs(9));
}

#[tokio::test]
async fn retry_after_past_the_deadline_is_not_slept() {
    let api = serve(|_, _| too_many("slow down", 60)).await;
    let clock = VirtualClock::new();
    let err = client(&api.url, &clock)
        .job(ID)
        .wait_with(Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(clock.now() <= Duration::from_secs(10));
}

#[tokio::test]
async fn server_errors_then_success_on_reads() {
    let api = serve(|_, n| match n {
        0 => Reply::Json(
            502,
            serde_json::json!({"error": "Service temporarily unavailable"}),
        ),
        1 => Reply::Raw(503, "text/html", b"<html>busy</html>".to_vec()),
        2 => Reply::Json(500, serde_json::json!({"error": "Internal server error"})),
        3 => Reply::Drop,
        4 => Reply::Json(504, serde_json::json!({"error": "Request timed out"})),
        _ => status("PROCESSING"),
    })
    .await;
    let clock = VirtualClock::new();
    let s = client(&api.url, &clock).job(ID).status().await.unwrap();
    assert_eq!(s, Status::Processing);
    assert_eq!(api.count("GET", STATUS), 6);
}

#[tokio::test]
async fn retries_give_up_with_the_last_error() {
    let api = serve(|_, _| Reply::Json(502, serde_json::json!({"error": "down"}))).await;
    let clock = VirtualClock::new();
    let err = client(&api.url, &clock).job(ID).status().await.unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert!(err.is_retryable());
    assert_eq!(err.request_id(), Some(ID));
    assert_eq!(api.count("GET", STATUS), 6, "default policy: 6 attempts");
}

#[tokio::test]
async fn dropped_submit_is_ambiguous_and_never_resubmitted() {
    let api = serve(|_, _| Reply::Drop).await;
    let clock = VirtualClock::new();
    let err = client(&api.url, &clock)
        .submit(&request(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AmbiguousSubmit { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(api.count("POST", SUBMIT), 1, "exactly one submit");
}

#[tokio::test]
async fn submit_retries_only_when_provably_not_taken() {
    // 429 and 503: not taken, retried.
    let api = serve(|r, n| match (r.method.as_str(), n) {
        ("POST", 0) => Reply::JsonWith(
            429,
            serde_json::json!({"error": "Too many requests"}),
            vec![("retry-after", "1".into())],
        ),
        ("POST", 1) => Reply::Json(503, serde_json::json!({"error": "busy"})),
        ("POST", _) => submitted("https://elsewhere.example"),
        _ => status("QUEUED"),
    })
    .await;
    let clock = VirtualClock::new();
    let job = client(&api.url, &clock).submit(&request(1)).await.unwrap();
    assert_eq!(job.request_id(), ID);
    assert_eq!(api.count("POST", SUBMIT), 3);

    // 500, 502, 504: not retried. The service's own 500 and 502 (its JSON
    // error) are its refusal; a 504 (a gateway gave up waiting) may have
    // been taken: ambiguous (docs/CONTRACT.md, "A 5xx answer to a submit").
    for code in [500u16, 502, 504] {
        let api = serve(move |_, _| Reply::Json(code, serde_json::json!({"error": "x"}))).await;
        let err = client(&api.url, &clock)
            .submit(&request(1))
            .await
            .unwrap_err();
        if code == 504 {
            assert!(matches!(err, Error::AmbiguousSubmit { .. }), "{err:?}");
        } else {
            assert_eq!(err.status(), Some(code));
        }
        assert_eq!(api.count("POST", SUBMIT), 1);
    }

    // Connection refused: never reached the server, retried, then a
    // transport error (not ambiguous).
    let url = refused_url().await;
    let err = client(&url, &clock).submit(&request(1)).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn auth_and_credit_errors_say_what_to_do() {
    for (code, needle) in [
        (401u16, "SEGMIND_API_KEY"),
        (403, "permission"),
        (406, "out of credits"),
    ] {
        let api = serve(move |_, _| Reply::Json(code, serde_json::json!({"error": "no"}))).await;
        let clock = VirtualClock::new();
        let err = client(&api.url, &clock)
            .submit(&request(1))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(code));
        assert!(err.to_string().contains(needle), "{err}");
        assert!(!err.is_retryable());
        assert_eq!(api.count("POST", SUBMIT), 1);
    }
}

#[tokio::test]
async fn other_errors_keep_status_body_and_id() {
    let api =
        serve(|_, _| Reply::Json(405, serde_json::json!({"error": "Method Not Allowed"}))).await;
    let clock = VirtualClock::new();
    let err = client(&api.url, &clock).job(ID).status().await.unwrap_err();
    match err {
        Error::Api {
            status,
            message,
            body,
            request_id,
        } => {
            assert_eq!(status, 405);
            assert_eq!(message, "Method Not Allowed");
            assert!(body.contains("Method Not Allowed"));
            assert_eq!(request_id.as_deref(), Some(ID));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_200_submit_without_required_fields_keeps_a_billed_id() {
    let api = serve(|_, _| Reply::Json(200, serde_json::json!({"request_id": ID}))).await;
    let clock = VirtualClock::new();
    let job = client(&api.url, &clock).submit(&request(1)).await.unwrap();
    assert_eq!(job.request_id(), ID);

    let api = serve(|_, _| Reply::Json(200, serde_json::json!({"ok": true}))).await;
    let err = client(&api.url, &clock)
        .submit(&request(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err:?}");
    assert_eq!(api.count("POST", SUBMIT), 1);
}

#[tokio::test]
async fn run_sync_returns_the_image_bytes() {
    let api = serve(|r, _| match r.path.as_str() {
        "/v1/p-image-try-on" => Reply::Raw(200, "image/png", PNG.to_vec()),
        _ => Reply::Json(404, serde_json::json!({"error": "nope"})),
    })
    .await;
    let clock = VirtualClock::new();
    let bytes = client(&api.url, &clock)
        .run_sync(&request(2))
        .await
        .unwrap();
    assert_eq!(&bytes[..], PNG);
    let sent: serde_json::Value = serde_json::from_str(&api.requests()[0].body).unwrap();
    assert_eq!(sent["garment_images"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn download_checks_size_and_type_and_never_sends_the_key() {
    let host = MockServer::start_async().await;
    for (path, content_type, body) in [
        ("/big.png", "image/png", vec![0x89u8; 4096]),
        ("/page.html", "text/html", b"<html>".to_vec()),
        ("/fake.png", "image/png", b"not really a png".to_vec()),
    ] {
        host.mock_async(|when, then| {
            when.path(path);
            then.status(200)
                .header("content-type", content_type)
                .body(body);
        })
        .await;
    }
    let keyed = host
        .mock_async(|when, then| {
            when.header_exists("x-api-key");
            then.status(500);
        })
        .await;
    let clock = VirtualClock::new();
    for (path, needle) in [
        ("/big.png", "1000"),
        ("/page.html", "text/html"),
        ("/fake.png", "not a PNG"),
    ] {
        let out_url = host.url(path);
        let api = serve(move |r, _| match r.path.as_str() {
            RESULT => result(&out_url),
            _ => status("COMPLETED"),
        })
        .await;
        let client = builder(&api.url, &clock)
            .max_download_bytes(1000)
            .build()
            .unwrap();
        let out = client.job(ID).result().await.unwrap();
        let err = out.download().await.unwrap_err();
        assert!(matches!(err, Error::Download { .. }), "{err:?}");
        assert!(err.to_string().contains(needle), "{err}");
    }
    keyed.assert_calls_async(0).await;
}

#[tokio::test]
async fn redirects_to_another_origin_are_not_followed_with_the_key() {
    let foreign = MockServer::start_async().await;
    let caught = foreign
        .mock_async(|when, then| {
            when.any_request();
            then.status(200)
                .json_body(serde_json::json!({"status": "COMPLETED"}));
        })
        .await;
    let target = foreign.url("/steal");
    let api = serve(move |_, _| {
        Reply::JsonWith(
            302,
            serde_json::json!({}),
            vec![("location", target.clone())],
        )
    })
    .await;
    let clock = VirtualClock::new();
    let err = client(&api.url, &clock).job(ID).status().await.unwrap_err();
    assert_eq!(err.status(), Some(302));
    caught.assert_calls_async(0).await;
}

/// Downloads go through the same executor as API calls: a `Retry-After`
/// longer than the policy allows ends them at once (the rule `call` always
/// had; downloads used to retry sooner on a backoff), and their retries
/// draw on the client's one retry budget.
#[tokio::test]
async fn downloads_follow_the_one_retry_rule_and_budget() {
    let long_wait = serve(|_, _| too_many("come back in ten minutes", 600)).await;
    let down = serve(|_, _| Reply::Json(503, serde_json::json!({"error": "busy"}))).await;
    for (host, budget, attempts) in [(&long_wait, (500, 5), 1), (&down, (10, 5), 3)] {
        let out_url = format!("{}/out.png", host.url);
        let api = serve(move |_, _| result(&out_url)).await;
        let clock = VirtualClock::new();
        let client = builder(&api.url, &clock)
            .retry_policy(tryon_client::RetryPolicy::default().with_budget(budget.0, budget.1))
            .build()
            .unwrap();
        let out = client.job(ID).result().await.unwrap();
        let err = out.download().await.unwrap_err();
        assert!(matches!(err, Error::Download { .. }), "{err:?}");
        assert_eq!(host.count("GET", "/out.png"), attempts, "{err}");
        if attempts == 1 {
            assert_eq!(err.status(), Some(429));
            assert_eq!(clock.now(), Duration::ZERO, "no wait was slept");
        }
    }
}
