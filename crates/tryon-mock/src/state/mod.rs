//! Per-server state: jobs, billing, buckets, faults, the request log, and
//! the checks and setters both [`MockServer`](crate::MockServer) and the
//! control API call. Job status is derived from the clock when asked, so
//! nothing runs in the background.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tryon_api::types::TryOnInput;
use uuid::Uuid;

mod billing;
mod buckets;
mod history;
mod jobs;
mod uploads;

use billing::Billing;
use buckets::{Bucket, take_from_bucket, take_from_window};
pub(crate) use history::{History, HistoryQuery, PlacedRow};
pub(crate) use jobs::{Accepted, JobView, canonical_id};
use jobs::{Job, Jobs, failure_for};
use uploads::{Asset, Assets};

use crate::clock::MockClock;
use crate::config::{
    Credits, FailRule, MockConfig, RateLimitRule, RateScope, ResultBeforeCompletion, Timing,
};
use crate::fault::{Fault, FaultKind, FaultRoute};
use crate::render::{self, Render, RenderInput};
use crate::request_log::RequestLogEntry;
use crate::sync::lock;
use crate::{checks, limits};

pub(crate) struct ActiveFault {
    pub(crate) fault: Fault,
}

/// What the faults on a route do to one call (see [`State::take_faults`]).
#[derive(Debug, Default)]
pub(crate) struct CallFaults {
    /// The latency of every matching latency fault, summed (at most
    /// [`MAX_LATENCY_SECS`](limits::MAX_LATENCY_SECS)).
    pub(crate) latency: Duration,
    /// At most one other fault, consumed: a status, a drop before accept,
    /// a mangled body.
    pub(crate) action: Option<FaultKind>,
    /// A `DropAfterAccept` fault matches: taken for this call (so that two
    /// calls at once never both take one left), and given back when the
    /// call does not succeed ([`State::give_back_drop_after`]).
    pub(crate) drop_after_accept: Option<Fault>,
}

/// What the auth / limits / credits checks decided.
#[derive(Clone, Copy)]
pub(crate) enum Refusal {
    Unauthorized(&'static str),
    RateLimited { retry_after_secs: u64 },
    NoCredits,
}

/// The realistic timing's seed, or 1.
fn seed_of(timing: &Timing) -> u64 {
    match timing {
        Timing::Realistic(p) => p.seed,
        _ => 1,
    }
}

pub(crate) struct Settings {
    pub(crate) timing: Timing,
    pub(crate) workers: Option<usize>,
    pub(crate) retention: Duration,
    pub(crate) output_retention: Duration,
    pub(crate) history_delay: Duration,
    pub(crate) history_partial: bool,
    pub(crate) keys: Option<Vec<String>>,
    pub(crate) rate_limit: Option<RateLimitRule>,
    pub(crate) credits: Option<Credits>,
    pub(crate) fail_rules: Vec<FailRule>,
    pub(crate) result_before_completion: ResultBeforeCompletion,
    pub(crate) faults: Vec<ActiveFault>,
    pub(crate) max_body_bytes: usize,
    pub(crate) request_log_capacity: usize,
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
            output_retention: c.output_retention,
            history_delay: c.history_delay,
            history_partial: c.history_partial,
            keys: c.keys.clone(),
            rate_limit: c.rate_limit,
            credits: c.credits.clone(),
            fail_rules: c.fail_rules.clone(),
            result_before_completion: c.result_before_completion,
            faults: c
                .faults
                .iter()
                .cloned()
                .map(|fault| ActiveFault { fault })
                .collect(),
            max_body_bytes: c.max_body_bytes,
            request_log_capacity: c.request_log_capacity,
            record_bodies: c.record_bodies,
            output_size: c.output_size,
            max_uploads: c.max_uploads,
            max_upload_bytes: c.max_upload_bytes,
        }
    }
}

pub(crate) struct State {
    pub(crate) clock: MockClock,
    pub(crate) initial: MockConfig,
    pub(crate) settings: Mutex<Settings>,
    pub(crate) jobs: Mutex<Jobs>,
    pub(crate) request_log: Mutex<VecDeque<RequestLogEntry>>,
    pub(crate) billing: Mutex<Billing>,
    pub(crate) buckets: Mutex<HashMap<String, Bucket>>,
    pub(crate) assets: Mutex<Assets>,
    pub(crate) history: Mutex<History>,
    /// The wall-clock time the mock's clock reads 0 at: the history's
    /// timestamps are this plus the (virtual) elapsed time.
    pub(crate) wall_start: jiff::Timestamp,
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

impl State {
    pub(crate) fn new(
        config: MockConfig,
        clock: MockClock,
        base_url: String,
        control_token: Option<String>,
    ) -> Self {
        Self {
            clock,
            settings: Mutex::new(Settings::from_config(&config)),
            jobs: Mutex::new(Jobs::new(seed_of(&config.timing))),
            initial: config,
            request_log: Mutex::new(VecDeque::new()),
            billing: Mutex::new(Billing::default()),
            buckets: Mutex::new(HashMap::new()),
            assets: Mutex::new(Assets::default()),
            history: Mutex::new(History::default()),
            wall_start: jiff::Timestamp::now(),
            base_url,
            control_token,
            expected_submits: Mutex::new(None),
            #[cfg(feature = "spec-check")]
            spec: None,
        }
    }

    /// Back to the configuration the server started with: no jobs, no
    /// request log, no billing, no history, no uploads, initial faults, and the clock's
    /// advances taken back.
    pub(crate) fn reset(&self) {
        self.clock.reset();
        *lock(&self.settings) = Settings::from_config(&self.initial);
        *lock(&self.jobs) = Jobs::new(seed_of(&self.initial.timing));
        lock(&self.request_log).clear();
        *lock(&self.billing) = Billing::default();
        lock(&self.buckets).clear();
        *lock(&self.assets) = Assets::default();
        *lock(&self.history) = History::default();
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

    /// Decides a newly accepted job (its stages, whether it fails, when a
    /// worker starts it) and stores it. `render` is what the output is
    /// drawn from (see [`RenderInput`]).
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
        let mut jobs = lock(&self.jobs);
        let nth = jobs.count_accepted();
        let stages = jobs.stages_for(&timing, input);
        let failure = failure_for(&rules, input, nth);
        let started = jobs.schedule(
            workers,
            now.saturating_add(stages.queued),
            stages.processing,
        );
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
        let id = jobs.store(job, now);
        Accepted {
            id,
            failure,
            stages,
            render,
        }
    }

    /// How many jobs are stored (expired ones are removed lazily).
    pub(crate) fn job_count(&self) -> usize {
        lock(&self.jobs).map.len()
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
    /// most one other fault (consumed), and a `DropAfterAccept` fault taken
    /// for this call (see [`State::give_back_drop_after`]).
    pub(crate) fn take_faults(&self, route: FaultRoute) -> CallFaults {
        let mut s = lock(&self.settings);
        if s.faults.is_empty() {
            return CallFaults::default();
        }
        let mut latency = Duration::ZERO;
        let mut action = None;
        let mut drop_after_accept = None;
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
                FaultKind::DropAfterAccept if drop_after_accept.is_none() => {
                    drop_after_accept = Some(f.fault.clone());
                    if let Some(t) = &mut f.fault.times {
                        *t = t.saturating_sub(1);
                    }
                }
                FaultKind::DropAfterAccept => {}
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
        CallFaults {
            latency: latency.min(Duration::from_secs(limits::MAX_LATENCY_SECS)),
            action,
            drop_after_accept,
        }
    }

    /// Gives back a `DropAfterAccept` fault taken for a call that did not
    /// succeed: the next call that does is dropped instead.
    pub(crate) fn give_back_drop_after(&self, fault: Fault) {
        if fault.times.is_none() {
            return; // never used up
        }
        let mut s = lock(&self.settings);
        if let Some(f) = s
            .faults
            .iter_mut()
            .find(|f| f.fault.route == fault.route && f.fault.kind == FaultKind::DropAfterAccept)
            && let Some(t) = &mut f.fault.times
        {
            *t = t.saturating_add(1);
            return;
        }
        s.faults.push(ActiveFault {
            fault: Fault {
                times: Some(1),
                ..fault
            },
        });
    }

    pub(crate) fn log_request(&self, entry: RequestLogEntry) {
        let cap = lock(&self.settings).request_log_capacity;
        let mut j = lock(&self.request_log);
        if cap == 0 {
            return;
        }
        while j.len() >= cap {
            j.pop_front();
        }
        j.push_back(entry);
    }

    // The setters behind both `MockServer`'s methods and the control API:
    // each checks its value against `limits` and says what is wrong,
    // naming the field.

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
        checks::faults(&faults, s.faults.len())?;
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
        checks::fail_rules(&rules)?;
        lock(&self.settings).fail_rules = rules;
        Ok(())
    }

    pub(crate) fn push_fail_rule(&self, rule: FailRule) -> Result<(), String> {
        let mut s = lock(&self.settings);
        let mut rules = s.fail_rules.clone();
        rules.push(rule);
        checks::fail_rules(&rules)?;
        s.fail_rules = rules;
        Ok(())
    }

    pub(crate) fn set_rate_limit(&self, limit: Option<RateLimitRule>) -> Result<(), String> {
        checks::rate_limit(limit.as_ref())?;
        lock(&self.settings).rate_limit = limit;
        lock(&self.buckets).clear();
        Ok(())
    }

    pub(crate) fn set_result_before_completion(&self, answer: ResultBeforeCompletion) {
        lock(&self.settings).result_before_completion = answer;
    }

    pub(crate) fn set_keys(&self, keys: Option<Vec<String>>) -> Result<(), String> {
        checks::keys(keys.as_deref())?;
        lock(&self.settings).keys = keys;
        Ok(())
    }

    pub(crate) fn set_credits(&self, credits: Option<Credits>) -> Result<(), String> {
        checks::credits(credits.as_ref())?;
        lock(&self.settings).credits = credits;
        Ok(())
    }

    pub(crate) fn set_timing(&self, timing: Timing) -> Result<(), String> {
        checks::timing(&timing)?;
        lock(&self.settings).timing = timing;
        Ok(())
    }

    pub(crate) fn request_log(&self) -> Vec<RequestLogEntry> {
        lock(&self.request_log).iter().cloned().collect()
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
