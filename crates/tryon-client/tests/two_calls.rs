//! Two calls a job, against the mock in virtual time: what a wait sends
//! when the result URL answers as the contract assumes, the fallback to
//! status polling in each other way it may answer (never taken for
//! expiry, said once, never billed again), and the plan learning the
//! service's speed for every job of one client. Counts of calls, not
//! timings: speed belongs in the benches.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use tryon_client::poll::ModelAwarePolling;
use tryon_client::test_util::DrivingClock;
use tryon_client::{Client, Error, Image, Status, TryOnRequest};
use tryon_mock::{MockClock, MockServer, RequestLogEntry, ResultBeforeCompletion, Stages, Timing};

const KEY: &str = "sk-two-calls";

fn request(seed: u64) -> TryOnRequest {
    TryOnRequest::builder()
        .person(Image::url("https://example.com/p.jpg"))
        .garment(Image::url("https://example.com/g.jpg"))
        .seed(seed)
        .build()
        .unwrap()
}

fn client(server: &MockServer) -> Client {
    Client::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .clock(common::following(server))
        .build()
        .unwrap()
}

async fn mock(early: ResultBeforeCompletion, queued: f64, processing: f64) -> MockServer {
    MockServer::builder()
        .virtual_time()
        .stages(
            Duration::from_secs_f64(queued),
            Duration::from_secs_f64(processing),
        )
        .result_before_completion(early)
        .start()
        .await
}

/// `(status GETs, result GETs)` of one job in the request log.
fn calls(log: &[RequestLogEntry], id: &str) -> (usize, usize) {
    let status = format!("/v2/requests/{id}/status");
    let result = format!("/v2/requests/{id}");
    (
        log.iter().filter(|e| e.path == status).count(),
        log.iter().filter(|e| e.path == result).count(),
    )
}

fn submits(log: &[RequestLogEntry]) -> usize {
    log.iter().filter(|e| e.method == "POST").count()
}

#[tokio::test]
async fn a_job_done_by_its_first_poll_costs_two_calls() {
    // Planned for 2 s, first polled at 1.8 s, done at 1.5 s.
    let server = mock(ResultBeforeCompletion::Status, 0.5, 1.0).await;
    let client = client(&server);
    let out = client.run(&request(1)).await.unwrap();
    let log = server.request_log();
    assert_eq!(submits(&log), 1);
    assert_eq!(calls(&log, out.request_id()), (0, 1), "{log:#?}");
    assert_eq!(server.billed_submits(), 1);
    assert!(!client.polls_status_url());
}

#[tokio::test]
async fn events_then_result_costs_no_further_call() {
    // `tryon run` follows the events, then asks for the result.
    let server = mock(ResultBeforeCompletion::Status, 1.0, 2.0).await;
    let client = client(&server);
    let job = client.submit(&request(2)).await.unwrap();
    let events: Vec<Status> = job.events().map(Result::unwrap).collect().await;
    assert_eq!(events.last(), Some(&Status::Completed));
    let before = server.request_log().len();
    let out = job.result().await.unwrap();
    assert_eq!(server.request_log().len(), before, "result() sent a call");
    assert_eq!(out.request_id(), job.request_id());
    let (status, _) = calls(&server.request_log(), job.request_id());
    assert_eq!(status, 0, "a wait never asks the status URL here");
}

/// A tracing layer that keeps every event's message.
#[derive(Clone, Default)]
struct Messages(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Messages {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Visit<'a>(&'a mut String);
        impl tracing::field::Visit for Visit<'_> {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    *self.0 = format!("{v:?}");
                }
            }
        }
        let mut m = String::new();
        event.record(&mut Visit(&mut m));
        if *event.metadata().level() <= tracing::Level::INFO {
            self.0.lock().unwrap().push(m);
        }
    }
}

#[test]
fn every_other_answer_of_the_result_url_falls_back_to_status_polling_once() {
    use tracing_subscriber::layer::SubscriberExt as _;
    for early in [
        ResultBeforeCompletion::NotFound,
        ResultBeforeCompletion::Accepted,
        ResultBeforeCompletion::NoStatus,
    ] {
        let messages = Messages::default();
        let subscriber = tracing_subscriber::registry().with(messages.clone());
        let _guard = tracing::subscriber::set_default(subscriber);
        // Concurrent jobs: tokio's paused clock drives the mock's, so their
        // sleeps overlap as in real time.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let server = MockServer::builder()
                .virtual_time()
                .header_timeout(Duration::from_hours(1))
                .stages(Duration::from_secs(1), Duration::from_secs(2))
                .result_before_completion(early)
                .start()
                .await;
            let client = Client::builder()
                .api_key(KEY)
                .base_url(server.uri())
                .clock(DrivingClock::new(
                    server.clock(),
                    MockClock::now,
                    MockClock::advance,
                ))
                .build()
                .unwrap();
            // Eight at once: several meet the other answer before any has
            // fallen back.
            let outs: Vec<_> = client
                .run_many((0..8).map(request), 8)
                .map(|(_, r)| r.unwrap())
                .collect()
                .await;
            assert!(client.polls_status_url(), "{early:?}");
            // And one after: status polls, then one result read.
            let late = client.run(&request(9)).await.unwrap();
            let log = server.request_log();
            for out in &outs {
                let (status, result) = calls(&log, out.request_id());
                // At most the one poll of the result URL that met the
                // other answer, then the result itself.
                assert!(result <= 2, "{early:?}: {result} result calls");
                assert!(status >= 1, "{early:?}: the status URL was asked: {log:#?}");
            }
            let (status, result) = calls(&log, late.request_id());
            assert_eq!(result, 1, "{early:?}: only the result read");
            assert!(status >= 1, "{early:?}");
            // Never taken for expiry, never billed again.
            assert_eq!(submits(&log), 9, "{early:?}");
            assert_eq!(server.billed_submits(), 9, "{early:?}");
        });
        let said: Vec<String> = messages
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.contains("polling the status URL from now on"))
            .cloned()
            .collect();
        assert_eq!(said.len(), 1, "{early:?}: said once, {said:?}");
    }
}

#[tokio::test]
async fn result_before_completion_is_not_ready_whatever_the_result_url_answers() {
    for early in [
        ResultBeforeCompletion::Status,
        ResultBeforeCompletion::NotFound,
        ResultBeforeCompletion::Accepted,
        ResultBeforeCompletion::NoStatus,
    ] {
        let server = mock(early, 1.0, 2.0).await;
        let client = client(&server);
        let job = client.submit(&request(3)).await.unwrap();
        let err = client.job(job.request_id()).result().await.unwrap_err();
        assert!(matches!(err, Error::NotReady { .. }), "{early:?}: {err:?}");
        // Once done, the result is there, in every mode.
        server.advance(Duration::from_secs(3));
        assert!(client.job(job.request_id()).result().await.is_ok());
        // Expired is expired: past the retention, both URLs say 404.
        server.advance(Duration::from_hours(1));
        let err = client.job(job.request_id()).result().await.unwrap_err();
        assert!(matches!(err, Error::Expired { .. }), "{early:?}: {err:?}");
        assert_eq!(server.billed_submits(), 1);
    }
}

#[tokio::test]
async fn the_client_learns_the_service_speed_and_every_job_shares_it() {
    // A service twenty times faster than published: 0.1 s for a garment.
    let server = MockServer::builder()
        .virtual_time()
        .timing(Timing::Fixed(Stages::new(
            Duration::ZERO,
            Duration::from_millis(100),
        )))
        .start()
        .await;
    // Without jitter, so the first polls are exactly as planned.
    let client = Client::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .clock(common::following(&server))
        .poll_policy(ModelAwarePolling::default().without_jitter())
        .build()
        .unwrap();
    assert!((client.speed_estimate().factor(false) - 1.0).abs() < f64::EPSILON);
    let mut firsts = Vec::new();
    for seed in 0..6 {
        let before = server.request_log().len();
        let submitted = server.now();
        let out = client.clone().run(&request(seed)).await.unwrap();
        let log = server.request_log();
        let first_poll = log[before..]
            .iter()
            .find(|e| e.path == format!("/v2/requests/{}", out.request_id()))
            .unwrap()
            .at;
        firsts.push(first_poll.saturating_sub(submitted));
    }
    // The first polls of the run are planned as without learning (0.9 of
    // the published 2 s); from the third job on (two samples), on what was
    // learned, by every clone.
    for first in &firsts[..2] {
        assert_eq!(*first, Duration::from_millis(1800), "{firsts:?}");
    }
    for first in &firsts[2..] {
        assert!(*first < Duration::from_millis(300), "{firsts:?}");
    }
    let learned = client.speed_estimate();
    assert_eq!(learned.samples(false), 6);
    assert!((learned.factor(false) - 0.05).abs() < 1e-6, "{learned:?}");
    assert_eq!(learned.per_garment(false), Duration::from_millis(100));
    // Every job took two calls: no status read, no second poll.
    let log = server.request_log();
    assert_eq!(
        log.iter().filter(|e| e.path.ends_with("/status")).count(),
        0
    );
    assert_eq!(server.billed_submits(), 6);
}
