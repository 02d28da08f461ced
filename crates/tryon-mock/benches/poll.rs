//! Status-poll throughput and latency: tryon-mock against `httpmock` and a
//! bare hyper server, at 1, 16 and 64 concurrent clients, in one run.
//!
//! `cargo bench -p tryon-mock --bench poll` (prints a Markdown table).
//! `POLL_BENCH_SECS` sets the measured seconds per cell (default 2).
//!
//! Every server answers the same body: the `COMPLETED` status of a real job
//! the mock ran (`GET /v2/requests/{id}/status`). The mock computes it per
//! request (lookup, clock, serialization, request log); httpmock and hyper
//! serve it as a fixed string. The load generator runs in this process on a
//! 2-worker tokio runtime, shared with the mock and hyper servers (httpmock
//! serves from its own thread). Each simulated client has its own
//! keep-alive `reqwest::Client` (one connection), and sends its next request
//! when the previous answer has been read. Each cell: 0.25 s warm-up, then
//! the measured window; 3 runs per cell, interleaved across servers; the
//! table shows the median run (by req/s) and the median p50/p99.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::too_many_lines,
    clippy::similar_names,
    missing_docs
)]

use std::convert::Infallible;
use std::time::{Duration, Instant};

use common::KEY;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

mod common;

const CLIENTS: [usize; 3] = [1, 16, 64];
const RUNS: usize = 3;
const WARMUP: Duration = Duration::from_millis(250);

struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

/// `clients` tasks poll `url` for `WARMUP + measure`; latencies of the
/// measured window only.
async fn run_cell(url: &str, body_len: usize, clients: usize, measure: Duration) -> Run {
    // Clients are built before the clock starts (building one loads the
    // TLS roots, which is slow and not what is measured).
    let https: Vec<reqwest::Client> = (0..clients)
        .map(|_| {
            reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap()
        })
        .collect();
    let start = Instant::now();
    let warm_until = start + WARMUP;
    let until = warm_until + measure;
    let mut tasks = tokio::task::JoinSet::new();
    for http in https {
        let url = url.to_string();
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            loop {
                let t0 = Instant::now();
                if t0 >= until {
                    break;
                }
                let r = http
                    .get(&url)
                    .header("x-api-key", KEY)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let b = r.bytes().await.unwrap();
                assert_eq!(b.len(), body_len, "same body everywhere");
                if t0 >= warm_until {
                    lat.push(t0.elapsed().as_nanos() as u64);
                }
            }
            lat
        });
    }
    let mut all = Vec::new();
    while let Some(lat) = tasks.join_next().await {
        all.extend(lat.unwrap());
    }
    all.sort_unstable();
    let pct = |p: f64| {
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        all[i] as f64 / 1000.0
    };
    Run {
        rps: all.len() as f64 / measure.as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A hyper 1 http1 server answering `body` to every request.
async fn bare_hyper(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req| {
                    let body = body.clone();
                    async move {
                        let mut r = hyper::Response::new(body);
                        r.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

fn main() {
    let measure = Duration::from_secs_f64(
        std::env::var("POLL_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2.0),
    );
    // `POLL_BENCH_CLIENTS=1,16` runs only some columns (for quick looks).
    let only: Option<Vec<usize>> = std::env::var("POLL_BENCH_CLIENTS")
        .ok()
        .map(|s| s.split(',').filter_map(|c| c.trim().parse().ok()).collect());
    let clients_list: Vec<usize> = CLIENTS
        .into_iter()
        .filter(|c| only.as_ref().is_none_or(|o| o.contains(c)))
        .collect();
    let rt = common::runtime();
    rt.block_on(async move {
        // (a) tryon-mock: a real job, completed.
        let mock = common::mock().await;
        let http = common::http();
        let submitted: serde_json::Value = http
            .post(format!("{}/v2/p-image-try-on", mock.uri()))
            .header("x-api-key", KEY)
            .json(&serde_json::json!({
                "person_image": "https://example.com/person.jpg",
                "garment_images": ["https://example.com/shirt.jpg"],
                "seed": 42
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        mock.advance(Duration::from_secs(1));
        let status_url = submitted["status_url"].as_str().unwrap().to_string();
        let path = status_url.strip_prefix(&mock.uri()).unwrap().to_string();
        let body = http
            .get(&status_url)
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["status"], "COMPLETED", "{body}");

        // (b) httpmock, the same body on the same path.
        let hm = httpmock::MockServer::start_async().await;
        hm.mock_async(|when, then| {
            when.method("GET").path(path.clone());
            then.status(200)
                .header("content-type", "application/json")
                .body(body.clone());
        })
        .await;
        // (c) bare hyper.
        let hyper_base = bare_hyper(body.clone()).await;

        let targets = [
            ("tryon-mock", status_url.clone()),
            ("httpmock", format!("{}{path}", hm.base_url())),
            ("bare hyper", format!("{hyper_base}{path}")),
        ];
        println!(
            "body ({} bytes): {body}\nmeasured {:.1} s per cell after {} ms warm-up, {RUNS} runs\n",
            body.len(),
            measure.as_secs_f64(),
            WARMUP.as_millis()
        );
        // results[target][clients] = runs
        let mut results: Vec<Vec<Vec<Run>>> = (0..targets.len())
            .map(|_| (0..clients_list.len()).map(|_| Vec::new()).collect())
            .collect();
        for run in 0..RUNS {
            for (ci, &clients) in clients_list.iter().enumerate() {
                for (ti, (name, url)) in targets.iter().enumerate() {
                    let r = run_cell(url, body.len(), clients, measure).await;
                    eprintln!(
                        "run {run} {name:>10} {clients:>2} clients: {:>8.0} req/s p50 {:>7.1} us p99 {:>7.1} us",
                        r.rps, r.p50_us, r.p99_us
                    );
                    results[ti][ci].push(r);
                }
            }
        }
        // Medians per cell.
        let cell = |ti: usize, ci: usize| {
            let runs = &results[ti][ci];
            (
                median(runs.iter().map(|r| r.rps).collect()),
                median(runs.iter().map(|r| r.p50_us).collect()),
                median(runs.iter().map(|r| r.p99_us).collect()),
            )
        };
        println!(
            "| server | clients | req/s | p50 | p99 | req/s vs httpmock | req/s vs hyper | p99 vs httpmock |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for (ci, &clients) in clients_list.iter().enumerate() {
            let (hm_rps, _, hm_p99) = cell(1, ci);
            let (hy_rps, _, _) = cell(2, ci);
            for (ti, (name, _)) in targets.iter().enumerate() {
                let (rps, p50, p99) = cell(ti, ci);
                println!(
                    "| {name} | {clients} | {rps:.0} | {p50:.0} µs | {p99:.0} µs | {:.2}× | {:.2}× | {:.2}× |",
                    rps / hm_rps,
                    rps / hy_rps,
                    p99 / hm_p99
                );
            }
        }
        // Targets, as the issue states them.
        println!();
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        for (ci, &clients) in clients_list.iter().enumerate() {
            let (m, _, mp99) = cell(0, ci);
            let (h, _, hp99) = cell(1, ci);
            let (y, _, _) = cell(2, ci);
            if clients == 1 {
                println!(
                    "- 1 client: {:.2}× httpmock req/s (target ≥ 3×): {}; {:.2}× bare hyper (target ≥ 0.8×): {}",
                    m / h,
                    verdict(m >= 3.0 * h),
                    m / y,
                    verdict(m >= 0.8 * y)
                );
            } else {
                println!(
                    "- {clients} clients: {:.2}× httpmock req/s (target ≥ 1.0×): {}; p99 {mp99:.0} vs {hp99:.0} µs (target ≤): {}",
                    m / h,
                    verdict(m >= h),
                    verdict(mp99 <= hp99)
                );
            }
        }
        drop(mock);
    });
}
