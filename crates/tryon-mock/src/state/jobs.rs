//! Jobs: what the mock stores for each accepted job, how a new job's stages,
//! outcome and start are decided, and a job's status at a given time
//! (derived from the clock when asked, so nothing runs in the background).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tryon_api::types::{JobStatus, OutputFormat, TryOnInput};
use uuid::Uuid;

use crate::checks;
use crate::config::{FailRule, JobMatch, RealisticProfile, Stages, Timing};
use crate::render::Render;

/// Expired jobs are swept out of the map once every this many accepts
/// (a lookup of an expired job removes it too).
const SWEEP_EVERY: u32 = 4096;

pub(crate) struct Job {
    pub(crate) submitted: Duration,
    pub(crate) started: Duration,
    pub(crate) done: Duration,
    pub(crate) expires: Duration,
    /// `Some(error)` when the job ends `FAILED`.
    pub(crate) failure: Option<Box<str>>,
    pub(crate) format: OutputFormat,
    /// The output, rendered once; `None` for a job that fails. The job
    /// keeps no copy of its request body, only what rendering needs until
    /// it has rendered.
    pub(crate) render: Option<Arc<Render>>,
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
    pub(crate) format: OutputFormat,
    pub(crate) render: Option<Arc<Render>>,
}

/// Every stored job, and what deciding a new one needs.
#[derive(Default)]
pub(crate) struct Jobs {
    pub(crate) map: HashMap<Uuid, Job>,
    /// Times at which busy workers become free (bounded pools only).
    workers: BinaryHeap<Reverse<Duration>>,
    accepted: u64,
    /// The seeded generator of the realistic timing.
    rng: u64,
    since_sweep: u32,
}

impl Jobs {
    /// No jobs; the realistic timing's draws start from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: seed,
            ..Self::default()
        }
    }

    /// Counts a newly accepted job; returns its number (1, 2, …).
    pub(crate) fn count_accepted(&mut self) -> u64 {
        self.accepted += 1;
        self.accepted
    }

    /// The stages of a new job under `timing`.
    pub(crate) fn stages_for(&mut self, timing: &Timing, input: &TryOnInput) -> Stages {
        match timing {
            Timing::Fixed(s) => *s,
            Timing::PerRequest(f) => checks::clamp_stages((f.0)(input)),
            Timing::Realistic(p) => self.draw(p, input),
        }
    }

    /// Stages drawn from the realistic profile: an exponential queue wait,
    /// processing per garment with jitter.
    fn draw(&mut self, p: &RealisticProfile, input: &TryOnInput) -> Stages {
        let u1 = next_unit(&mut self.rng);
        let u2 = next_unit(&mut self.rng);
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

    /// When a job ready at `ready` starts: at once without a worker bound;
    /// with `workers`, when the first of them is free, which it then keeps
    /// busy for `processing`. Every sum saturates: stage lengths are
    /// bounded, but no value may make time arithmetic panic.
    pub(crate) fn schedule(
        &mut self,
        workers: Option<usize>,
        ready: Duration,
        processing: Duration,
    ) -> Duration {
        let Some(w) = workers.filter(|w| *w > 0) else {
            return ready;
        };
        let free = if self.workers.len() < w {
            Duration::ZERO
        } else {
            self.workers.pop().map_or(Duration::ZERO, |Reverse(t)| t)
        };
        let start = ready.max(free);
        self.workers.push(Reverse(start.saturating_add(processing)));
        start
    }

    /// Stores `job` under a new id; every [`SWEEP_EVERY`] stores, drops the
    /// jobs expired by `now`.
    pub(crate) fn store(&mut self, job: Job, now: Duration) -> Uuid {
        let id = Uuid::new_v4();
        self.map.insert(id, job);
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            self.map.retain(|_, j| j.expires > now);
        }
        id
    }
}

/// The error of the first rule that makes the `nth` accepted job (from 1)
/// fail, if any.
pub(crate) fn failure_for(rules: &[FailRule], input: &TryOnInput, nth: u64) -> Option<String> {
    rules
        .iter()
        .find(|r| match &r.matches {
            JobMatch::Seed(s) => input.seed == Some(*s),
            JobMatch::PromptContains(t) => input.prompt.contains(t.as_str()),
            JobMatch::EveryNth(n) => *n > 0 && nth.is_multiple_of(*n),
            JobMatch::All => true,
        })
        .map(|r| r.error.clone())
}

/// A newly accepted job.
pub(crate) struct Accepted {
    pub(crate) id: Uuid,
    /// `Some(error)` when the job will end `FAILED`.
    pub(crate) failure: Option<String>,
    pub(crate) stages: Stages,
    pub(crate) render: Option<Arc<Render>>,
}

/// The id if `text` is its canonical form (lowercase, hyphenated).
pub(crate) fn canonical_id(text: &str) -> Option<Uuid> {
    let id = Uuid::try_parse(text).ok()?;
    let mut buf = Uuid::encode_buffer();
    (id.hyphenated().encode_lower(&mut buf) == text).then_some(id)
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
