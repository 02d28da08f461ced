//! Shared by the shared-budget tests: a mock on virtual time, clients
//! sharing a budget on it, the stores, and what a run did. A paused tokio
//! runtime drives the mock's clock; the stores run in test mode (their time
//! is the clients' clock).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::cast_precision_loss
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use tryon_client::test_util::{DrivingClock, RedisServer};
use tryon_client::{Client, Clock as _, Image, RateLimit, SharedBudget, TryOnRequest};
use tryon_mock::{MockClock, MockServer, RateLimitRule};

pub const KEY: &str = "sk-shared-budget-test";
/// The account's budget: 500 a minute, burst 10, on every keyed call.
pub const PER_MINUTE: f64 = 500.0;

/// Where the budget lives for one test.
pub enum Backend {
    File(tempfile::TempDir),
    Redis(RedisServer),
}

impl Backend {
    pub fn file() -> Self {
        Backend::File(tempfile::tempdir().unwrap())
    }

    pub fn redis(test: &str) -> Option<Self> {
        RedisServer::start_or_skip(test).map(Backend::Redis)
    }

    pub fn budget(&self) -> SharedBudget {
        let url = match self {
            Backend::File(dir) => format!("file:{}", dir.path().join("budget").display()),
            Backend::Redis(server) => server.url(),
        };
        SharedBudget::new(&url).unwrap().with_client_clock()
    }

    /// Makes the store unreachable until [`repair`](Self::repair).
    pub fn break_it(&mut self) {
        match self {
            Backend::File(dir) => {
                let lock = dir.path().join("budget.lock");
                let _ = std::fs::remove_file(&lock);
                std::fs::create_dir(&lock).unwrap();
            }
            Backend::Redis(server) => server.kill(),
        }
    }

    pub fn repair(&mut self) {
        match self {
            Backend::File(dir) => std::fs::remove_dir(dir.path().join("budget.lock")).unwrap(),
            Backend::Redis(server) => server.restart().unwrap(),
        }
    }
}

pub fn request(i: u64) -> TryOnRequest {
    let garments = [1usize, 3, 2][usize::try_from(i % 3).unwrap()];
    TryOnRequest::builder()
        .person(Image::url("https://example.com/person.jpg"))
        .garments((0..garments).map(|g| Image::url(format!("https://example.com/g{g}.jpg"))))
        .seed(i)
        .build()
        .unwrap()
}

/// A mock with the realistic profile and the account's bucket, and the
/// clock every client drives it with.
pub async fn server() -> (Arc<MockServer>, DrivingClock) {
    let server = MockServer::builder()
        .virtual_time()
        .realistic()
        .workers(10_000)
        .header_timeout(Duration::from_hours(1))
        .rate_limit(RateLimitRule::new(PER_MINUTE / 60.0, 10))
        .start()
        .await;
    let clock = DrivingClock::new(server.clock(), MockClock::now, MockClock::advance);
    (Arc::new(server), clock)
}

pub fn client(
    server: &MockServer,
    clock: &DrivingClock,
    budget: Option<&SharedBudget>,
    told: Option<RateLimit>,
) -> Client {
    let mut b = Client::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .clock(clock.clone())
        .wait_timeout(Duration::from_hours(1));
    if let Some(budget) = budget {
        b = b.shared_budget(budget.clone());
    }
    if let Some(told) = told {
        b = b.rate_limit(told);
    }
    b.build().unwrap()
}

/// `n` clients sharing `budget`.
pub fn sharers(
    n: usize,
    server: &MockServer,
    clock: &DrivingClock,
    budget: &SharedBudget,
    told: Option<RateLimit>,
) -> Vec<Client> {
    (0..n)
        .map(|_| client(server, clock, Some(budget), told))
        .collect()
}

/// What a run of several clients did.
pub struct Run {
    /// Per client, when each of its jobs completed (clock time).
    pub done: Vec<Vec<Duration>>,
    pub failures: usize,
    /// When the run ended.
    pub end: Duration,
}

/// Runs `jobs` jobs on each client at concurrency 16, all at once, each
/// client in a task of its own; the client `kill`s names is aborted at
/// that time (as a process killed with `kill -9` stops).
pub async fn run(
    clients: &[Client],
    jobs: u64,
    clock: &DrivingClock,
    kill: Option<(usize, Duration)>,
) -> Run {
    let done = Arc::new(Mutex::new(vec![Vec::new(); clients.len()]));
    let failures = Arc::new(Mutex::new(0usize));
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let client = client.clone();
        let done = done.clone();
        let failures = failures.clone();
        let clock = clock.clone();
        let first = c as u64 * jobs;
        tasks.push(tokio::spawn(async move {
            let mut results = client.run_many((first..first + jobs).map(request), 16);
            while let Some((i, r)) = results.next().await {
                match r {
                    Ok(_) => done.lock().unwrap()[c].push(clock.now()),
                    Err(e) => {
                        eprintln!("client {c} job {i}: {e}");
                        *failures.lock().unwrap() += 1;
                    }
                }
            }
        }));
    }
    if let Some((victim, at)) = kill {
        tokio::time::sleep(at).await;
        tasks[victim].abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    let done = done.lock().unwrap().clone();
    let failures = *failures.lock().unwrap();
    Run {
        done,
        failures,
        end: clock.now(),
    }
}

/// The share of keyed calls answered `429` from `from` on.
pub fn refused_share(server: &MockServer, from: Duration) -> f64 {
    let keyed: Vec<_> = server
        .request_log()
        .into_iter()
        .filter(|e| e.path.starts_with("/v2/") && e.at >= from)
        .collect();
    let refused = keyed.iter().filter(|e| e.status == Some(429)).count();
    refused as f64 / keyed.len().max(1) as f64
}

/// Jobs a minute over `from..to`, per client.
pub fn rates(run: &Run, from: Duration, to: Duration) -> Vec<f64> {
    let minutes = to.saturating_sub(from).as_secs_f64() / 60.0;
    run.done
        .iter()
        .map(|d| d.iter().filter(|&&t| t >= from && t <= to).count() as f64 / minutes)
        .collect()
}

/// The most any client's share of `rates` is off the fair share, as a
/// fraction of it.
pub fn unfairness(rates: &[f64]) -> f64 {
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    rates
        .iter()
        .map(|r| (r - mean).abs() / mean)
        .fold(0.0, f64::max)
}
