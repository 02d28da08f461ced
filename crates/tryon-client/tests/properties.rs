//! Properties of the public API, checked with proptest: request validation,
//! retry backoff, and (against `tryon-mock` in
//! virtual time) that poll and retry waits stay in their bounds and never
//! pass the caller's deadline.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::PNG;

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use tryon_client::limits::MAX_OUTPUT_QUALITY;
use tryon_client::poll::{MIN_FIRST_DELAY, ModelAwarePolling, PollPolicy, PollState};
use tryon_client::{Client, Error, Image, ImageKind, MAX_GARMENTS, RetryPolicy, TryOnRequest};
use tryon_mock::{Fault, FaultRoute, MockServer, RetryAfter, Stages, Timing};

fn garments(n: usize) -> impl Iterator<Item = Image> {
    (0..n).map(|i| Image::url(format!("https://example.com/g{i}.jpg")))
}

fn field(e: &Error) -> &str {
    match e {
        Error::Invalid { field, .. } => field,
        other => panic!("not a validation error: {other:?}"),
    }
}

/// `ModelAwarePolling` (with its jitter), recording `(delay, state)` for
/// every delay it hands out.
#[derive(Debug, Clone, Default)]
struct Recording {
    inner: ModelAwarePolling,
    seen: Arc<Mutex<Vec<(Duration, PollState)>>>,
}

impl PollPolicy for Recording {
    fn next_delay(&self, state: &PollState) -> Duration {
        let delay = self.inner.next_delay(state);
        self.seen.lock().unwrap().push((delay, state.clone()));
        delay
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `test` over `strategy` like `proptest!`, so that one runtime, one
/// mock and one client serve every case (building a client costs more than
/// a whole case in virtual time).
fn check<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let mut runner = TestRunner::new(ProptestConfig::with_cases(64));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

fn mock_client(server: &MockServer) -> tryon_client::ClientBuilder {
    Client::builder()
        .api_key("sk-prop")
        .base_url(server.uri())
        .clock(common::following(server))
}

fn one_garment() -> TryOnRequest {
    TryOnRequest::builder()
        .person(Image::url("https://example.com/p.jpg"))
        .garment(Image::url("https://example.com/g.jpg"))
        .build()
        .unwrap()
}

/// The case proptest found: byte 5 inside a multi-byte character used to
/// panic in the `data:` check.
#[test]
fn non_ascii_url_text_is_refused_not_a_panic() {
    for text in ["A0\u{10000}", "data\u{e9}:x", "\u{1f600}\u{1f600}"] {
        let err = TryOnRequest::builder()
            .person(Image::url(text))
            .garment(Image::url("https://example.com/g.jpg"))
            .build()
            .unwrap_err();
        assert_eq!(field(&err), "person_image");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Exactly 1..=11 garments and quality 0..=100 pass; otherwise the
    /// error names the field and its limit. Never a panic.
    #[test]
    fn validation_accepts_exactly_the_documented_ranges(
        n in 0usize..24,
        quality in prop_oneof![0u32..=120, any::<u32>()],
        turbo in any::<bool>(),
    ) {
        let result = TryOnRequest::builder()
            .person(Image::url("https://example.com/p.jpg"))
            .garments(garments(n))
            .output_quality(quality)
            .turbo(turbo)
            .build();
        let n_ok = (1..=MAX_GARMENTS).contains(&n);
        let q_ok = quality <= u32::from(MAX_OUTPUT_QUALITY);
        match result {
            Ok(req) => {
                prop_assert!(n_ok && q_ok);
                prop_assert_eq!(req.garment_count(), n);
            }
            Err(e) => {
                prop_assert!(!(n_ok && q_ok), "{}", e);
                let text = e.to_string();
                if n_ok {
                    prop_assert_eq!(field(&e), "output_quality");
                    prop_assert!(text.contains("100") && text.contains(&quality.to_string()), "{}", text);
                } else {
                    prop_assert_eq!(field(&e), "garment_images");
                    prop_assert!(text.contains("11") && text.contains(&n.to_string()), "{}", text);
                }
                prop_assert!(!e.is_retryable());
            }
        }
    }

    /// Any text as an image URL is accepted or refused by name, never a
    /// panic; the field says which image.
    #[test]
    fn any_url_text_is_checked_without_panicking(
        text in prop_oneof![
            ".{0,40}",
            "(https?|ftp|data|file):[/a-z0-9.,;:=+%-]{0,40}",
            "data:image/(png|jpeg);base64,[A-Za-z0-9+/=]{0,40}",
        ],
        slot in 0usize..3,
    ) {
        let mut b = TryOnRequest::builder().person(Image::url(if slot == 0 {
            text.clone()
        } else {
            "https://example.com/p.jpg".to_string()
        }));
        b = b.garment(Image::url("https://example.com/g.jpg"));
        if slot == 1 {
            b = b.garment(Image::url(text.clone()));
        }
        if slot == 2 {
            b = b.reference_pose(Image::url(text.clone()));
        }
        if let Err(e) = b.build() {
            let expected = ["person_image", "garment_images[1]", "reference_pose"][slot];
            prop_assert_eq!(field(&e), expected);
        }
    }

    /// Bytes are accepted only when they are a PNG, JPEG or WebP by their
    /// magic and their header reads, whatever type the caller claims: a
    /// whole image (with anything after it) is accepted, PNG or WebP magic
    /// followed by garbage is refused, and nothing panics.
    #[test]
    fn image_bytes_are_accepted_by_their_magic_and_header(
        prefix in prop_oneof![
            Just(("whole png", PNG.to_vec())),
            Just(("png magic", b"\x89PNG\r\n\x1a\n".to_vec())),
            Just(("jpeg magic", vec![0xFF, 0xD8, 0xFF])),
            Just(("webp magic", b"RIFF\0\0\0\0WEBP".to_vec())),
            Just(("none", Vec::new())),
        ],
        rest in proptest::collection::vec(any::<u8>(), 0..48),
        mime in prop_oneof![Just("image/png"), Just("image/jpeg"), Just("text/plain")],
    ) {
        let (kind, prefix) = prefix;
        let bytes: Vec<u8> = prefix.into_iter().chain(rest).collect();
        let sniffed = ImageKind::sniff(&bytes);
        let result = TryOnRequest::builder()
            .person(Image::bytes(bytes, mime))
            .garment(Image::url("https://example.com/g.jpg"))
            .build();
        if result.is_ok() {
            prop_assert!(sniffed.is_some());
        }
        match kind {
            "whole png" => prop_assert!(result.is_ok(), "{:?}", result.err()),
            "png magic" | "webp magic" | "none" => prop_assert!(result.is_err()),
            _ => {}
        }
        if let Err(e) = result {
            prop_assert_eq!(field(&e), "person_image");
        }
    }

    /// Full-jitter backoff: within `0..=cap`, the cap doubles from the
    /// initial value per retry and never passes the maximum.
    #[test]
    fn backoff_stays_within_its_cap(
        initial_ms in 0u64..10_000,
        max_ms in 0u64..120_000,
        retry in 1u32..80,
    ) {
        let p = RetryPolicy::default()
            .with_initial_backoff(Duration::from_millis(initial_ms))
            .with_max_backoff(Duration::from_millis(max_ms));
        let cap = p.backoff_cap(retry);
        let exp = retry.saturating_sub(1).min(30);
        let expected = u128::from(initial_ms)
            .saturating_mul(1u128 << exp)
            .min(u128::from(max_ms));
        prop_assert_eq!(cap.as_millis(), expected);
        prop_assert!(cap <= p.backoff_cap(retry + 1));
        for _ in 0..8 {
            prop_assert!(p.backoff(retry) <= cap);
        }
    }
}

/// Against the mock: whatever the job's timing and the deadline, a wait
/// never runs past its deadline, finishes exactly when the job is done
/// before it, and every poll delay is within its bounds (at least
/// `min_interval`, at most the larger of `max_interval` and the expected
/// time, within the jitter of its plan).
#[test]
fn polls_stay_in_bounds_and_never_pass_the_deadline() {
    let rt = runtime();
    let policy = Recording::default();
    let seen = policy.seen.clone();
    let (server, client) = rt.block_on(async {
        let server = MockServer::builder().virtual_time().start().await;
        let client = mock_client(&server).poll_policy(policy).build().unwrap();
        (server, client)
    });
    let strategy = (
        1usize..=MAX_GARMENTS,
        any::<bool>(),
        0u64..20_000,
        0u64..30_000,
        0u64..60_000,
    );
    check(
        strategy,
        |(n, turbo, queued_ms, processing_ms, deadline_ms)| {
            let done_at = queued_ms + processing_ms;
            prop_assume!(done_at.abs_diff(deadline_ms) > 1);
            server.set_timing(Timing::Fixed(Stages::new(
                Duration::from_millis(queued_ms),
                Duration::from_millis(processing_ms),
            )));
            seen.lock().unwrap().clear();
            let req = TryOnRequest::builder()
                .person(Image::url("https://example.com/p.jpg"))
                .garments(garments(n))
                .turbo(turbo)
                .build()
                .unwrap();
            let deadline = Duration::from_millis(deadline_ms);
            let outcome = rt.block_on(async {
                let job = client.submit(&req).await.unwrap();
                wait_within(&server, &job, deadline).await
            })?;
            match outcome {
                Ok(_) => prop_assert!(done_at < deadline_ms),
                Err(Error::Timeout { elapsed, .. }) => {
                    prop_assert!(done_at > deadline_ms);
                    prop_assert_eq!(elapsed, deadline);
                }
                Err(other) => prop_assert!(false, "{}", other),
            }
            let p = ModelAwarePolling::default();
            // Each delay is its plan (at least `min_interval`, or for the
            // first poll once the client has learned the service's speed
            // `MIN_FIRST_DELAY`; at most the longest interval or the
            // expected time and queue the plan was given) times a jitter
            // factor in `1 ± jitter` (the jitter's spread around the plan
            // itself is a unit test in poll.rs). One client serves every
            // case, so it learns from the earlier ones.
            for (delay, state) in seen.lock().unwrap().iter() {
                let late = state.expected_range.map_or(Duration::ZERO, |(lo, hi)| {
                    hi + hi.saturating_sub(lo) / 4 + Duration::from_millis(50)
                });
                let upper = p
                    .max_interval
                    .max(p.queued_max_interval)
                    .max(state.expected.unwrap_or_default().max(late) + state.expected_queue);
                let learned_first = state.polls == 0 && state.expected_range.is_some();
                let floor = if learned_first {
                    MIN_FIRST_DELAY
                } else {
                    p.min_interval
                };
                let (low, high) = (
                    floor.mul_f64(1.0 - p.jitter),
                    upper.mul_f64(1.0 + p.jitter) + Duration::from_nanos(2),
                );
                prop_assert!(*delay >= low, "{:?} < {:?} for {:?}", delay, low, state);
                prop_assert!(*delay <= high, "{:?} > {:?} for {:?}", delay, high, state);
            }
            Ok(())
        },
    );
}

/// Waits for `job` up to `deadline` and checks that it never waited past
/// it (on the mock's virtual clock); the wait's outcome.
async fn wait_within(
    server: &MockServer,
    job: &tryon_client::Job,
    deadline: Duration,
) -> Result<Result<tryon_client::Output, Error>, TestCaseError> {
    let t0 = server.now();
    let outcome = job.wait_with(deadline).await;
    let waited = server.now().saturating_sub(t0);
    prop_assert!(
        waited <= deadline,
        "waited {:?} past {:?}",
        waited,
        deadline
    );
    Ok(outcome)
}

/// Retries (backoff or `Retry-After`) on a status that keeps failing
/// never sleep past the deadline either, whatever state the shared rate
/// limiter was left in by earlier cases.
#[test]
fn retries_never_pass_the_deadline() {
    let rt = runtime();
    let (server, client) = rt.block_on(async {
        let server = MockServer::builder().virtual_time().start().await;
        // A budget that never runs dry, so every case really retries.
        let retry = RetryPolicy::default().with_budget(u32::MAX, 1);
        let client = mock_client(&server).retry_policy(retry).build().unwrap();
        (server, client)
    });
    let strategy = (
        proptest::option::of(0u64..30),
        prop_oneof![Just(429u16), Just(500), Just(502), Just(503), Just(504)],
        0u64..60_000,
    );
    check(strategy, |(retry_after, code, deadline_ms)| {
        let deadline = Duration::from_millis(deadline_ms);
        server.clear_faults();
        let outcome = rt.block_on(async {
            let job = client.submit(&one_garment()).await.unwrap();
            // On the result URL: the one a wait polls.
            let mut fault = Fault::server_error(FaultRoute::Result, code).always();
            if let Some(s) = retry_after {
                fault = fault.retry_after(RetryAfter::Seconds(s));
            }
            server.push_fault(fault);
            wait_within(&server, &job, deadline).await
        })?;
        let err = outcome.unwrap_err();
        prop_assert!(
            matches!(err, Error::Timeout { .. }) || err.status() == Some(code),
            "{:?}",
            err
        );
        Ok(())
    });
}
