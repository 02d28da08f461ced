//! Throughput under the account's rate limit, in virtual time: a paused
//! tokio runtime (so concurrent sleeps overlap) driving the mock's virtual
//! clock. A `429` with `Retry-After` is a reason to wait, never to give up;
//! every job of `run_many` completes, and few calls are refused.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc, clippy::float_cmp)]

use std::time::Duration;

use futures::StreamExt as _;
use tryon_client::test_util::DrivingClock;
use tryon_client::{Client, ClientBuilder, Image, RateLimit, RetryPolicy, TryOnRequest};
use tryon_mock::{Fault, FaultRoute, MockClock, MockServer, RetryAfter};

const KEY: &str = "sk-rate-test";

fn request(i: u64) -> TryOnRequest {
    let garments = [1usize, 3, 1, 2][usize::try_from(i % 4).unwrap()];
    TryOnRequest::builder()
        .person(Image::url("https://example.com/person.jpg"))
        .garments((0..garments).map(|g| Image::url(format!("https://example.com/g{g}.jpg"))))
        .turbo(i.is_multiple_of(5))
        .seed(i)
        .build()
        .unwrap()
}

fn client(server: &MockServer, budget: Option<RateLimit>) -> Client {
    let mut b = builder(server);
    if let Some(budget) = budget {
        b = b.rate_limit(budget);
    }
    b.build().unwrap()
}

/// A client builder on `server`, driving its virtual clock.
fn builder(server: &MockServer) -> ClientBuilder {
    let clock = DrivingClock::new(server.clock(), MockClock::now, MockClock::advance);
    Client::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .clock(clock)
}

/// A storm of `429`s on the status reads (`fault`, on jobs of 2 s), and a
/// client on it with `policy`.
async fn storm(fault: Fault, policy: RetryPolicy) -> (MockServer, Client) {
    let server = MockServer::builder()
        .virtual_time()
        .stages(Duration::ZERO, Duration::from_secs(2))
        .fault(fault)
        .start()
        .await;
    let client = builder(&server).retry_policy(policy).build().unwrap();
    (server, client)
}

/// Runs `n` jobs at `concurrency`; returns (failures, 429s after the
/// first minute, keyed requests after the first minute, minutes taken).
async fn run(
    server: &MockServer,
    client: &Client,
    n: u64,
    concurrency: usize,
) -> (usize, usize, usize, f64) {
    let results: Vec<_> = client
        .run_many((0..n).map(request), concurrency)
        .collect()
        .await;
    let failures = results.iter().filter(|(_, r)| r.is_err()).count();
    for (i, r) in &results {
        if let Err(e) = r {
            eprintln!("job {i}: {e}");
        }
    }
    let later: Vec<_> = server
        .request_log()
        .into_iter()
        .filter(|e| e.path.starts_with("/v2/") && e.at >= Duration::from_mins(1))
        .collect();
    let refused = later.iter().filter(|e| e.status == Some(429)).count();
    (
        failures,
        refused,
        later.len(),
        server.now().as_secs_f64() / 60.0,
    )
}

#[tokio::test(start_paused = true)]
async fn run_many_under_a_token_bucket_learns_the_budget_and_completes_every_job() {
    // 500 requests a minute, burst 10, on every keyed request.
    let server = MockServer::builder()
        .virtual_time()
        .realistic()
        // Enough workers that the budget, not the server, is the bound.
        .workers(10_000)
        .rate_limit(tryon_mock::RateLimitRule::new(500.0 / 60.0, 10))
        .start()
        .await;
    let client = client(&server, None);
    let n = 300;
    let (failures, refused, later, minutes) = run(&server, &client, n, 48).await;
    assert_eq!(failures, 0);
    assert_eq!(server.billed_submits(), n, "each job billed exactly once");
    #[allow(clippy::cast_precision_loss)]
    let share = refused as f64 / later as f64;
    assert!(
        share <= 0.02,
        "{refused} of {later} refused after the first minute"
    );
    let budget = client.rate_budget().expect("a budget learned from 429s");
    assert!(
        (400.0..=520.0).contains(&budget.requests_per_minute()),
        "learned {budget}"
    );
    #[allow(clippy::cast_precision_loss)]
    let per_min = n as f64 / minutes;
    let j = server.request_log();
    eprintln!(
        "minutes {minutes:.2} requests {} 429 {} status {} budget {budget}",
        j.len(),
        j.iter().filter(|e| e.status == Some(429)).count(),
        j.iter().filter(|e| e.path.ends_with("/status")).count()
    );
    assert!(per_min >= 0.8 * 500.0 / 3.0, "{per_min:.1} jobs/min");
}

#[tokio::test(start_paused = true)]
async fn a_configured_budget_is_kept_from_the_first_call() {
    let server = MockServer::builder()
        .virtual_time()
        .realistic()
        // Enough workers that the budget, not the server, is the bound.
        .workers(10_000)
        .rate_limit(tryon_mock::RateLimitRule::new(1.0, 1))
        .start()
        .await;
    let client = client(&server, Some("60/min".parse().unwrap()));
    let (failures, _, _, _) = run(&server, &client, 20, 8).await;
    assert_eq!(failures, 0);
    let refused = server
        .request_log()
        .iter()
        .filter(|e| e.status == Some(429))
        .count();
    assert_eq!(refused, 0, "paced at the budget, never refused");
    assert_eq!(client.rate_budget().unwrap().requests_per_minute(), 60.0);
}

#[tokio::test(start_paused = true)]
async fn a_429_storm_with_retry_after_never_runs_the_attempts_dry() {
    // Twenty 429s in a row on the poll (the result URL, which a wait
    // polls): more than the six attempts and, at five tokens each, enough
    // to drain a budget of 50.
    let fault = Fault::rate_limited(FaultRoute::Result)
        .retry_after(RetryAfter::Seconds(1))
        .times(20);
    let (server, client) = storm(fault, RetryPolicy::default().with_budget(50, 5)).await;
    let out = client.run(&request(1)).await;
    assert!(out.is_ok(), "{out:?}");
    assert_eq!(server.billed_submits(), 1);
}

/// `Retry-After: 0` on every answer is no reason to wait: retrying it for
/// free would hammer the server in a hot loop (and, on a virtual clock,
/// never reach the deadline). It counts like any failure and ends with the
/// attempts.
#[tokio::test(start_paused = true)]
async fn a_429_storm_with_retry_after_zero_ends_with_the_attempts() {
    let fault = Fault::rate_limited(FaultRoute::Result)
        .retry_after(RetryAfter::Seconds(0))
        .always();
    let (server, client) = storm(fault, RetryPolicy::default().with_max_attempts(3)).await;
    let err = client.run(&request(1)).await.unwrap_err();
    assert_eq!(err.status(), Some(429), "{err:?}");
    let polls = server
        .request_log()
        .iter()
        .filter(|e| e.method == "GET" && e.path.starts_with("/v2/requests/"))
        .count();
    assert!((1..=4).contains(&polls), "{polls} polls for 3 attempts");
}

/// Where only submits are limited, the submits' `429`s teach the submits a
/// limit and nothing else: status polls are not refused, so they are not
/// slowed, and the batch completes jobs at the submit budget.
#[tokio::test(start_paused = true)]
async fn a_limit_on_submits_only_never_slows_the_status_polls() {
    // 60 submits a minute (burst 10); status and result reads free.
    let server = MockServer::builder()
        .virtual_time()
        .realistic()
        .workers(10_000)
        .rate_limit(tryon_mock::RateLimitRule::new(1.0, 10).submits_only())
        .start()
        .await;
    let client = client(&server, None);
    let n = 240;
    let (failures, _, _, minutes) = run(&server, &client, n, 32).await;
    assert_eq!(failures, 0);
    assert_eq!(server.billed_submits(), n, "each job billed exactly once");
    let journal = server.request_log();
    let refused_reads = journal
        .iter()
        .filter(|e| e.method == "GET" && e.status == Some(429))
        .count();
    assert_eq!(refused_reads, 0, "reads are never limited by the server");
    // The last submit's slot is about n seconds in; the run ends when its
    // job is seen done (at most 22 s of compute, polled in latency mode).
    #[allow(clippy::cast_precision_loss)]
    let per_min = n as f64 / minutes;
    eprintln!("submits only: {minutes:.2} min, {per_min:.1} jobs/min");
    assert!(per_min >= 0.9 * 60.0, "{per_min:.1} jobs/min");
}
