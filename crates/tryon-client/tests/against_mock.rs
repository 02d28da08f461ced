//! Every path of the client against the real `tryon-mock`, in the mock's
//! VIRTUAL time: the client sleeps by advancing the mock's clock
//! (a `VirtualClock` following it), so a 22 s job or a one-hour expiry takes no real time and
//! nothing here sleeps or asserts on wall-clock time.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use futures::StreamExt as _;
use tryon_client::poll::ModelAwarePolling;
use tryon_client::{Client, ClientBuilder, Error, Format, Image, Status, TryOnRequest};
use tryon_mock::{
    Credits, FailRule, Fault, FaultRoute, JobMatch, MockConfig, MockServer, RateLimitRule,
    RequestLogEntry, RetryAfter,
};

mod common;
use common::png::{png, png_size};
use common::request;

const KEY: &str = "sk-test-SECRET-0123456789";

fn builder(server: &MockServer) -> ClientBuilder {
    Client::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .clock(common::following(server))
        .poll_policy(ModelAwarePolling::default().without_jitter())
}

fn client(server: &MockServer) -> Client {
    builder(server).build().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A request whose person photo is a real `w`×`h` PNG sent inline, with
/// `preserve_input_size`, so the output must be a `w`×`h` PNG too.
fn photo_request(w: u32, h: u32) -> TryOnRequest {
    TryOnRequest::builder()
        .person(Image::bytes(png(w, h), "image/png"))
        .garment(Image::url("https://example.com/shirt.jpg"))
        .preserve_input_size(true)
        .seed(7)
        .build()
        .unwrap()
}

fn server_virtual() -> tryon_mock::MockServerBuilder {
    MockServer::builder().virtual_time()
}

/// A virtual-time mock whose jobs queue for `queued` and process for
/// `processing`, expecting one billed submit, and a client of it.
async fn one_job_server(queued: Duration, processing: Duration) -> (MockServer, Client) {
    let server = server_virtual()
        .stages(queued, processing)
        .expect_submits(1)
        .start()
        .await;
    let client = client(&server);
    (server, client)
}

/// Follows `job`'s status changes to the end and asserts they are QUEUED,
/// PROCESSING, COMPLETED.
async fn assert_full_lifecycle(job: &tryon_client::Job) {
    let events: Vec<Status> = job.events().map(Result::unwrap).collect().await;
    assert_eq!(
        events,
        vec![Status::Queued, Status::Processing, Status::Completed]
    );
}

/// Runs one request to its end and asserts its output is the mock's
/// placeholder image.
async fn run_to_placeholder(client: &Client) -> tryon_client::Output {
    let out = client.run(&request(1)).await.unwrap();
    assert_eq!(
        png_size(&out.download().await.unwrap()),
        MockConfig::DEFAULT_OUTPUT_SIZE
    );
    out
}

/// A virtual-time mock with `fault` that expects `submits` billed
/// submits, and the error of one submit against it.
async fn failed_submit(fault: Fault, submits: u64) -> (MockServer, Error) {
    let server = server_virtual()
        .fault(fault)
        .expect_submits(submits)
        .start()
        .await;
    let err = client(&server).submit(&request(1)).await.unwrap_err();
    (server, err)
}

/// Asserts that the client sent exactly one submit (never resubmitted).
fn assert_one_submit(server: &MockServer) {
    assert_eq!(
        on_path(&server.request_log(), "/v2/p-image-try-on").len(),
        1
    );
}

/// Journal entries on one path.
fn on_path<'a>(journal: &'a [RequestLogEntry], path: &str) -> Vec<&'a RequestLogEntry> {
    journal.iter().filter(|e| e.path == path).collect()
}

fn status_path(id: &str) -> String {
    format!("/v2/requests/{id}/status")
}

fn result_path(id: &str) -> String {
    format!("/v2/requests/{id}")
}

// ---------------------------------------------------------------------------
// Completion, failure, expiry, deadlines, re-attach.

#[tokio::test]
async fn completes_through_queued_processing_completed_and_saves_a_real_image() {
    let (server, client) = one_job_server(secs(2), secs(2)).await;
    let req = photo_request(40, 30);
    let job = client.submit(&req).await.unwrap();
    assert_full_lifecycle(&job).await;
    // Detected at or after completion (4 s), and not long after.
    assert!(
        server.now() >= secs(4) && server.now() <= secs(6),
        "{:?}",
        server.now()
    );

    let out = job.result().await.unwrap();
    assert_eq!(out.request_id(), job.request_id());
    assert_eq!(out.inference_time(), Some(secs(2)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.png");
    let written = out.save(&path).await.unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(written, bytes.len() as u64);
    assert_eq!(png_size(&bytes), (40, 30), "output at the person's size");

    // Every API call carried the key; the output download did not.
    let journal = server.request_log();
    let id = job.request_id();
    for e in &journal {
        if e.path.starts_with("/outputs/") {
            assert_eq!(e.key, None, "download carried a key");
            assert_eq!(e.status, Some(200));
        } else {
            assert_eq!(e.key.as_deref(), Some(KEY), "{}", e.path);
        }
    }
    assert_eq!(on_path(&journal, &format!("/outputs/{id}.png")).len(), 1);
    assert_eq!(server.billed_submits_for(KEY), 1);
}

/// Issue 3's "done when", from outside the mock crate: a job runs through
/// QUEUED, PROCESSING, COMPLETED, the client fetches a real image, and
/// moving past the retention gives 404 / `Error::Expired`; all in virtual
/// time.
#[tokio::test]
async fn issue3_done_when_lifecycle_real_image_then_expiry() {
    let (server, client) = one_job_server(secs(1), secs(2)).await;
    let job = client.submit(&request(1)).await.unwrap();
    assert_full_lifecycle(&job).await;
    let bytes = job.result().await.unwrap().download().await.unwrap();
    assert_eq!(png_size(&bytes), MockConfig::DEFAULT_OUTPUT_SIZE);

    server.advance(secs(3600));
    let err = job.status().await.unwrap_err();
    assert!(
        matches!(&err, Error::Expired { request_id } if request_id == job.request_id()),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(404));
    // The handle keeps the output its wait found (the output URL outlives
    // the status): a fresh handle asks the service, which has forgotten it.
    assert!(job.result().await.is_ok());
    let err = client.job(job.request_id()).result().await.unwrap_err();
    assert!(matches!(err, Error::Expired { .. }), "{err:?}");
    let journal = server.request_log();
    assert_eq!(
        on_path(&journal, &status_path(job.request_id()))
            .last()
            .unwrap()
            .status,
        Some(404)
    );
}

#[tokio::test]
async fn every_output_format_downloads_as_itself() {
    let server = server_virtual().stages(secs(1), secs(1)).start().await;
    let client = client(&server);
    for (format, magic) in [
        (Format::Png, &b"\x89PNG"[..]),
        (Format::Jpg, &[0xFF, 0xD8, 0xFF][..]),
        (Format::Webp, &b"RIFF"[..]),
    ] {
        let req = TryOnRequest::builder()
            .person(Image::url("https://example.com/p.jpg"))
            .garment(Image::url("https://example.com/g.jpg"))
            .output_format(format)
            .output_quality(70)
            .build()
            .unwrap();
        let out = client.run(&req).await.unwrap();
        assert!(
            out.url().path().ends_with(format.extension()),
            "{}",
            out.url()
        );
        let bytes = out.download().await.unwrap();
        assert!(bytes.starts_with(magic), "{format:?}");
    }
}

#[tokio::test]
async fn failed_job_is_error_failed_with_the_mocks_text_and_no_result_fetch() {
    let server = server_virtual()
        .stages(secs(1), secs(2))
        .fail(FailRule::new(JobMatch::Seed(7), "Garment not detected"))
        .fail(FailRule::content_block(JobMatch::PromptContains(
            "blocked".into(),
        )))
        .start()
        .await;
    let client = client(&server);
    let by_seed = TryOnRequest::builder()
        .person(Image::url("https://example.com/p.jpg"))
        .garment(Image::url("https://example.com/g.jpg"))
        .seed(7)
        .build()
        .unwrap();
    let by_prompt = TryOnRequest::builder()
        .person(Image::url("https://example.com/p.jpg"))
        .garment(Image::url("https://example.com/g.jpg"))
        .prompt("please get blocked")
        .build()
        .unwrap();
    for (req, text) in [
        (by_seed, "Garment not detected"),
        (by_prompt, FailRule::CONTENT_BLOCKED),
    ] {
        let err = client.run(&req).await.unwrap_err();
        let Error::Failed { request_id, detail } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(detail, text);
        assert!(!err.is_retryable());
        // Read from the 422 body of the result URL the wait polls; the
        // status URL was never asked.
        let journal = server.request_log();
        let polls = on_path(&journal, &result_path(request_id));
        assert_eq!(polls.last().unwrap().status, Some(422));
        assert!(on_path(&journal, &status_path(request_id)).is_empty());
    }
    // The events stream ends with the failure as a status.
    server.push_fail_rule(FailRule::new(JobMatch::All, "boom"));
    let job = client.submit(&request(1)).await.unwrap();
    let events = job.events().map(Result::unwrap).collect::<Vec<_>>().await;
    assert_eq!(
        events.last(),
        Some(&Status::Failed {
            detail: "boom".into()
        })
    );
}

/// The one home of the expiry scenario (the fault matrix keeps its row).
#[tokio::test]
async fn expiry_mid_wait_is_expired() {
    let server = server_virtual()
        .stages(secs(3), secs(30))
        .retention(secs(5))
        .start()
        .await;
    let client = client(&server);
    let job = client.submit(&request(1)).await.unwrap();
    let err = job.wait().await.unwrap_err();
    assert!(
        matches!(&err, Error::Expired { request_id } if request_id == job.request_id()),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(404));
    // It was seen alive first (by the result URL the wait polls), then
    // gone; the result URL's 404 was taken for expiry only once the status
    // URL said so too.
    let journal = server.request_log();
    let polls = on_path(&journal, &result_path(job.request_id()));
    assert_eq!(polls.first().unwrap().status, Some(200));
    assert_eq!(polls.last().unwrap().status, Some(404));
    let statuses = on_path(&journal, &status_path(job.request_id()));
    assert_eq!(
        statuses.iter().map(|e| e.status).collect::<Vec<_>>(),
        vec![Some(404)]
    );
    assert!(server.now() >= secs(5));
}

#[tokio::test]
async fn deadline_times_out_with_the_id_then_reattach_finishes() {
    let (server, client) = one_job_server(secs(5), secs(20)).await;
    let req = request(11); // expected ≈ 22 s
    let job = client.submit(&req).await.unwrap();
    let t0 = server.now();
    let err = job.wait_with(secs(10)).await.unwrap_err();
    let Error::Timeout {
        request_id,
        elapsed,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(request_id, job.request_id());
    assert_eq!(*elapsed, secs(10));
    // Never slept past the deadline.
    assert_eq!(server.now().saturating_sub(t0), secs(10));

    // Re-attach by id and finish.
    let again = client
        .job(request_id.clone())
        .with_expected_duration(req.expected_duration());
    let out = again.wait().await.unwrap();
    assert_eq!(
        png_size(&out.download().await.unwrap()),
        MockConfig::DEFAULT_OUTPUT_SIZE
    );
    assert!(server.now() >= secs(25));
    assert_eq!(server.billed_submits(), 1);
}

#[tokio::test]
async fn reattach_after_restart_with_a_second_client() {
    let server = server_virtual()
        .stages(secs(2), secs(4))
        .expect_submits(1)
        .start()
        .await;
    let id = {
        let first = client(&server);
        first
            .submit(&request(2))
            .await
            .unwrap()
            .request_id()
            .to_string()
    }; // the first client is gone ("restart")
    server.advance(secs(1));

    let second = client(&server);
    let job = second.job(&id);
    assert_full_lifecycle(&job).await;
    let out = job.result().await.unwrap();
    assert_eq!(out.request_id(), id);
    assert_eq!(
        png_size(&out.download().await.unwrap()),
        MockConfig::DEFAULT_OUTPUT_SIZE
    );
    // An unknown id is Expired too.
    let err = second
        .job("00000000-0000-0000-0000-000000000000")
        .status()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Expired { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------
// 429, Retry-After, 5xx.

/// After every 429 in `journal`, the next call on an API route came at
/// least `wait(entry)` later on the mock clock.
fn assert_waited_after_429s(
    journal: &[RequestLogEntry],
    wait: impl Fn(&RequestLogEntry) -> Duration,
) {
    let api: Vec<&RequestLogEntry> = journal
        .iter()
        .filter(|e| !e.path.starts_with("/outputs/"))
        .collect();
    for pair in api.windows(2) {
        if pair[0].status == Some(429) {
            let need = wait(pair[0]);
            assert!(
                pair[1].at >= pair[0].at + need,
                "429 at {:?} then a call at {:?}, before {need:?} passed",
                pair[0].at,
                pair[1].at
            );
        }
    }
}

/// The one home of the 429-storm scenario.
#[tokio::test]
async fn storm_of_429_with_retry_after_is_waited_out() {
    let server = server_virtual()
        .stages(secs(1), secs(2))
        .fault(
            Fault::rate_limited(FaultRoute::Result)
                .times(3)
                .retry_after(RetryAfter::Seconds(4)),
        )
        .fault(
            Fault::rate_limited(FaultRoute::Submit)
                .times(2)
                .retry_after(RetryAfter::Seconds(3)),
        )
        .expect_submits(1)
        .start()
        .await;
    let client = client(&server);
    let out = client.run(&request(1)).await.unwrap();
    let journal = server.request_log();
    let submits = on_path(&journal, "/v2/p-image-try-on");
    assert_eq!(
        submits.iter().map(|e| e.status).collect::<Vec<_>>(),
        vec![Some(429), Some(429), Some(200)]
    );
    let polls = on_path(&journal, &result_path(out.request_id()));
    assert_eq!(polls.iter().filter(|e| e.status == Some(429)).count(), 3);
    assert_waited_after_429s(&journal, |e| {
        if e.path == "/v2/p-image-try-on" {
            secs(3)
        } else {
            secs(4)
        }
    });
    assert_eq!(server.billed_submits(), 1);
}

#[tokio::test]
async fn mock_rate_limit_bucket_is_honoured() {
    // One token every 4 s, no burst: nearly every call is refused at first.
    let rate = RateLimitRule::new(0.25, 1);
    let server = server_virtual()
        .stages(secs(1), secs(2))
        .rate_limit(rate)
        .expect_submits(1)
        .start()
        .await;
    let client = client(&server);
    run_to_placeholder(&client).await;
    let journal = server.request_log();
    assert!(
        journal.iter().any(|e| e.status == Some(429)),
        "the limit was hit: {journal:?}"
    );

    // Replay the bucket over the journal: each 429 said `Retry-After:
    // ceil(time to the next token)`, and the client waited at least that.
    let api: Vec<&RequestLogEntry> = journal
        .iter()
        .filter(|e| !e.path.starts_with("/outputs/"))
        .collect();
    let (mut tokens, mut last) = (f64::from(rate.burst), Duration::ZERO);
    for (i, e) in api.iter().enumerate() {
        tokens = (tokens + e.at.saturating_sub(last).as_secs_f64() * rate.per_second).min(1.0);
        last = e.at;
        if tokens >= 1.0 {
            tokens -= 1.0;
            assert_ne!(e.status, Some(429), "{e:?}");
        } else {
            assert_eq!(e.status, Some(429), "{e:?}");
            let retry_after = Duration::from_secs_f64(((1.0 - tokens) / rate.per_second).ceil());
            if let Some(next) = api.get(i + 1) {
                assert!(next.at >= e.at + retry_after, "{e:?} then {next:?}");
            }
        }
    }
}

#[tokio::test]
async fn server_errors_then_success_on_the_result_polls() {
    let server = server_virtual()
        .stages(secs(1), secs(1))
        .fault(Fault::server_error(FaultRoute::Result, 500))
        .fault(Fault::server_error(FaultRoute::Result, 502))
        .fault(Fault::server_error(FaultRoute::Result, 503).retry_after(RetryAfter::Seconds(1)))
        .fault(Fault::server_error(FaultRoute::Result, 504))
        // Five failures in a row: the sixth and last attempt passes.
        .fault(Fault::server_error(FaultRoute::Result, 503))
        .expect_submits(1)
        .start()
        .await;
    let client = client(&server);
    let job = client.submit(&request(1)).await.unwrap();
    let out = job.wait().await.unwrap();
    assert_eq!(
        png_size(&out.download().await.unwrap()),
        MockConfig::DEFAULT_OUTPUT_SIZE
    );
    let journal = server.request_log();
    let codes = |path: String| -> Vec<Option<u16>> {
        on_path(&journal, &path).iter().map(|e| e.status).collect()
    };
    let polls = codes(result_path(job.request_id()));
    assert_eq!(
        polls[..6],
        [
            Some(500),
            Some(502),
            Some(503),
            Some(504),
            Some(503),
            Some(200)
        ]
    );
    // Every fault was retried on the result URL itself: the status URL
    // was never asked.
    assert!(codes(status_path(job.request_id())).is_empty());
}

#[tokio::test]
async fn status_errors_that_outlast_the_retries_keep_their_code() {
    let server = server_virtual()
        .fault(Fault::server_error(FaultRoute::Status, 502).always())
        .start()
        .await;
    let client = client(&server);
    let job = client.submit(&request(1)).await.unwrap();
    let err = job.status().await.unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert!(err.is_retryable());
    assert_eq!(err.request_id(), Some(job.request_id()));
    let journal = server.request_log();
    assert_eq!(on_path(&journal, &status_path(job.request_id())).len(), 6);
}

// ---------------------------------------------------------------------------
// Dropped connections: never pay twice.

#[tokio::test]
async fn dropped_after_accept_on_submit_is_ambiguous_and_billed_exactly_once() {
    let server = server_virtual()
        .fault(Fault::drop_after_accept())
        .expect_submits(1)
        .start()
        .await;
    let client = client(&server);
    let err = client.submit(&request(1)).await.unwrap_err();
    assert!(matches!(err, Error::AmbiguousSubmit { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(server.billed_submits(), 1, "billed once, never twice");
    let journal = server.request_log();
    let submits = on_path(&journal, "/v2/p-image-try-on");
    assert_eq!(submits.len(), 1, "not submitted again");
    assert_eq!(submits[0].status, None, "the connection was dropped");
    // `run` behaves the same.
    server.push_fault(Fault::drop_after_accept());
    let err = client.run(&request(1)).await.unwrap_err();
    assert!(matches!(err, Error::AmbiguousSubmit { .. }), "{err:?}");
    assert_eq!(server.billed_submits(), 2);
    server.expect_submits(2);
}

#[tokio::test]
async fn dropped_before_accept_on_submit_is_still_ambiguous_and_not_billed() {
    // The client cannot tell this from a drop after acceptance, so it must
    // not resubmit either; the mock shows nothing was billed.
    let (server, err) = failed_submit(Fault::drop_before_accept(FaultRoute::Submit), 0).await;
    assert!(matches!(err, Error::AmbiguousSubmit { .. }), "{err:?}");
    assert_eq!(server.billed_submits(), 0);
    assert_one_submit(&server);
}

#[tokio::test]
async fn a_truncated_submit_answer_is_not_resubmitted() {
    let (server, err) = failed_submit(Fault::truncated_body(FaultRoute::Submit), 1).await;
    // Billed but unreadable: ambiguous (or, in older builds, an invalid
    // response saying so); either way never submitted again.
    assert!(
        matches!(
            err,
            Error::AmbiguousSubmit { .. } | Error::InvalidResponse { .. }
        ) && err.to_string().contains("billed"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_one_submit(&server);
    assert_eq!(server.billed_submits(), 1);
}

#[tokio::test]
async fn dropped_connections_on_status_and_result_are_retried() {
    let server = server_virtual()
        .stages(secs(1), secs(1))
        .fault(Fault::drop_before_accept(FaultRoute::Result).times(3))
        .expect_submits(1)
        .start()
        .await;
    let client = client(&server);
    let out = run_to_placeholder(&client).await;
    let journal = server.request_log();
    let polls = on_path(&journal, &result_path(out.request_id()));
    assert_eq!(
        polls[..3].iter().map(|e| e.status).collect::<Vec<_>>(),
        vec![None; 3]
    );
    assert!(polls[3..].iter().all(|e| e.status == Some(200)));
    assert!(on_path(&journal, &status_path(out.request_id())).is_empty());
    assert_eq!(server.billed_submits(), 1);
}

// ---------------------------------------------------------------------------
// 401, 406.

#[tokio::test]
async fn unknown_key_is_unauthorized_and_not_retried() {
    let server = server_virtual()
        .keys(["sk-someone-else"])
        .expect_submits(0)
        .start()
        .await;
    let err = client(&server).submit(&request(1)).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("SEGMIND_API_KEY"), "{err}");
    assert!(!err.to_string().contains(KEY));
    assert_one_submit(&server);

    // Reads too.
    let err = client(&server).job("anything").status().await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn out_of_credits_is_insufficient_credits_and_not_billed() {
    let server = server_virtual()
        .stages(secs(1), secs(1))
        .credits(Credits::with_balance(0.02).cost_per_garment(0.015))
        .expect_submits(1)
        .start()
        .await;
    let client = client(&server);
    client.run(&request(1)).await.unwrap();
    let err = client.submit(&request(1)).await.unwrap_err();
    assert!(matches!(err, Error::InsufficientCredits { .. }), "{err:?}");
    assert_eq!(err.status(), Some(406));
    assert!(err.to_string().contains("out of credits"), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(server.billed_submits(), 1);
    let journal = server.request_log();
    let submits = on_path(&journal, "/v2/p-image-try-on");
    assert_eq!(
        submits.iter().map(|e| e.status).collect::<Vec<_>>(),
        vec![Some(200), Some(406)]
    );
}

// ---------------------------------------------------------------------------
// The key stays home.

#[tokio::test]
async fn key_never_goes_to_a_foreign_output_host() {
    // The output host: another server on another port, serving a PNG
    // without a key and failing loudly with one.
    let foreign = httpmock::MockServer::start_async().await;
    let keyed = foreign
        .mock_async(|when, then| {
            when.header_exists("x-api-key");
            then.status(500);
        })
        .await;
    let image = png(20, 10);
    let outputs = foreign
        .mock_async(|when, then| {
            when.method(httpmock::Method::GET)
                .path_prefix("/outputs/")
                .header_missing("x-api-key");
            then.status(200)
                .header("content-type", "image/png")
                .body(image.clone());
        })
        .await;
    // The mock writes every absolute URL (status_url, response_url, output)
    // on the foreign host, as a hostile or misconfigured server might.
    let server = MockServer::builder()
        .config(MockConfig {
            virtual_time: true,
            public_url: Some(foreign.base_url()),
            ..MockConfig::default()
        })
        .stages(secs(1), secs(1))
        .start()
        .await;
    let client = client(&server);
    let out = client.run(&request(1)).await.unwrap();
    assert!(out.url().as_str().starts_with(&foreign.base_url()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.png");
    out.save(&path).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), image);

    outputs.assert_calls_async(1).await;
    keyed.assert_calls_async(0).await;
    // The result URL was polled on the configured origin, with the key.
    let journal = server.request_log();
    assert!(!on_path(&journal, &result_path(out.request_id())).is_empty());
    assert!(journal.iter().all(|e| e.key.as_deref() == Some(KEY)));
}

// ---------------------------------------------------------------------------
// Batches, v1, uploads.

fn journal_text(server: &MockServer) -> String {
    server
        .request_log()
        .iter()
        .map(|e| {
            format!(
                "{:>8.3}s {} {} {:?}",
                e.at.as_secs_f64(),
                e.method,
                e.path,
                e.status
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// With the virtual clock every task's sleep moves the shared clock, so the
/// tasks' calls reach the mock in bursts at one instant; the bucket's burst
/// is as large as the concurrency so a burst can pass, and its slow refill
/// still makes a storm of 429s.
#[tokio::test]
async fn run_many_fifty_jobs_at_eight_under_a_rate_limit() {
    let server = server_virtual()
        .stages(secs(1), secs(2))
        .rate_limit(RateLimitRule::new(0.5, 8))
        .expect_submits(50)
        .start()
        .await;
    let client = client(&server);
    let reqs: Vec<TryOnRequest> = (0..50).map(|i| request(1 + i % 3)).collect();
    let mut done: Vec<usize> = client
        .run_many(reqs, 8)
        .map(|(i, r)| {
            let out = r.unwrap_or_else(|e| panic!("job {i}: {e}\n{}", journal_text(&server)));
            assert!(out.url().path().starts_with("/outputs/"));
            i
        })
        .collect()
        .await;
    done.sort_unstable();
    assert_eq!(done, (0..50).collect::<Vec<_>>());
    assert_eq!(server.billed_submits(), 50, "billed exactly once per job");
    let journal = server.request_log();
    assert!(journal.iter().any(|e| e.status == Some(429)), "a storm hit");
    assert_eq!(
        on_path(&journal, "/v2/p-image-try-on")
            .iter()
            .filter(|e| e.status == Some(200))
            .count(),
        50
    );
}

#[tokio::test]
async fn run_sync_returns_the_mocks_image() {
    let server = server_virtual().expect_submits(1).start().await;
    let bytes = client(&server)
        .run_sync(&photo_request(33, 21))
        .await
        .unwrap();
    assert_eq!(png_size(&bytes), (33, 21));
}

#[tokio::test]
async fn local_images_uploaded_through_the_mock() {
    let server = server_virtual().stages(secs(1), secs(1)).start().await;
    let client = builder(&server)
        .upload_base_url(server.uri())
        .upload_local_images(true)
        .build()
        .unwrap();
    let out = client.run(&photo_request(24, 36)).await.unwrap();
    assert_eq!(png_size(&out.download().await.unwrap()), (24, 36));
    let journal = server.request_log();
    let uploads = on_path(&journal, "/upload-asset");
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].key.as_deref(), Some(KEY));
    assert_eq!(uploads[0].status, Some(200));
}
