//! The pieces of [`State`](super::State): jobs, token buckets, billing,
//! uploads, and what the checks decide.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tryon_api::types::{JobStatus, OutputFormat};
use uuid::Uuid;

use crate::config::{RateLimitRule, Stages};
use crate::render::Render;

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
    pub(crate) workers: BinaryHeap<Reverse<Duration>>,
    pub(crate) accepted: u64,
    pub(crate) rng: u64,
    pub(crate) since_sweep: u32,
}

pub(crate) struct Bucket {
    /// Tokens left (token bucket), or requests taken in the window.
    pub(crate) tokens: f64,
    /// Last refill (token bucket), or the window's start.
    pub(crate) at: Duration,
}

/// Takes a token of `key`'s bucket, or says how many seconds until one.
pub(crate) fn take_from_bucket(
    buckets: &mut HashMap<String, Bucket>,
    key: &str,
    rate: &RateLimitRule,
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
pub(crate) fn take_from_window(
    buckets: &mut HashMap<String, Bucket>,
    key: &str,
    rate: &RateLimitRule,
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
    pub(crate) map: HashMap<Uuid, Asset>,
    pub(crate) order: VecDeque<Uuid>,
    pub(crate) bytes: usize,
}

impl Assets {
    pub(crate) fn get(&self, id: &Uuid) -> Option<&Asset> {
        self.map.get(id)
    }

    /// Stores `asset`, evicting the oldest uploads until both bounds hold.
    pub(crate) fn insert(&mut self, id: Uuid, asset: Asset, max_count: usize, max_bytes: usize) {
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

/// What the auth / limits / credits checks decided.
#[derive(Clone, Copy)]
pub(crate) enum Refusal {
    Unauthorized(&'static str),
    RateLimited { retry_after_secs: u64 },
    NoCredits,
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
pub(crate) fn next_unit(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    #[allow(clippy::cast_precision_loss)]
    let v = (z >> 11) as f64 / (1u64 << 53) as f64;
    v
}
