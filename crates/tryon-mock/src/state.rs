//! Per-server state: jobs, billing, buckets, faults, journal. Job status is
//! derived from the clock when asked, so nothing runs in the background.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tryon_api::types::{JobStatus, TryOnInput};
use uuid::Uuid;

use crate::clock::MockClock;
use crate::config::{Credits, FailRule, JobMatch, MockConfig, RateLimit, Stages, Timing};
use crate::fault::{Fault, FaultKind, Route};
use crate::journal::JournalEntry;

/// Locks a mutex, ignoring poisoning: a panicking test thread must not make
/// the mock unusable for the rest of the suite.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) struct Job {
    pub(crate) submitted: Duration,
    pub(crate) started: Duration,
    pub(crate) done: Duration,
    pub(crate) expires: Duration,
    /// `Some(error)` when the job ends `FAILED`.
    pub(crate) failure: Option<Box<str>>,
    pub(crate) input: Arc<TryOnInput>,
}

impl Job {
    pub(crate) fn status_at(&self, now: Duration) -> JobStatus {
        if now < self.started {
            JobStatus::Queued
        } else if now < self.done {
            JobStatus::Processing
        } else if self.failure.is_some() {
            JobStatus::Failed
        } else {
            JobStatus::Completed
        }
    }

    pub(crate) fn inference_time(&self) -> f64 {
        self.done.saturating_sub(self.started).as_secs_f64()
    }
}

/// A snapshot of a job, taken under the lock.
pub(crate) struct JobView {
    pub(crate) status: JobStatus,
    pub(crate) inference_time: f64,
    pub(crate) failure: Option<String>,
    pub(crate) input: Arc<TryOnInput>,
}

#[derive(Default)]
pub(crate) struct Jobs {
    pub(crate) map: HashMap<Uuid, Job>,
    /// Times at which busy workers become free (bounded pools only).
    workers: BinaryHeap<Reverse<Duration>>,
    accepted: u64,
    rng: u64,
    since_sweep: u32,
}

pub(crate) struct Bucket {
    tokens: f64,
    at: Duration,
}

pub(crate) struct ActiveFault {
    pub(crate) fault: Fault,
}

pub(crate) struct Settings {
    pub(crate) timing: Timing,
    pub(crate) workers: Option<usize>,
    pub(crate) retention: Duration,
    pub(crate) keys: Option<Vec<String>>,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) credits: Option<Credits>,
    pub(crate) fail_rules: Vec<FailRule>,
    pub(crate) faults: Vec<ActiveFault>,
    pub(crate) max_body_bytes: usize,
    pub(crate) journal_capacity: usize,
    pub(crate) record_bodies: bool,
    pub(crate) output_size: (u32, u32),
}

impl Settings {
    pub(crate) fn from_config(c: &MockConfig) -> Self {
        Self {
            timing: c.timing.clone(),
            workers: c.workers,
            retention: c.retention,
            keys: c.keys.clone(),
            rate_limit: c.rate_limit,
            credits: c.credits.clone(),
            fail_rules: c.fail_rules.clone(),
            faults: c
                .faults
                .iter()
                .cloned()
                .map(|fault| ActiveFault { fault })
                .collect(),
            max_body_bytes: c.max_body_bytes,
            journal_capacity: c.journal_capacity,
            record_bodies: c.record_bodies,
            output_size: c.output_size,
        }
    }
}

#[derive(Default)]
pub(crate) struct Billing {
    pub(crate) total: u64,
    pub(crate) per_key: HashMap<String, u64>,
    pub(crate) balances: HashMap<String, f64>,
}

/// A stored upload.
pub(crate) struct Asset {
    pub(crate) mime: String,
    pub(crate) bytes: bytes::Bytes,
}

pub(crate) struct State {
    pub(crate) clock: MockClock,
    pub(crate) initial: MockConfig,
    pub(crate) settings: Mutex<Settings>,
    pub(crate) jobs: Mutex<Jobs>,
    pub(crate) journal: Mutex<VecDeque<JournalEntry>>,
    pub(crate) billing: Mutex<Billing>,
    pub(crate) buckets: Mutex<HashMap<String, Bucket>>,
    pub(crate) assets: Mutex<HashMap<Uuid, Asset>>,
    /// Fixed base URL, or `None` to take it from the `Host` header (a mock
    /// bound to an unspecified address).
    pub(crate) base_url: Option<String>,
    pub(crate) fallback_base: String,
    pub(crate) expected_submits: Mutex<Option<u64>>,
    /// `Some` when every JSON body sent is checked against the spec.
    #[cfg(feature = "spec-check")]
    pub(crate) spec: Option<Mutex<crate::spec_check::SpecReport>>,
}

/// What the auth / limits / credits checks decided.
#[derive(Clone, Copy)]
pub(crate) enum Refusal {
    Unauthorized(&'static str),
    RateLimited { retry_after_secs: u64 },
    NoCredits,
}

impl State {
    pub(crate) fn new(
        config: MockConfig,
        clock: MockClock,
        base_url: Option<String>,
        fallback_base: String,
    ) -> Self {
        let rng = match &config.timing {
            Timing::Realistic(p) => p.seed,
            _ => 1,
        };
        Self {
            clock,
            settings: Mutex::new(Settings::from_config(&config)),
            initial: config,
            jobs: Mutex::new(Jobs {
                rng,
                ..Jobs::default()
            }),
            journal: Mutex::new(VecDeque::new()),
            billing: Mutex::new(Billing::default()),
            buckets: Mutex::new(HashMap::new()),
            assets: Mutex::new(HashMap::new()),
            base_url,
            fallback_base,
            expected_submits: Mutex::new(None),
            #[cfg(feature = "spec-check")]
            spec: None,
        }
    }

    /// Back to the configuration the server started with: no jobs, no
    /// journal, no billing, initial faults. The clock keeps its time.
    pub(crate) fn reset(&self) {
        *lock(&self.settings) = Settings::from_config(&self.initial);
        let rng = match &self.initial.timing {
            Timing::Realistic(p) => p.seed,
            _ => 1,
        };
        *lock(&self.jobs) = Jobs {
            rng,
            ..Jobs::default()
        };
        lock(&self.journal).clear();
        *lock(&self.billing) = Billing::default();
        lock(&self.buckets).clear();
        lock(&self.assets).clear();
    }

    /// Auth, then rate limit. `key` is the `x-api-key` header.
    pub(crate) fn admit(&self, key: Option<&str>) -> Result<(), Refusal> {
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Err(Refusal::Unauthorized("Unauthorized: missing API key"));
        };
        let rate = {
            let s = lock(&self.settings);
            if let Some(keys) = &s.keys
                && !keys.iter().any(|k| k == key)
            {
                return Err(Refusal::Unauthorized("Unauthorized: invalid API key"));
            }
            s.rate_limit
        };
        if let Some(rate) = rate {
            let now = self.clock.now();
            let mut buckets = lock(&self.buckets);
            let burst = f64::from(rate.burst.max(1));
            let b = buckets.entry(key.to_string()).or_insert(Bucket {
                tokens: burst,
                at: now,
            });
            let elapsed = now.saturating_sub(b.at).as_secs_f64();
            b.tokens = (b.tokens + elapsed * rate.per_second).min(burst);
            b.at = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
            } else {
                let wait = if rate.per_second > 0.0 {
                    (1.0 - b.tokens) / rate.per_second
                } else {
                    3600.0
                };
                // Whole seconds, at least 1.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let secs = wait.ceil().clamp(1.0, 86_400.0) as u64;
                return Err(Refusal::RateLimited {
                    retry_after_secs: secs,
                });
            }
        }
        Ok(())
    }

    /// Charges `key` for a job with `garments` garments, or refuses.
    pub(crate) fn charge(&self, key: &str, garments: usize) -> Result<(), Refusal> {
        let Some(credits) = lock(&self.settings).credits.clone() else {
            return Ok(());
        };
        let cost = credits.cost(garments);
        let mut billing = lock(&self.billing);
        let balance = billing
            .balances
            .entry(key.to_string())
            .or_insert(credits.balance);
        // A tiny tolerance so that float sums like 0.015 * n still pay.
        if *balance + 1e-9 < cost {
            return Err(Refusal::NoCredits);
        }
        *balance -= cost;
        Ok(())
    }

    pub(crate) fn bill(&self, key: &str) {
        let mut billing = lock(&self.billing);
        billing.total += 1;
        *billing.per_key.entry(key.to_string()).or_insert(0) += 1;
    }

    /// Decides stages and outcome of a newly accepted job, and stores it.
    /// Returns its id and `Some(error)` if it will fail.
    pub(crate) fn accept(&self, input: TryOnInput) -> (Uuid, Option<String>, Stages) {
        let (timing, workers, retention, rules) = {
            let s = lock(&self.settings);
            (
                s.timing.clone(),
                s.workers,
                s.retention,
                s.fail_rules.clone(),
            )
        };
        let now = self.clock.now();
        let id = Uuid::new_v4();
        let mut jobs = lock(&self.jobs);
        jobs.accepted += 1;
        let nth = jobs.accepted;
        let stages = match &timing {
            Timing::Fixed(s) => *s,
            Timing::PerRequest(f) => (f.0)(&input),
            Timing::Realistic(p) => {
                let u1 = next_unit(&mut jobs.rng);
                let u2 = next_unit(&mut jobs.rng);
                let wait = (-p.mean_queue_wait.as_secs_f64() * (1.0 - u1).ln())
                    .min(p.max_queue_wait.as_secs_f64())
                    .max(0.0);
                #[allow(clippy::cast_precision_loss)]
                let n = input.garment_images.len().max(1) as f64;
                let base = if input.turbo {
                    (p.turbo_per_garment.as_secs_f64() * n).min(p.turbo_max.as_secs_f64())
                } else {
                    p.per_garment.as_secs_f64() * n
                };
                let processing = (base * (1.0 + p.jitter * (2.0 * u2 - 1.0))).max(0.0);
                Stages::new(
                    Duration::try_from_secs_f64(wait).unwrap_or_default(),
                    Duration::try_from_secs_f64(processing).unwrap_or_default(),
                )
            }
        };
        let failure = rules
            .iter()
            .find(|r| match &r.matches {
                JobMatch::Seed(s) => input.seed == Some(*s),
                JobMatch::PromptContains(t) => input.prompt.contains(t.as_str()),
                JobMatch::EveryNth(n) => *n > 0 && nth.is_multiple_of(*n),
                JobMatch::All => true,
            })
            .map(|r| r.error.clone());
        let ready = now + stages.queued;
        let started = match workers {
            Some(w) if w > 0 => {
                let free = if jobs.workers.len() < w {
                    Duration::ZERO
                } else {
                    jobs.workers.pop().map_or(Duration::ZERO, |Reverse(t)| t)
                };
                let start = ready.max(free);
                jobs.workers.push(Reverse(start + stages.processing));
                start
            }
            _ => ready,
        };
        let job = Job {
            submitted: now,
            started,
            done: started + stages.processing,
            expires: now + retention,
            failure: failure.clone().map(String::into_boxed_str),
            input: Arc::new(input),
        };
        jobs.map.insert(id, job);
        jobs.since_sweep += 1;
        if jobs.since_sweep >= 4096 {
            jobs.since_sweep = 0;
            jobs.map.retain(|_, j| j.expires > now);
        }
        (id, failure, stages)
    }

    /// Looks a job up; `None` if unknown or expired (expired jobs are
    /// removed).
    pub(crate) fn job(&self, id: &str) -> Option<JobView> {
        let id = Uuid::parse_str(id).ok()?;
        let now = self.clock.now();
        let mut jobs = lock(&self.jobs);
        let job = jobs.map.get(&id)?;
        if now >= job.expires {
            jobs.map.remove(&id);
            return None;
        }
        debug_assert!(job.submitted <= job.started);
        Some(JobView {
            status: job.status_at(now),
            inference_time: job.inference_time(),
            failure: job.failure.as_deref().map(str::to_string),
            input: Arc::clone(&job.input),
        })
    }

    /// Takes the faults for a call on `route`: the summed latency and at
    /// most one other fault (consumed). `DropAfterAccept` is only peeked;
    /// see [`State::consume_drop_after`].
    pub(crate) fn take_faults(&self, route: Route) -> (Duration, Option<FaultKind>, bool) {
        let mut s = lock(&self.settings);
        if s.faults.is_empty() {
            return (Duration::ZERO, None, false);
        }
        let mut latency = Duration::ZERO;
        let mut action = None;
        let mut drop_after = false;
        for f in &mut s.faults {
            if !f.fault.route.covers(route) {
                continue;
            }
            match &f.fault.kind {
                FaultKind::Latency(d) => {
                    latency += *d;
                    if let Some(t) = &mut f.fault.times {
                        *t = t.saturating_sub(1);
                    }
                }
                FaultKind::DropAfterAccept => drop_after = true,
                kind if action.is_none() => {
                    action = Some(kind.clone());
                    if let Some(t) = &mut f.fault.times {
                        *t = t.saturating_sub(1);
                    }
                }
                _ => {}
            }
        }
        s.faults.retain(|f| f.fault.times != Some(0));
        (latency, action, drop_after)
    }

    pub(crate) fn consume_drop_after(&self, route: Route) {
        let mut s = lock(&self.settings);
        if let Some(f) = s
            .faults
            .iter_mut()
            .find(|f| f.fault.route.covers(route) && f.fault.kind == FaultKind::DropAfterAccept)
            && let Some(t) = &mut f.fault.times
        {
            *t = t.saturating_sub(1);
        }
        s.faults.retain(|f| f.fault.times != Some(0));
    }

    pub(crate) fn record(&self, entry: JournalEntry) {
        let cap = lock(&self.settings).journal_capacity;
        let mut j = lock(&self.journal);
        if cap == 0 {
            return;
        }
        while j.len() >= cap {
            j.pop_front();
        }
        j.push_back(entry);
    }
}

/// splitmix64, mapped to [0, 1).
fn next_unit(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    #[allow(clippy::cast_precision_loss)]
    let v = (z >> 11) as f64 / (1u64 << 53) as f64;
    v
}
