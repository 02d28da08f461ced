//! Memory of retained jobs: RSS before and after 100 000 jobs are submitted
//! over HTTP (64 concurrent keep-alive clients, the real submit path:
//! validation, job store, billing, request log) and kept (virtual clock, 1 h
//! retention, so none expire).
//!
//! `cargo bench -p tryon-mock --bench rss` (`RSS_BENCH_JOBS` to change the
//! count).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    missing_docs
)]

use std::time::Instant;

use common::KEY;

mod common;

/// `VmRSS` (or another `/proc/self/status` field) in KiB.
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let jobs: usize = std::env::var("RSS_BENCH_JOBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let clients = 64;
    let rt = common::runtime();
    rt.block_on(async move {
        let server = common::mock().await;
        let url = format!("{}/v2/p-image-try-on", server.uri());
        // A body like a client sends: two garments, a prompt, a seed.
        let body = serde_json::to_vec(&serde_json::json!({
            "person_image": "https://example.com/people/person-0001.jpg",
            "garment_images": [
                "https://example.com/garments/shirt-0001.jpg",
                "https://example.com/garments/trousers-0001.jpg"
            ],
            "prompt": "a person wearing the shirt and the trousers",
            "seed": 42,
            "output_format": "png"
        }))
        .unwrap();
        // Warm up the server, the clients and the allocator first, so the
        // "before" figure includes the runtime and the connection buffers.
        let https: Vec<reqwest::Client> = (0..clients)
            .map(|_| common::http())
            .collect();
        for http in &https {
            let r = http.get(format!("{}/v2/requests/x/status", server.uri())).header("x-api-key", KEY).send().await.unwrap();
            assert_eq!(r.status(), 404);
        }
        let before = proc_status_kib("VmRSS");
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, http) in https.into_iter().enumerate() {
            let url = url.clone();
            let body = body.clone();
            let n = jobs / clients + usize::from(i < jobs % clients);
            tasks.spawn(async move {
                for _ in 0..n {
                    let r = http
                        .post(&url)
                        .header("x-api-key", KEY)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        let took = started.elapsed();
        assert_eq!(server.job_count(), jobs);
        let after = proc_status_kib("VmRSS");
        let peak = proc_status_kib("VmHWM");
        println!(
            "{jobs} jobs submitted over HTTP in {:.1} s ({:.0}/s); retained: {}; request-log entries: {}",
            took.as_secs_f64(),
            jobs as f64 / took.as_secs_f64(),
            server.job_count(),
            server.request_log().len()
        );
        println!(
            "VmRSS before: {:.1} MiB, after: {:.1} MiB (+{:.1} MiB, {:.0} bytes/job); VmHWM {:.1} MiB; target < 200 MiB: {}",
            mib(before),
            mib(after),
            mib(after.saturating_sub(before)),
            (after.saturating_sub(before) * 1024) as f64 / jobs as f64,
            mib(peak),
            if mib(after) < 200.0 { "met" } else { "MISSED" }
        );
    });
}
