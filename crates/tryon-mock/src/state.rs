//! Per-server state: jobs, billing, buckets, faults, journal. Job status is
//! derived from the clock when asked, so nothing runs in the background.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tryon_api::types::{JobStatus, OutputFormat, TryOnInput};
use uuid::Uuid;

use crate::clock::MockClock;
use crate::config::{
    Credits, FailRule, JobMatch, MockConfig, RateLimit, RateScope, Stages, Timing,
};
use crate::fault::{Fault, FaultKind, Route};
use crate::journal::JournalEntry;
use crate::limits;
use crate::render::{self, Render, RenderInput};

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
    /// Tokens left (token bucket), or requests taken in the window.
    tokens: f64,
    /// Last refill (token bucket), or the window's start.
    at: Duration,
}

/// Takes a token of `key`'s bucket, or says how many seconds until one.
fn take_from_bucket(
    buckets: &mut HashMap<String, Bucket>,
    key: &str,
    rate: &RateLimit,
    now: Duration,
) -> Option<f64> {
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
        return None;
    }
    Some(if rate.per_second > 0.0 {
        (1.0 - b.tokens) / rate.per_second
    } else {
        3600.0
    })
}

/// Counts a request in `key`'s fixed window, or says how many seconds
/// until the window ends.
fn take_from_window(
    buckets: &mut HashMap<String, Bucket>,
    key: &str,
    rate: &RateLimit,
    window: f64,
    now: Duration,
) -> Option<f64> {
    let t = now.as_secs_f64();
    let start = (t / window).floor() * window;
    let allowed = (rate.per_second * window).floor().max(1.0);
    let b = buckets.entry(key.to_string()).or_insert(Bucket {
        tokens: 0.0,
        at: Duration::ZERO,
    });
    let start_at = Duration::from_secs_f64(start);
    if b.at != start_at {
        b.at = start_at;
        b.tokens = 0.0;
    }
    if b.tokens < allowed {
        b.tokens += 1.0;
        return None;
    }
    Some(start + window - t)
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
    pub(crate) max_uploads: usize,
    pub(crate) max_upload_bytes: usize,
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
            max_uploads: c.max_uploads,
            max_upload_bytes: c.max_upload_bytes,
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
    /// A content type sniffed from the bytes (never the uploader's).
    pub(crate) mime: &'static str,
    pub(crate) bytes: Bytes,
}

/// Uploads, oldest first, bounded in count and bytes.
#[derive(Default)]
pub(crate) struct Assets {
    map: HashMap<Uuid, Asset>,
    order: VecDeque<Uuid>,
    bytes: usize,
}

impl Assets {
    pub(crate) fn get(&self, id: &Uuid) -> Option<&Asset> {
        self.map.get(id)
    }

    /// Stores `asset`, evicting the oldest uploads until both bounds hold.
    fn insert(&mut self, id: Uuid, asset: Asset, max_count: usize, max_bytes: usize) {
        self.bytes = self.bytes.saturating_add(asset.bytes.len());
        self.map.insert(id, asset);
        self.order.push_back(id);
        while self.order.len() > max_count || self.bytes > max_bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(a) = self.map.remove(&old) {
                self.bytes = self.bytes.saturating_sub(a.bytes.len());
            }
        }
    }
}

pub(crate) struct State {
    pub(crate) clock: MockClock,
    pub(crate) initial: MockConfig,
    pub(crate) settings: Mutex<Settings>,
    pub(crate) jobs: Mutex<Jobs>,
    pub(crate) journal: Mutex<VecDeque<JournalEntry>>,
    pub(crate) billing: Mutex<Billing>,
    pub(crate) buckets: Mutex<HashMap<String, Bucket>>,
    pub(crate) assets: Mutex<Assets>,
    /// The base of every absolute URL the mock writes: the public URL, or
    /// the address it listens on (never a request's `Host` header).
    pub(crate) base_url: String,
    /// When set, every `/__mock/` call must carry
    /// `Authorization: Bearer <token>`.
    pub(crate) control_token: Option<String>,
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
        base_url: String,
        control_token: Option<String>,
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
            assets: Mutex::new(Assets::default()),
            base_url,
            control_token,
            expected_submits: Mutex::new(None),
            #[cfg(feature = "spec-check")]
            spec: None,
        }
    }

    /// Back to the configuration the server started with: no jobs, no
    /// journal, no billing, no uploads, initial faults, and the clock's
    /// advances taken back.
    pub(crate) fn reset(&self) {
        self.clock.reset();
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
        *lock(&self.assets) = Assets::default();
    }

    /// Auth, then rate limit. `key` is the `x-api-key` header; `submit`
    /// says whether the request is a submit (for a submits-only limit).
    pub(crate) fn admit(&self, key: Option<&str>, submit: bool) -> Result<(), Refusal> {
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
        let Some(rate) = rate.filter(|r| submit || r.scope == RateScope::AllKeyed) else {
            return Ok(());
        };
        let now = self.clock.now();
        let mut buckets = lock(&self.buckets);
        let wait = match rate.window_secs {
            Some(window) => take_from_window(&mut buckets, key, &rate, window, now),
            None => take_from_bucket(&mut buckets, key, &rate, now),
        };
        match wait {
            None => Ok(()),
            // Whole seconds, at least 1.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some(wait) => Err(Refusal::RateLimited {
                retry_after_secs: wait.ceil().clamp(1.0, 86_400.0) as u64,
            }),
        }
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
    /// `render` is what the output is drawn from (see [`RenderInput`]).
    pub(crate) fn accept(&self, input: &TryOnInput, render: RenderInput) -> Accepted {
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
            Timing::PerRequest(f) => limits::clamp_stages((f.0)(input)),
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
        // Every sum saturates: stage lengths and retention are bounded, but
        // no value may make time arithmetic panic.
        let ready = now.saturating_add(stages.queued);
        let started = match workers {
            Some(w) if w > 0 => {
                let free = if jobs.workers.len() < w {
                    Duration::ZERO
                } else {
                    jobs.workers.pop().map_or(Duration::ZERO, |Reverse(t)| t)
                };
                let start = ready.max(free);
                jobs.workers
                    .push(Reverse(start.saturating_add(stages.processing)));
                start
            }
            _ => ready,
        };
        let render = failure.is_none().then(|| Render::new(render));
        let job = Job {
            submitted: now,
            started,
            done: started.saturating_add(stages.processing),
            expires: now.saturating_add(retention),
            failure: failure.clone().map(String::into_boxed_str),
            format: input.output_format.unwrap_or_default(),
            render: render.clone(),
        };
        jobs.map.insert(id, job);
        jobs.since_sweep += 1;
        if jobs.since_sweep >= 4096 {
            jobs.since_sweep = 0;
            jobs.map.retain(|_, j| j.expires > now);
        }
        Accepted {
            id,
            failure,
            stages,
            render,
        }
    }

    /// Looks a job up; `None` if unknown or expired (expired jobs are
    /// removed).
    /// Only the canonical form of an id (lowercase, hyphenated, as the
    /// mock wrote it) names a job: `urn:uuid:…`, braces, upper case or
    /// unhyphenated forms are unknown ids.
    pub(crate) fn job(&self, id: &str) -> Option<JobView> {
        let id = canonical_id(id)?;
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
            format: job.format,
            render: job.render.clone(),
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
                    latency = latency.saturating_add(*d);
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
        let latency = latency.min(Duration::from_secs(limits::MAX_LATENCY_SECS));
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

/// The setters behind both [`MockServer`](crate::MockServer)'s methods and
/// the control API: each checks its value against [`limits`] and says what
/// is wrong, naming the field.
impl State {
    /// Moves the clock, refusing a value out of bounds.
    pub(crate) fn advance_by_secs(&self, seconds: f64) -> Result<Duration, String> {
        let max = limits::MAX_DURATION_SECS;
        #[allow(clippy::cast_precision_loss)]
        if !seconds.is_finite() || seconds < 0.0 || seconds > max as f64 {
            return Err(format!("seconds: {seconds} given, must be from 0 to {max}"));
        }
        self.clock
            .try_advance(Duration::try_from_secs_f64(seconds).map_err(|e| format!("seconds: {e}"))?)
    }

    pub(crate) fn push_faults(&self, faults: Vec<Fault>) -> Result<usize, String> {
        let mut s = lock(&self.settings);
        limits::faults(&faults, s.faults.len())?;
        s.faults
            .extend(faults.into_iter().map(|fault| ActiveFault { fault }));
        Ok(s.faults.len())
    }

    pub(crate) fn faults(&self) -> Vec<Fault> {
        lock(&self.settings)
            .faults
            .iter()
            .map(|f| f.fault.clone())
            .collect()
    }

    pub(crate) fn clear_faults(&self) {
        lock(&self.settings).faults.clear();
    }

    pub(crate) fn set_fail_rules(&self, rules: Vec<FailRule>) -> Result<(), String> {
        limits::fail_rules(&rules)?;
        lock(&self.settings).fail_rules = rules;
        Ok(())
    }

    pub(crate) fn push_fail_rule(&self, rule: FailRule) -> Result<(), String> {
        let mut s = lock(&self.settings);
        let mut rules = s.fail_rules.clone();
        rules.push(rule);
        limits::fail_rules(&rules)?;
        s.fail_rules = rules;
        Ok(())
    }

    pub(crate) fn set_rate_limit(&self, limit: Option<RateLimit>) -> Result<(), String> {
        limits::rate_limit(limit.as_ref())?;
        lock(&self.settings).rate_limit = limit;
        lock(&self.buckets).clear();
        Ok(())
    }

    pub(crate) fn set_keys(&self, keys: Option<Vec<String>>) -> Result<(), String> {
        limits::keys(keys.as_deref())?;
        lock(&self.settings).keys = keys;
        Ok(())
    }

    pub(crate) fn set_credits(&self, credits: Option<Credits>) -> Result<(), String> {
        limits::credits(credits.as_ref())?;
        lock(&self.settings).credits = credits;
        Ok(())
    }

    pub(crate) fn set_timing(&self, timing: Timing) -> Result<(), String> {
        limits::timing(&timing)?;
        lock(&self.settings).timing = timing;
        Ok(())
    }

    pub(crate) fn journal(&self) -> Vec<JournalEntry> {
        lock(&self.journal).iter().cloned().collect()
    }

    /// Billed jobs in all, and for `key` with its balance.
    pub(crate) fn billing(&self, key: Option<&str>) -> (u64, Option<(u64, Option<f64>)>) {
        let b = lock(&self.billing);
        let for_key = key.map(|k| {
            (
                b.per_key.get(k).copied().unwrap_or(0),
                b.balances.get(k).copied(),
            )
        });
        (b.total, for_key)
    }

    /// Resolves an image reference to its bytes when the mock holds them:
    /// a `data:` URI, or one of its own upload URLs.
    pub(crate) fn resolve_image(&self, reference: &str) -> Option<Bytes> {
        if reference.starts_with("data:") {
            return render::decode_data_uri(reference).map(|(_, b)| Bytes::from(b));
        }
        let id = reference
            .strip_prefix(self.base_url.as_str())?
            .strip_prefix("/assets/")?;
        let id = canonical_id(id)?;
        lock(&self.assets).get(&id).map(|a| a.bytes.clone())
    }

    /// Stores uploads (content types sniffed), returning their ids; the
    /// oldest uploads go first when the bounds are reached.
    pub(crate) fn store_uploads(&self, files: Vec<Vec<u8>>) -> Vec<Uuid> {
        let (max_count, max_bytes) = {
            let s = lock(&self.settings);
            (s.max_uploads, s.max_upload_bytes)
        };
        let mut assets = lock(&self.assets);
        files
            .into_iter()
            .map(|bytes| {
                let id = Uuid::new_v4();
                let asset = Asset {
                    mime: render::sniff(&bytes),
                    bytes: Bytes::from(bytes),
                };
                assets.insert(id, asset, max_count, max_bytes);
                id
            })
            .collect()
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
