//! Polling efficiency in virtual time (no real sleeping): the client's
//! default policy (`ModelAwarePolling`) versus fixed 1 s polling (the
//! official SDK's), job by job against the mock.
//!
//! Processing times follow the mock's realistic profile
//! (`RealisticProfile::default()`: 2 s per garment, turbo 1 s per garment
//! capped at 4 s, ±10 % jitter), drawn here from a seeded generator (xoshiro256++) so the
//! bench knows each job's true completion time. Queue waits: none; the
//! realistic profile's exponential wait (mean 0.5 s, cap 5 s); and a
//! log-normal spread around 10 s (median 10 s, σ = 0.5). The same draws feed
//! both policies. One job at a time, so virtual time is exact.
//!
//! Polls per job are the status calls in the mock's journal. Detection delay
//! is the virtual time the client saw `COMPLETED` minus the job's completion
//! time. Goals: ≤ 0.5× the polls of fixed 1 s polling across the set, with a
//! mean detection delay no worse than fixed polling's.
//!
//! `cargo bench -p tryon-client --bench polling`
#![allow(clippy::print_stdout, reason = "a bench binary prints its table")]
#![allow(clippy::cast_precision_loss)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt as _, SeedableRng as _};
use tryon_client::poll::{FixedPolling, ModelAwarePolling, PollPolicy};
use tryon_client::test_util::VirtualClock;
use tryon_client::{Client, Status};
use tryon_mock::{MockClock, MockServer, RealisticProfile, Stages, Timing};

mod common;
use common::{KEY, request};

const JOBS: usize = 50;
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

fn processing(kind: Kind, rng: &mut Xoshiro256PlusPlus, p: &RealisticProfile) -> Duration {
    let n = kind.garments as f64;
    let base = if kind.turbo {
        (p.turbo_per_garment.as_secs_f64() * n).min(p.turbo_max.as_secs_f64())
    } else {
        p.per_garment.as_secs_f64() * n
    };
    Duration::from_secs_f64(base * (1.0 + p.jitter * (2.0 * rng.random::<f64>() - 1.0)))
}

#[derive(Default, Clone, Copy)]
struct Totals {
    polls: usize,
    delay: Duration,
    max_delay: Duration,
    jobs: usize,
}

impl Totals {
    fn add(&mut self, o: Totals) {
        self.polls += o.polls;
        self.delay += o.delay;
        self.max_delay = self.max_delay.max(o.max_delay);
        self.jobs += o.jobs;
    }
    fn polls_per_job(self) -> f64 {
        self.polls as f64 / self.jobs.max(1) as f64
    }
    fn mean_delay(self) -> f64 {
        self.delay.as_secs_f64() / self.jobs.max(1) as f64
    }
}

/// Runs the jobs one at a time with `policy`; polls and detection delays.
async fn measure(policy: impl PollPolicy, kind: Kind, stages: &[Stages]) -> Totals {
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
        .poll_policy(policy)
        .build()
        .expect("a client");
    let mut t = Totals::default();
    for (i, s) in stages.iter().enumerate() {
        let submitted_at = server.now();
        let job = client
            .submit(&request(kind.garments, kind.turbo, i as u64))
            .await
            .expect("submit");
        let done_at = submitted_at + s.queued + s.processing;
        let mut events = Box::pin(job.events());
        loop {
            match events.next().await {
                Some(Ok(Status::Completed)) => break,
                Some(Ok(_)) => {}
                other => panic!("job {i}: unexpected {other:?}"),
            }
        }
        let delay = server.now().saturating_sub(done_at);
        t.delay += delay;
        t.max_delay = t.max_delay.max(delay);
        t.jobs += 1;
    }
    t.polls = server
        .request_log()
        .iter()
        .filter(|e| e.path.ends_with("/status"))
        .count();
    t
}

fn main() {
    common::block_on(run());
}

async fn run() {
    let profile = RealisticProfile::default();
    let fixed = FixedPolling {
        interval: Duration::from_secs(1),
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    let (mut all_aware, mut all_fixed) = (Totals::default(), Totals::default());
    println!("### Polling efficiency (virtual time, {JOBS} jobs per row, seed {SEED})");
    println!();
    println!(
        "| queue | job | polls/job default | polls/job fixed 1 s | polls ratio | mean delay default | mean delay fixed 1 s | max delay default | max delay fixed 1 s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for queue in [Queue::None, Queue::Exponential, Queue::LogNormal] {
        for kind in KINDS {
            let stages: Vec<Stages> = (0..JOBS)
                .map(|_| {
                    let q = queue.draw(&mut rng, &profile);
                    Stages::new(q, processing(kind, &mut rng, &profile))
                })
                .collect();
            let aware = measure(ModelAwarePolling::default(), kind, &stages).await;
            let fix = measure(fixed, kind, &stages).await;
            all_aware.add(aware);
            all_fixed.add(fix);
            println!(
                "| {} | {} | {:.2} | {:.2} | {:.2}× | {:.3} s | {:.3} s | {:.3} s | {:.3} s |",
                queue.label(),
                kind.label,
                aware.polls_per_job(),
                fix.polls_per_job(),
                aware.polls as f64 / fix.polls.max(1) as f64,
                aware.mean_delay(),
                fix.mean_delay(),
                aware.max_delay.as_secs_f64(),
                fix.max_delay.as_secs_f64(),
            );
        }
    }
    let ratio = all_aware.polls as f64 / all_fixed.polls.max(1) as f64;
    let (da, df) = (all_aware.mean_delay(), all_fixed.mean_delay());
    println!(
        "| **all** | **{} jobs** | **{:.2}** | **{:.2}** | **{ratio:.2}×** (goal ≤ 0.5×: {}) | **{da:.3} s** | **{df:.3} s** (goal: default ≤ fixed: {}) | {:.3} s | {:.3} s |",
        all_aware.jobs,
        all_aware.polls_per_job(),
        all_fixed.polls_per_job(),
        if ratio <= 0.5 { "met" } else { "MISSED" },
        if da <= df { "met" } else { "MISSED" },
        all_aware.max_delay.as_secs_f64(),
        all_fixed.max_delay.as_secs_f64(),
    );
    println!();
}
