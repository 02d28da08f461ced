//! Scenario configuration: lifecycle timing, failure rules, limits and
//! credits. Every type here is a plain value, deserializable from TOML (the
//! standalone mock's `--config` file) and settable from the builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tryon_api::types::TryOnInput;

use crate::fault::Fault;

/// How long one job spends in each stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stages {
    /// Time in `QUEUED` before a worker is free (before any wait for a
    /// bounded worker pool).
    #[serde(with = "crate::secs")]
    pub queued: Duration,
    /// Time in `PROCESSING`; reported as `metrics.inference_time`.
    #[serde(with = "crate::secs")]
    pub processing: Duration,
}

impl Stages {
    /// Stages of the given lengths.
    pub fn new(queued: Duration, processing: Duration) -> Self {
        Self { queued, processing }
    }
}

/// A closure that picks a job's stage durations from its input.
#[derive(Clone)]
pub struct StageFn(pub(crate) Arc<dyn Fn(&TryOnInput) -> Stages + Send + Sync>);

impl fmt::Debug for StageFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StageFn(..)")
    }
}

/// How the mock decides each job's stage durations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Timing {
    /// Every job takes the same time. The default is 20 ms queued and 80 ms
    /// processing, so a client with default settings is done quickly.
    Fixed(Stages),
    /// A profile shaped like the real service (see [`RealisticProfile`]).
    Realistic(RealisticProfile),
    /// A closure picks each job's stages from its input (not available from
    /// TOML).
    #[serde(skip)]
    PerRequest(StageFn),
}

impl Default for Timing {
    fn default() -> Self {
        Timing::Fixed(Stages::new(
            Duration::from_millis(20),
            Duration::from_millis(80),
        ))
    }
}

impl Timing {
    /// Stage durations chosen per request by `f`.
    pub fn per_request(f: impl Fn(&TryOnInput) -> Stages + Send + Sync + 'static) -> Self {
        Timing::PerRequest(StageFn(Arc::new(f)))
    }
}

/// Timing shaped like the real service, after the model maker's public page
/// (contract, "Timing and cost"): a queue wait drawn from an exponential
/// distribution, about 2 s of processing per garment, at most about 4 s with
/// `turbo`, each with a little jitter. Draws come from a seeded generator, so
/// a run is repeatable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RealisticProfile {
    /// Mean of the exponential queue wait. Default 0.5 s.
    #[serde(with = "crate::secs")]
    pub mean_queue_wait: Duration,
    /// Upper bound of the queue wait draw. Default 5 s.
    #[serde(with = "crate::secs")]
    pub max_queue_wait: Duration,
    /// Processing time per garment in standard mode. Default 2 s.
    #[serde(with = "crate::secs")]
    pub per_garment: Duration,
    /// Processing time per garment with `turbo`. Default 1 s.
    #[serde(with = "crate::secs")]
    pub turbo_per_garment: Duration,
    /// Upper bound of processing with `turbo`. Default 4 s.
    #[serde(with = "crate::secs")]
    pub turbo_max: Duration,
    /// Jitter as a fraction of processing time (0.1 = ±10 %). Default 0.1.
    pub jitter: f64,
    /// Seed of the generator. Default 1.
    pub seed: u64,
}

impl Default for RealisticProfile {
    fn default() -> Self {
        Self {
            mean_queue_wait: Duration::from_millis(500),
            max_queue_wait: Duration::from_secs(5),
            per_garment: Duration::from_secs(2),
            turbo_per_garment: Duration::from_secs(1),
            turbo_max: Duration::from_secs(4),
            jitter: 0.1,
            seed: 1,
        }
    }
}

/// Which jobs a [`FailRule`] applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobMatch {
    /// Jobs submitted with this `seed`.
    Seed(u64),
    /// Jobs whose `prompt` contains this text.
    PromptContains(String),
    /// Every nth accepted job of the server (the nth, 2nth, …; counted from 1).
    EveryNth(u64),
    /// Every job.
    All,
}

/// Makes matching jobs end `FAILED` with an error text instead of
/// `COMPLETED`. A failed job is served as 422 with its status body on both
/// its status and result URLs, as the real service does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailRule {
    /// Which jobs fail.
    #[serde(rename = "match")]
    pub matches: JobMatch,
    /// The `error` text of the failed job.
    pub error: String,
}

impl FailRule {
    /// The error text of a responsible-AI block.
    pub const CONTENT_BLOCKED: &'static str = "Content blocked by the safety filter";

    /// Matching jobs fail with `error`.
    pub fn new(matches: JobMatch, error: impl Into<String>) -> Self {
        Self {
            matches,
            error: error.into(),
        }
    }

    /// Matching jobs fail the way a responsible-AI / content block does
    /// (`FAILED`, error [`CONTENT_BLOCKED`](Self::CONTENT_BLOCKED)).
    pub fn content_block(matches: JobMatch) -> Self {
        Self::new(matches, Self::CONTENT_BLOCKED)
    }
}

/// A token bucket per API key: each request on an API route (submit, status,
/// result, v1 run, upload) takes a token; an empty bucket answers 429 with
/// `Retry-After` in whole seconds until the next token. Buckets refill on the
/// mock clock, so virtual time refills them too.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimitRule {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size: how many requests may come at once.
    pub burst: u32,
    /// Which requests the limit counts. Default: every keyed request.
    #[serde(default, skip_serializing_if = "RateScope::is_all_keyed")]
    pub scope: RateScope,
    /// When set, a fixed-window limit instead of the token bucket: at most
    /// `per_second * window_secs` requests (at least 1) in each window of
    /// this many seconds on the mock clock (windows start at 0); a refused
    /// request gets `Retry-After` until the window ends. `burst` is then
    /// unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<f64>,
}

/// Which requests a [`RateLimitRule`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateScope {
    /// Every request on an API route (submit, status, result, v1 run, upload).
    #[default]
    AllKeyed,
    /// Only submits (v2 submit and v1 run); reads pass freely.
    SubmitsOnly,
}

impl RateScope {
    #[allow(
        clippy::trivially_copy_pass_by_ref,
        reason = "serde passes a reference"
    )]
    fn is_all_keyed(&self) -> bool {
        *self == RateScope::AllKeyed
    }
}

impl RateLimitRule {
    /// `per_second` tokens a second, bursts of up to `burst`, on every
    /// keyed request.
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_second,
            burst,
            scope: RateScope::AllKeyed,
            window_secs: None,
        }
    }

    /// The same limit, counting submits only.
    #[must_use]
    pub fn submits_only(mut self) -> Self {
        self.scope = RateScope::SubmitsOnly;
        self
    }

    /// The same rate as a fixed window of `window` (e.g. 10 s) instead of a
    /// token bucket.
    #[must_use]
    pub fn per_window(mut self, window: Duration) -> Self {
        self.window_secs = Some(window.as_secs_f64());
        self
    }
}

/// What the result URL (`GET /v2/requests/{id}`) answers before the job is
/// final. The contract *assumes* the first (the default): no public source
/// settles it, so the others let a test prove a client copes when the real
/// service does otherwise (`tryon parity`'s `result_early` step tells which
/// one it does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultBeforeCompletion {
    /// `200` with the current `status` (`QUEUED` or `PROCESSING`) and no
    /// `output` (assumed; the default).
    #[default]
    Status,
    /// `404` with the body of an unknown or expired id, although the job is
    /// kept (within the retention) and its status URL answers.
    NotFound,
    /// `202` with an error body and no `status`.
    Accepted,
    /// `200` with a body that has no `status` (`{"request_id", "error"}`).
    NoStatus,
}

/// Credits per API key: each accepted job costs `first_garment +
/// additional_garment * (garments - 1)`; a job the balance cannot pay is
/// answered 406 and not billed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Credits {
    /// Starting balance of every key. Default 1.0.
    pub balance: f64,
    /// Cost of the first garment. Default 0.015 (the model maker's price).
    pub first_garment: f64,
    /// Cost of each further garment. Default 0.008.
    pub additional_garment: f64,
}

impl Default for Credits {
    fn default() -> Self {
        Self {
            balance: 1.0,
            first_garment: 0.015,
            additional_garment: 0.008,
        }
    }
}

impl Credits {
    /// Every key starts with `balance`; prices are the defaults.
    pub fn with_balance(balance: f64) -> Self {
        Self {
            balance,
            ..Self::default()
        }
    }

    /// The same cost for every garment.
    #[must_use]
    pub fn cost_per_garment(mut self, cost: f64) -> Self {
        self.first_garment = cost;
        self.additional_garment = cost;
        self
    }

    /// What a job with `garments` garments costs.
    pub fn cost(&self, garments: usize) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let extra = garments.saturating_sub(1) as f64;
        self.first_garment + self.additional_garment * extra
    }
}

/// Everything that configures a mock server; what the builder builds and
/// what `tryon mock --config mock.toml` reads.
///
/// ```
/// let config: tryon_mock::MockConfig = toml::from_str(r#"
///     retention = 3600.0
///     keys = ["sk-test"]
///
///     [timing]
///     mode = "fixed"
///     queued = 0.5
///     processing = 2.0
///
///     result_before_completion = "status"
///
///     [rate_limit]
///     per_second = 5.0
///     burst = 10
///
///     [[fail_rules]]
///     match = { prompt_contains = "blocked" }
///     error = "Content blocked by the safety filter"
///
///     [[faults]]
///     route = "status"
///     kind = { status = { code = 503, retry_after = { seconds = 1 } } }
///     times = 2
/// "#).unwrap();
/// assert_eq!(config.keys.as_deref(), Some(&["sk-test".to_string()][..]));
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockConfig {
    /// Use a virtual clock that only moves when advanced. Default false.
    pub virtual_time: bool,
    /// Stage durations. Default: fixed, 20 ms queued + 80 ms processing.
    pub timing: Timing,
    /// How many jobs run at once; the rest wait `QUEUED`. Default: no bound.
    pub workers: Option<usize>,
    /// How long a job's status and result are kept after submission, then
    /// 404. Default 1 hour (in seconds in TOML).
    #[serde(with = "crate::secs")]
    pub retention: Duration,
    /// How long a completed job's output (its `output` and the history's
    /// `generation_url`) stays downloadable after submission, apart from
    /// the status retention. Default 7 days (the service's reported
    /// retention; assumed), never less than `retention`.
    #[serde(with = "crate::secs")]
    pub output_retention: Duration,
    /// How long after its submit a request's row lands in the account's
    /// request history (`GET /inference-request/request-history`). Before
    /// that it is absent, or listed with nulls when
    /// [`history_partial`](Self::history_partial). Default 0 s: the
    /// service's delay is unknown; set one to test a reader that waits.
    #[serde(with = "crate::secs")]
    pub history_delay: Duration,
    /// Before it lands, a request's history row is listed (and found by
    /// id) with only its `request_id` and `created_at`, every other field
    /// null, instead of being absent. Default false.
    pub history_partial: bool,
    /// Accepted API keys. Default `None`: any non-empty key is accepted. A
    /// missing key is always 401.
    pub keys: Option<Vec<String>>,
    /// Token bucket per key. Default: none.
    pub rate_limit: Option<RateLimitRule>,
    /// Credits per key. Default: unlimited.
    pub credits: Option<Credits>,
    /// Jobs that end `FAILED`.
    pub fail_rules: Vec<FailRule>,
    /// What the result URL answers before the job is final. Default: `200`
    /// with the current status (the contract's assumption).
    pub result_before_completion: ResultBeforeCompletion,
    /// Faults injected into the next calls of a route.
    pub faults: Vec<Fault>,
    /// Largest accepted request body; larger ones get 413. Default 16 MiB.
    pub max_body_bytes: usize,
    /// How many request-log entries are kept (oldest dropped first).
    /// Default 100 000. Billing counters are kept separately and never
    /// dropped. TOML also takes this key's first name, `journal_capacity`.
    #[serde(alias = "journal_capacity")]
    pub request_log_capacity: usize,
    /// Keep a copy of every JSON response body in the request log (for
    /// schema checks). Default false.
    pub record_bodies: bool,
    /// Width and height of an output whose person photo's size is not
    /// preserved (or is unknown). Default 64×96, small so tests stay fast;
    /// a demo wants something larger.
    pub output_size: (u32, u32),
    /// Base URL used in absolute URLs (`status_url`, `output`, …), for a mock
    /// behind a proxy. Default: the URL the mock listens on (`127.0.0.1`
    /// for a mock bound to `0.0.0.0`). Never taken from a request's `Host`
    /// header.
    pub public_url: Option<String>,
    /// Most uploads kept (`POST /upload-asset`); the oldest go first.
    /// Default 1000.
    pub max_uploads: usize,
    /// Most bytes of uploads kept; the oldest go first. Default 256 MiB.
    pub max_upload_bytes: usize,
    /// Most open connections; at the cap the oldest idle one is closed to
    /// make room. Never more than the open-file limit less 32. Default 256.
    pub max_connections: usize,
    /// A request's head must arrive within this, and a kept-alive
    /// connection with no new request this long is closed. Default 10 s.
    #[serde(with = "crate::secs")]
    pub header_timeout: Duration,
}

impl MockConfig {
    /// The default [`output_size`](Self::output_size): 64×96, small on
    /// purpose, so tests stay fast.
    pub const DEFAULT_OUTPUT_SIZE: (u32, u32) = (64, 96);
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            virtual_time: false,
            timing: Timing::default(),
            workers: None,
            retention: Duration::from_hours(1),
            output_retention: Duration::from_hours(7 * 24),
            history_delay: Duration::ZERO,
            history_partial: false,
            keys: None,
            rate_limit: None,
            credits: None,
            fail_rules: Vec::new(),
            result_before_completion: ResultBeforeCompletion::default(),
            faults: Vec::new(),
            max_body_bytes: 16 * 1024 * 1024,
            request_log_capacity: 100_000,
            record_bodies: false,
            output_size: Self::DEFAULT_OUTPUT_SIZE,
            public_url: None,
            max_uploads: 1000,
            max_upload_bytes: 256 * 1024 * 1024,
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
        }
    }
}
