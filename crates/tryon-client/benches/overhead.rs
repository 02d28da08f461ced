//! Client overhead: submit + one status + result through `tryon-client`
//! against the in-process mock, versus the same three calls made with bare
//! `reqwest` + `serde_json`. Same mock, same runtime, interleaved
//! iterations; reports the median per iteration and the ratio (goal ≤ 1.1×).
//!
//! The mock runs on a virtual clock with zero-length stages, so a job is
//! `COMPLETED` as soon as it is accepted and the status and result calls
//! succeed without any waiting.
//!
//! `cargo bench -p tryon-client --bench overhead`

#![allow(clippy::print_stdout, reason = "a bench binary prints its table")]

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue};
use tryon_client::{Client, Status};
use tryon_mock::MockServer;

mod common;
use common::{KEY, median, quantile, request, us};

const WARMUP: usize = 300;
const ITERATIONS: usize = 3000;

fn main() {
    common::block_on(run());
}

#[allow(clippy::too_many_lines, reason = "one straight-line measurement")]
async fn run() {
    let server = MockServer::builder()
        .virtual_time()
        .stages(Duration::ZERO, Duration::ZERO)
        .start()
        .await;
    let base = server.uri();
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&base)
        .build()
        .expect("a client");
    let req = request(1, false, 42);

    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_static(KEY));
    let plain = reqwest::Client::builder()
        .default_headers(headers.clone())
        .build()
        .expect("a reqwest client");
    // The same, with the timeouts tryon-client sets by default (a timer per
    // request): the like-for-like baseline.
    let timed = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_mins(2))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("a reqwest client");
    // The same body the client sends for `req`.
    let body = serde_json::json!({
        "person_image": "https://example.com/person.jpg",
        "garment_images": ["https://example.com/g0.jpg"],
        "prompt": "",
        "seed": 42,
        "turbo": false,
        "output_format": "png",
        "output_quality": 95,
        "preserve_input_size": false,
    });

    let with_client = || async {
        let job = client.submit(&req).await.expect("submit");
        let status = job.status().await.expect("status");
        assert_eq!(status, Status::Completed);
        let out = job.result().await.expect("result");
        assert!(out.url().path().starts_with("/outputs/"));
    };
    let with_reqwest = |http: &reqwest::Client| {
        let http = http.clone();
        let (base, body) = (base.clone(), body.clone());
        async move {
            let submitted: serde_json::Value = http
                .post(format!("{base}/v2/p-image-try-on"))
                .json(&body)
                .send()
                .await
                .expect("submit")
                .error_for_status()
                .expect("submit 200")
                .json()
                .await
                .expect("submit json");
            let id = submitted["request_id"].as_str().expect("request_id");
            let status: serde_json::Value = http
                .get(format!("{base}/v2/requests/{id}/status"))
                .send()
                .await
                .expect("status")
                .error_for_status()
                .expect("status 200")
                .json()
                .await
                .expect("status json");
            assert_eq!(status["status"], "COMPLETED");
            let result: serde_json::Value = http
                .get(format!("{base}/v2/requests/{id}"))
                .send()
                .await
                .expect("result")
                .error_for_status()
                .expect("result 200")
                .json()
                .await
                .expect("result json");
            assert!(result["output"].is_string());
        }
    };

    for _ in 0..WARMUP {
        with_client().await;
        with_reqwest(&plain).await;
        with_reqwest(&timed).await;
    }
    let mut client_times = Vec::with_capacity(ITERATIONS);
    let mut bare_times = Vec::with_capacity(ITERATIONS);
    let mut timed_times = Vec::with_capacity(ITERATIONS);
    for i in 0..ITERATIONS {
        // Rotate which goes first, so none always follows another.
        for k in 0..3 {
            let t = Instant::now();
            match (i + k) % 3 {
                0 => {
                    with_client().await;
                    client_times.push(t.elapsed());
                }
                1 => {
                    with_reqwest(&plain).await;
                    bare_times.push(t.elapsed());
                }
                _ => {
                    with_reqwest(&timed).await;
                    timed_times.push(t.elapsed());
                }
            }
        }
    }
    let (c_med, b_med) = (median(&mut client_times), median(&mut bare_times));
    let with_timeouts_median = median(&mut timed_times);
    let ratio = c_med.as_secs_f64() / b_med.as_secs_f64();
    let timed_ratio = c_med.as_secs_f64() / with_timeouts_median.as_secs_f64();
    let verdict = if ratio <= 1.1 { "met" } else { "MISSED" };
    eprintln!(
        "overhead: {ITERATIONS} iterations each (after {WARMUP} warm-up), 3 calls per iteration"
    );
    println!("### Client overhead (submit + status + result, {ITERATIONS} iterations each)");
    println!();
    println!("| path | median | p10 | p90 |");
    println!("|---|---|---|---|");
    println!(
        "| tryon-client | {} | {} | {} |",
        us(c_med),
        us(quantile(&client_times, 0.1)),
        us(quantile(&client_times, 0.9))
    );
    println!(
        "| bare reqwest + serde_json | {} | {} | {} |",
        us(b_med),
        us(quantile(&bare_times, 0.1)),
        us(quantile(&bare_times, 0.9))
    );
    println!(
        "| bare reqwest + serde_json, with the client's timeouts | {} | {} | {} |",
        us(with_timeouts_median),
        us(quantile(&timed_times, 0.1)),
        us(quantile(&timed_times, 0.9))
    );
    println!(
        "| **ratio tryon-client / bare (median)** | **{ratio:.3}×** | goal ≤ 1.1× | {verdict} |"
    );
    println!(
        "| ratio tryon-client / bare with timeouts (median) | {timed_ratio:.3}× | goal ≤ 1.1× | {} |",
        if timed_ratio <= 1.1 { "met" } else { "MISSED" }
    );
    println!();
}
