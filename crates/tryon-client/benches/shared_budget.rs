//! What a shared budget costs per API call, in real time on loopback: the
//! store call every keyed call makes first (one `EVALSHA` to a
//! `redis-server` the bench starts, or one locked read-decide-write of a
//! state file), on the stores' own clocks (production mode).
//!
//! - **alone**: `Client::join_shared_budget` in a loop (one store call
//!   each, the same script or file step a slot reservation takes);
//! - **8 sharers at once**: eight clients calling at the same time (a
//!   multi-thread runtime with 2 workers), each call's latency;
//! - **status read**: a whole `job.status()` against the in-process mock
//!   with a told budget too large to bind, without and with a shared
//!   budget: the difference is what sharing adds to a call; for Redis, the
//!   server's own count of `EVALSHA` calls over the keyed calls made.
//!
//! `cargo bench -p tryon-client --bench shared_budget`
#![allow(clippy::print_stdout, reason = "a bench binary prints its table")]
#![allow(clippy::cast_precision_loss)]

use std::time::{Duration, Instant};

use tryon_client::test_util::RedisServer;
use tryon_client::{Client, RateLimit, SharedBudget, TryOnRequest};
use tryon_mock::MockServer;

mod common;
use common::{KEY, median, quantile, request, us};

const CALLS: usize = 3000;
const SHARERS: usize = 8;
const CALLS_EACH: usize = 500;

fn client(server: &MockServer, budget: Option<&SharedBudget>) -> Client {
    let mut b = Client::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .rate_limit(RateLimit::per_second(100_000.0).expect("a budget"));
    if let Some(budget) = budget {
        b = b.shared_budget(budget.clone());
    }
    b.build().expect("a client")
}

/// p50 and p99 of `v` (sorted in place), as text.
fn p50_p99(v: &mut [Duration]) -> String {
    v.sort_unstable();
    format!("{} / {}", us(quantile(v, 0.5)), us(quantile(v, 0.99)))
}

async fn alone(server: &MockServer, budget: &SharedBudget) -> String {
    let c = client(server, Some(budget));
    c.join_shared_budget().await.expect("the store answers");
    let mut took = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        c.join_shared_budget().await.expect("the store answers");
        took.push(t.elapsed());
    }
    p50_p99(&mut took)
}

async fn together(server: &MockServer, budget: &SharedBudget) -> String {
    let clients: Vec<_> = (0..SHARERS).map(|_| client(server, Some(budget))).collect();
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| {
            tokio::spawn(async move {
                let mut took = Vec::with_capacity(CALLS_EACH);
                for _ in 0..CALLS_EACH {
                    let t = Instant::now();
                    c.join_shared_budget().await.expect("the store answers");
                    took.push(t.elapsed());
                }
                took
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("a task"));
    }
    let per_second = all.len() as f64 / started.elapsed().as_secs_f64();
    format!("{} ({per_second:.0} calls/s in all)", p50_p99(&mut all))
}

/// The median of a status read, without and with `budget`.
async fn status_reads(
    server: &MockServer,
    req: &TryOnRequest,
    budget: Option<&SharedBudget>,
) -> Duration {
    let c = client(server, budget);
    let job = c.submit(req).await.expect("submit");
    let mut took = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        job.status().await.expect("status");
        took.push(t.elapsed());
    }
    median(&mut took)
}

/// `cmdstat_evalsha`'s calls, from `INFO commandstats`.
fn evalsha_calls(redis: &RedisServer) -> u64 {
    let info = redis.command(&["INFO", "commandstats"]).unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn main() {
    common::block_on_two_workers(run());
}

async fn run() {
    let server = common::instant_mock().await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = SharedBudget::new(&format!("file:{}", dir.path().join("budget").display()))
        .expect("a file budget");
    let redis = RedisServer::start_or_skip("the shared-budget bench's Redis rows");
    let req = request(1, false, 7);

    println!("### Shared budget: cost per call (real time, loopback, {CALLS} calls a row)");
    println!();
    println!(
        "| store | alone: p50 / p99 | {SHARERS} sharers at once: p50 / p99 | status read alone / shared (median) |"
    );
    println!("|---|---|---|---|");
    let plain = status_reads(&server, &req, None).await;
    let mut stores = vec![("file:", file)];
    if let Some(redis) = &redis {
        stores.push((
            "redis://",
            SharedBudget::new(&redis.url()).expect("a Redis budget"),
        ));
    }
    for (name, budget) in &stores {
        let a = alone(&server, budget).await;
        let t = together(&server, budget).await;
        let before = redis.as_ref().map(evalsha_calls);
        let shared = status_reads(&server, &req, Some(budget)).await;
        let per_call = match (&redis, before, *name) {
            (Some(r), Some(b), "redis://") => {
                // The submit, then CALLS status reads, each a keyed call.
                format!(
                    ", {:.2} EVALSHA per keyed call",
                    (evalsha_calls(r) - b) as f64 / (CALLS + 1) as f64
                )
            }
            _ => String::new(),
        };
        println!(
            "| {name} | {a} | {t} | {} / {} (+{}{per_call}) |",
            us(plain),
            us(shared),
            us(shared.saturating_sub(plain)),
        );
    }
    if redis.is_none() {
        println!("| redis:// | skipped: no redis-server | | |");
    }
    println!();
}
