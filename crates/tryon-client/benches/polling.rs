//! Polling efficiency in virtual time (no real sleeping): the client's
//! default (`ModelAwarePolling`, polling the result URL, learning the
//! service's speed) against the official SDK's pattern (a status poll
//! every second, then the result), job by job against the mock.
//!
//! Processing times follow the mock's realistic profile
//! (`RealisticProfile::default()`: 2 s per garment, turbo 1 s per garment
//! capped at 4 s, ±10 % jitter) scaled by the service's *speed*: ×0.05,
//! ×0.5, ×1 and ×3 the published figures, with no queue; and at ×1 with a
//! queue: the realistic profile's exponential wait (mean 0.5 s, cap 5 s)
//! and a log-normal spread around 10 s (median 10 s, σ = 0.5). Draws come
//! from a seeded generator (xoshiro256++), so the bench knows each job's
//! true completion time, and both sides get the same draws. One job at a
//! time, so virtual time is exact. Each row is a fresh client, so it starts
//! from the published figures and learns as it goes.
//!
//! Reads per job are the GETs of its status and result URLs in the mock's
//! journal (the SDK's status polls and its result read; the client's result
//! polls). Detection delay is the virtual time a poll saw the job
//! completed minus its completion time. Both count from job 21 on (the
//! first 20 are the client's learning). Goals, in every row: a mean
//! detection delay no worse than the SDK's, and at most half its reads.
//!
//! `cargo bench -p tryon-client --bench polling`
#![allow(clippy::print_stdout, reason = "a bench binary prints its table")]
#![allow(clippy::cast_precision_loss)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt as _, SeedableRng as _};
use tryon_client::Client;
use tryon_client::test_util::VirtualClock;
use tryon_mock::{MockClock, MockServer, RealisticProfile, Stages, Timing};

mod common;
use common::{KEY, Sdk, request, wire_body};

const JOBS: usize = 50;
/// Jobs left out of the figures: the client's learning.
const WARMUP: usize = 20;
const SEED: u64 = 20_240_601;

#[derive(Clone, Copy)]
enum Queue {
    None,
    Exponential,
    LogNormal,
}

impl Queue {
    fn label(self) -> &'static str {
        match self {
            Queue::None => "none",
            Queue::Exponential => "exp, mean 0.5 s",
            Queue::LogNormal => "log-normal ~10 s",
        }
    }

    fn draw(self, rng: &mut Xoshiro256PlusPlus, p: &RealisticProfile) -> Duration {
        let secs = match self {
            Queue::None => 0.0,
            Queue::Exponential => (-p.mean_queue_wait.as_secs_f64()
                * (1.0 - rng.random::<f64>()).ln())
            .min(p.max_queue_wait.as_secs_f64()),
            Queue::LogNormal => {
                // Box–Muller.
                let (u1, u2) = (rng.random::<f64>().max(1e-12), rng.random::<f64>());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (10f64.ln() + 0.5 * z).exp()
            }
        };
        Duration::from_secs_f64(secs.max(0.0))
    }
}

#[derive(Clone, Copy)]
struct Kind {
    label: &'static str,
    garments: usize,
    turbo: bool,
}

const KINDS: [Kind; 5] = [
    Kind {
        label: "1 garment",
        garments: 1,
        turbo: false,
    },
    Kind {
        label: "3 garments",
        garments: 3,
        turbo: false,
    },
    Kind {
        label: "11 garments",
        garments: 11,
        turbo: false,
    },
    Kind {
        label: "turbo, 1 garment",
        garments: 1,
        turbo: true,
    },
    Kind {
        label: "turbo, 4 garments",
        garments: 4,
        turbo: true,
    },
];

fn processing(
    kind: Kind,
    speed: f64,
    rng: &mut Xoshiro256PlusPlus,
    p: &RealisticProfile,
) -> Duration {
    let n = kind.garments as f64;
    let base = if kind.turbo {
        (p.turbo_per_garment.as_secs_f64() * n).min(p.turbo_max.as_secs_f64())
    } else {
        p.per_garment.as_secs_f64() * n
    };
    let jitter = 1.0 + p.jitter * (2.0 * rng.random::<f64>() - 1.0);
    Duration::from_secs_f64(base * speed * jitter)
}

#[derive(Default, Clone, Copy)]
struct Totals {
    reads: usize,
    delay: Duration,
    max_delay: Duration,
    jobs: usize,
}

impl Totals {
    fn add(&mut self, o: Totals) {
        self.reads += o.reads;
        self.delay += o.delay;
        self.max_delay = self.max_delay.max(o.max_delay);
        self.jobs += o.jobs;
    }
    fn reads_per_job(self) -> f64 {
        self.reads as f64 / self.jobs.max(1) as f64
    }
    fn mean_delay(self) -> f64 {
        self.delay.as_secs_f64() / self.jobs.max(1) as f64
    }
}

/// Who polls: the client (its defaults) or the SDK's pattern.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Sdk,
}

/// Runs the jobs one at a time; reads and detection delays from job
/// `WARMUP + 1` on.
async fn measure(side: Side, kind: Kind, stages: &[Stages]) -> Totals {
    let queue: Arc<Mutex<VecDeque<Stages>>> =
        Arc::new(Mutex::new(stages.iter().copied().collect()));
    let q = queue.clone();
    let server = MockServer::builder()
        .virtual_time()
        .timing(Timing::per_request(move |_| {
            q.lock()
                .expect("stage queue")
                .pop_front()
                .expect("a stage per job")
        }))
        .start()
        .await;
    let clock = VirtualClock::following(server.clock(), MockClock::now, MockClock::advance);
    let client = Client::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .clock(clock.clone())
        .build()
        .expect("a client");
    let sdk = Sdk::new(&server.uri(), clock);
    let mut t = Totals::default();
    let mut measured_from = 0;
    for (i, s) in stages.iter().enumerate() {
        if i == WARMUP {
            measured_from = server.request_log().len();
        }
        let submitted_at = server.now();
        let done_at = submitted_at + s.queued + s.processing;
        let seen_at = match side {
            Side::Client => {
                let job = client
                    .submit(&request(kind.garments, kind.turbo, i as u64))
                    .await
                    .expect("submit");
                job.wait().await.unwrap_or_else(|e| panic!("job {i}: {e}"));
                server.now()
            }
            Side::Sdk => sdk
                .run(wire_body(kind.garments, kind.turbo, i as u64))
                .await
                .unwrap_or_else(|e| panic!("job {i}: {e}")),
        };
        if i < WARMUP {
            continue;
        }
        let delay = seen_at.saturating_sub(done_at);
        t.delay += delay;
        t.max_delay = t.max_delay.max(delay);
        t.jobs += 1;
    }
    t.reads = server.request_log()[measured_from..]
        .iter()
        .filter(|e| e.method == "GET" && e.path.starts_with("/v2/requests/"))
        .count();
    t
}

fn main() {
    common::block_on(run());
}

/// A row of the table: the service's speed and its queue.
#[derive(Clone, Copy)]
struct Service {
    speed: f64,
    queue: Queue,
}

async fn run() {
    let profile = RealisticProfile::default();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    let (mut all_client, mut all_sdk) = (Totals::default(), Totals::default());
    let mut missed = Vec::new();
    let mut services: Vec<Service> = [0.05, 0.5, 1.0, 3.0]
        .into_iter()
        .map(|speed| Service {
            speed,
            queue: Queue::None,
        })
        .collect();
    for queue in [Queue::Exponential, Queue::LogNormal] {
        services.push(Service { speed: 1.0, queue });
    }
    println!(
        "### Polling efficiency (virtual time, {JOBS} jobs per row, the first {WARMUP} left out, seed {SEED})"
    );
    println!();
    println!(
        "| speed | queue | job | reads/job client | reads/job SDK | reads ratio | mean delay client | mean delay SDK | max delay client | max delay SDK |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for service in services {
        for kind in KINDS {
            let stages: Vec<Stages> = (0..JOBS)
                .map(|_| {
                    let q = service.queue.draw(&mut rng, &profile);
                    Stages::new(q, processing(kind, service.speed, &mut rng, &profile))
                })
                .collect();
            let client = measure(Side::Client, kind, &stages).await;
            let sdk = measure(Side::Sdk, kind, &stages).await;
            all_client.add(client);
            all_sdk.add(sdk);
            let ratio = client.reads as f64 / sdk.reads.max(1) as f64;
            let (dc, ds) = (client.mean_delay(), sdk.mean_delay());
            let row = format!(
                "×{} {} {}",
                service.speed,
                service.queue.label(),
                kind.label
            );
            if ratio > 0.5 {
                missed.push(format!("{row}: reads {ratio:.2}×"));
            }
            if dc > ds {
                missed.push(format!("{row}: delay {dc:.3} s > {ds:.3} s"));
            }
            println!(
                "| ×{} | {} | {} | {:.2} | {:.2} | {ratio:.2}× | {dc:.3} s | {ds:.3} s | {:.3} s | {:.3} s |",
                service.speed,
                service.queue.label(),
                kind.label,
                client.reads_per_job(),
                sdk.reads_per_job(),
                client.max_delay.as_secs_f64(),
                sdk.max_delay.as_secs_f64(),
            );
        }
    }
    let ratio = all_client.reads as f64 / all_sdk.reads.max(1) as f64;
    let (dc, ds) = (all_client.mean_delay(), all_sdk.mean_delay());
    println!(
        "| **all** | | **{} jobs** | **{:.2}** | **{:.2}** | **{ratio:.2}×** | **{dc:.3} s** | **{ds:.3} s** | {:.3} s | {:.3} s |",
        all_client.jobs,
        all_client.reads_per_job(),
        all_sdk.reads_per_job(),
        all_client.max_delay.as_secs_f64(),
        all_sdk.max_delay.as_secs_f64(),
    );
    println!();
    if missed.is_empty() {
        println!(
            "Goals (every row: reads ≤ 0.5× the SDK's, mean delay ≤ the SDK's): met in every row."
        );
    } else {
        println!(
            "Goals (every row: reads ≤ 0.5× the SDK's, mean delay ≤ the SDK's): MISSED in {} place(s): {}.",
            missed.len(),
            missed.join("; ")
        );
    }
    println!();
}
