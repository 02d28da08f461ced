//! How often and how long to wait between retries: the policy (its
//! documentation states the rules every request follows), full-jitter
//! backoff, the client-wide retry budget and `Retry-After` parsing. The
//! loop itself is the executor in `transport.rs`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How the client retries failed calls. Every request (submit, status,
/// result, upload, v1 run, output download) goes through the same retry
/// loop:
///
/// - Reads (status, result, download) and uploads retry on transport
///   errors and on `429`, `500`, `502`, `503`, `504`; a download also when
///   the image came cut short.
/// - A submit (`POST`, v2 or v1) retries only when the server provably did
///   not take it: the connection could not be made, or it answered `429` or
///   `503`. Any other failure after the request went out is
///   [`Error::AmbiguousSubmit`](crate::Error::AmbiguousSubmit) and is never
///   retried.
/// - Waits use full-jitter exponential backoff (`random(0..=min(max,
///   initial * 2^n))`), or the server's `Retry-After` (seconds or an HTTP
///   date) when it gives one. No wait runs past the caller's deadline, and a
///   `Retry-After` longer than [`with_max_retry_after`](Self::with_max_retry_after)
///   ends the retries at once (retrying sooner would ignore the server).
/// - A retry budget shared by the whole client (after aws-sdk-rust's token
///   bucket) stops retry storms: each retry costs tokens, each success
///   refunds one, and an empty bucket means the error is returned at once.
///
/// ```
/// use std::time::Duration;
/// use tryon_client::RetryPolicy;
/// let policy = RetryPolicy::default()
///     .with_max_attempts(8)
///     .with_initial_backoff(Duration::from_millis(200));
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_retry_after: Duration,
    pub(crate) budget: u32,
    pub(crate) retry_cost: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
            max_retry_after: Duration::from_mins(2),
            budget: 500,
            retry_cost: 5,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Attempts per call, the first included. Default 6; at least 1.
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Backoff cap for the first retry; doubles per retry. Default 500 ms.
    #[must_use]
    pub fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// Largest backoff. Default 20 s.
    #[must_use]
    pub fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Longest `Retry-After` honoured; a longer one ends the retries and
    /// returns the error (with [`Error::retry_after`](crate::Error::retry_after)
    /// set). Default 120 s.
    #[must_use]
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Size of the client-wide retry budget in tokens (default 500) and the
    /// cost of one retry (default 5); each success refunds one token.
    #[must_use]
    pub fn with_budget(mut self, tokens: u32, retry_cost: u32) -> Self {
        self.budget = tokens;
        self.retry_cost = retry_cost;
        self
    }

    /// Full-jitter backoff before retry number `retry` (1-based):
    /// uniform in `0..=min(max_backoff, initial_backoff * 2^(retry-1))`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let cap = self.backoff_cap(retry);
        if cap.is_zero() {
            return cap;
        }
        cap.mul_f64(rand::random_range(0.0..=1.0))
    }

    /// The upper bound of [`backoff`](Self::backoff).
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        self.initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff)
    }
}

/// The client-wide retry token bucket.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    tokens: AtomicU32,
    capacity: u32,
}

impl RetryBudget {
    pub(crate) fn new(capacity: u32) -> Self {
        Self {
            tokens: AtomicU32::new(capacity),
            capacity,
        }
    }

    /// Takes `cost` tokens; false when there are not enough.
    pub(crate) fn withdraw(&self, cost: u32) -> bool {
        self.tokens
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| t.checked_sub(cost))
            .is_ok()
    }

    pub(crate) fn refund(&self, n: u32) {
        let cap = self.capacity;
        let _ = self
            .tokens
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(n).min(cap))
            });
    }
}

/// Reads `Retry-After`: a number of seconds (fractions allowed) or an HTTP
/// date, relative to `now` (wall clock). A date in the past means "now".
pub(crate) fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::try_from_secs_f64(secs).ok())
            .flatten();
    }
    let when = httpdate::parse_http_date(raw).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::any;
    use reqwest::header::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after(&headers("3"), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after(&headers("1.5"), now),
            Some(Duration::from_millis(1500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(
            parse_retry_after(&headers(&later), now),
            Some(Duration::from_secs(7))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(
            parse_retry_after(&headers(&earlier), now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(&headers("-1"), now), None);
        assert_eq!(parse_retry_after(&headers("soon"), now), None);
        assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_is_full_jitter_within_its_cap() {
        let p = RetryPolicy::default();
        for retry in 1..40 {
            let cap = p.backoff_cap(retry);
            assert!(cap <= p.max_backoff);
            for _ in 0..50 {
                assert!(p.backoff(retry) <= cap);
            }
        }
        assert_eq!(p.backoff_cap(1), Duration::from_millis(500));
        assert_eq!(p.backoff_cap(2), Duration::from_secs(1));
        assert_eq!(p.backoff_cap(10), Duration::from_secs(20));
    }

    proptest::proptest! {
    /// `Retry-After` in seconds or as an HTTP date, relative to `now`; a
    /// past date is zero; garbage is ignored without a panic.
    #[test]
    fn retry_after_parses_seconds_dates_and_ignores_garbage(
        secs in 0u64..1_000_000,
        past in any::<bool>(),
        garbage in ".{0,30}",
        base in 1_000_000_000u64..2_000_000_000,
    ) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(base);
        let h = headers(&secs.to_string());
        proptest::prop_assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(secs)));

        let when = if past {
            now - Duration::from_secs(secs)
        } else {
            now + Duration::from_secs(secs)
        };
        let h = headers(&httpdate::fmt_http_date(when));
        let expected = if past { Duration::ZERO } else { Duration::from_secs(secs) };
        proptest::prop_assert_eq!(parse_retry_after(&h, now), Some(expected));

        if let Ok(v) = HeaderValue::from_str(&garbage) {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, v);
            let parsed = parse_retry_after(&h, now);
            if garbage.trim().parse::<f64>().is_err() && httpdate::parse_http_date(garbage.trim()).is_err() {
                proptest::prop_assert_eq!(parsed, None);
            }
        }
        proptest::prop_assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }
    }

    #[test]
    fn budget_drains_and_refills() {
        let b = RetryBudget::new(10);
        assert!(b.withdraw(5));
        assert!(b.withdraw(5));
        assert!(!b.withdraw(5));
        b.refund(100);
        assert!(b.withdraw(10));
    }
}
