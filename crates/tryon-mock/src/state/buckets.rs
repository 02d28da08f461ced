//! Rate-limit buckets per API key: a token bucket, or a fixed window.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::RateLimitRule;

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
