//! Scale: 10,000 jobs through `Client::run_many` at concurrency 256 against
//! the in-process mock (real time, zero-length stages, so the first status
//! poll sees `COMPLETED`). Reports wall time, requests per second (from the
//! mock's journal) and the peak RSS of the whole process — client and mock
//! together (`VmHWM`). Goals: peak RSS < 100 MiB, wall < 30 s on 2 cores.
//!
//! `cargo bench -p tryon-client --bench scale`
#![allow(clippy::print_stdout, reason = "a bench binary prints its table")]

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tryon_client::Client;
use tryon_client::poll::FixedPolling;
use tryon_mock::MockServer;

mod common;
use common::{KEY, proc_status_kib, request};

const JOBS: usize = 10_000;
const CONCURRENCY: usize = 256;
const POLL: Duration = Duration::from_millis(5);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(run());
}

#[allow(clippy::cast_precision_loss)]
async fn run() {
    let server = MockServer::builder()
        .stages(Duration::ZERO, Duration::ZERO)
        .start()
        .await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .poll_policy(FixedPolling { interval: POLL })
        .build()
        .expect("a client");
    let before_kib = proc_status_kib("VmHWM:").unwrap_or_default();
    let requests: Vec<_> = (0..JOBS as u64).map(|i| request(1, false, i)).collect();

    let started = Instant::now();
    let mut results = client.run_many(requests, CONCURRENCY);
    let (mut ok, mut failed) = (0usize, 0usize);
    while let Some((_, r)) = results.next().await {
        match r {
            Ok(_) => ok += 1,
            Err(e) => {
                if failed < 5 {
                    eprintln!("scale: job failed: {e}");
                }
                failed += 1;
            }
        }
    }
    let wall = started.elapsed();
    let peak = proc_status_kib("VmHWM:").unwrap_or_default();
    let calls = server.request_log().len();
    let billed = server.billed_submits();
    let rps = calls as f64 / wall.as_secs_f64();
    let peak_mib = peak as f64 / 1024.0;
    let wall_ok = if wall < Duration::from_secs(30) {
        "met"
    } else {
        "MISSED"
    };
    let rss_ok = if peak_mib < 100.0 { "met" } else { "MISSED" };

    println!(
        "### Scale ({JOBS} jobs, run_many concurrency {CONCURRENCY}, fixed {} ms polls, in-process mock)",
        POLL.as_millis()
    );
    println!();
    println!("| metric | value | goal | |");
    println!("|---|---|---|---|");
    println!(
        "| jobs ok / failed | {ok} / {failed} | all ok | {} |",
        if failed == 0 && ok == JOBS {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "| billed submits | {billed} | {JOBS} (never more) | {} |",
        if usize::try_from(billed).is_ok_and(|b| b == JOBS) {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "| wall time | {:.2} s | < 30 s | {wall_ok} |",
        wall.as_secs_f64()
    );
    println!("| HTTP requests (mock request log) | {calls} | | |");
    println!("| requests/s | {rps:.0} | | |");
    println!("| jobs/s | {:.0} | | |", ok as f64 / wall.as_secs_f64());
    println!(
        "| peak RSS (VmHWM, client + mock) | {peak_mib:.1} MiB (before the run: {:.1} MiB) | < 100 MiB | {rss_ok} |",
        before_kib as f64 / 1024.0
    );
    println!();
}
