//! Everything that decides "again, later, or never", in one room (after
//! smithy-rs's `aws-smithy-runtime/src/client/retries/`). The rules are
//! written once, on [`RetryPolicy`]; every other place links there.
//!
//! - `mod.rs`: [`RetryPolicy`], the rules, and full-jitter backoff.
//! - `executor.rs`: the one loop every request goes through (attempts,
//!   budget, `Retry-After`, deadline, rate limiter).
//! - `classify.rs`: the API classifier (which answers may be retried and
//!   the error each becomes; each `5xx` on a submit in `submit_5xx`), and
//!   the keyed calls that run through the executor with it. Output
//!   downloads go to another host and are classified by their downloader
//!   (`output.rs`).
//! - `retry_after.rs`: `Retry-After` (seconds or an HTTP date), read one
//!   way for both.
//! - `budget.rs`: the client-wide retry token bucket.
//! - `rate_limiter.rs`: the shared adaptive rate limiter and [`RateLimit`].

mod budget;
mod classify;
mod executor;
mod rate_limiter;
mod retry_after;

use std::time::Duration;

pub(crate) use classify::{ApiCaller, CallError, salvage_request_id};
pub(crate) use executor::{Call, Deadline, Executor, Failure, Retryable};
pub use rate_limiter::RateLimit;
pub(crate) use retry_after::parse_retry_after;

/// How the client retries failed calls, and the rules every request
/// follows: submit, status, result, upload, v1 run and output download all
/// go through the same retry loop. (This is the one place the rules are
/// written.)
///
/// **What may be retried**
///
/// - Reads (status, result, download) and uploads: a transport error (no
///   answer), and `429`, `500`, `502`, `503`, `504`; a download also when
///   the image came cut short.
/// - A submit (`POST`, v2 or v1) only when the server provably did not
///   take it: the connection could not be made, or it answered `429` or
///   `503`. A failure after the request went out with no answer that says
///   the service refused it is
///   [`Error::AmbiguousSubmit`](crate::Error::AmbiguousSubmit) and is never
///   retried, so a job is never paid for twice: no answer, a `200` whose
///   body is unreadable or over the JSON cap, a `504`, or any other `5xx`
///   whose body is not the service's own JSON error (a gateway's page). A
///   `4xx`, or a `500`/`502` carrying the service's JSON error, is the
///   service's refusal: that error, nothing billed, not retried. (Why each
///   `5xx` is decided so: `docs/CONTRACT.md`, "A 5xx answer to a submit".)
/// - Every JSON answer is read under a cap
///   ([`tryon_api::MAX_JSON_BYTES`]; a result
///   [`tryon_api::MAX_RESULT_BYTES`]); an answer over it is not retried:
///   [`Error::InvalidResponse`](crate::Error::InvalidResponse) naming the
///   cap (a submit's: ambiguous).
/// - Nothing else. A read's `404` is
///   [`Error::Expired`](crate::Error::Expired) and its `422` is
///   [`Error::Failed`](crate::Error::Failed).
///
/// **How long to wait**
///
/// - Full-jitter exponential backoff before retry `n`:
///   `random(0..=min(max_backoff, initial_backoff * 2^(n-1)))` (see
///   [`backoff`](Self::backoff)), or the server's `Retry-After` (seconds or
///   an HTTP date) when it gives one.
/// - No wait runs past the caller's deadline: a wait that would ends the
///   call with [`Error::Timeout`](crate::Error::Timeout).
/// - A `Retry-After` longer than
///   [`with_max_retry_after`](Self::with_max_retry_after) ends the retries
///   at once, for every kind of request: retrying sooner would ignore the
///   server, and waiting longer is the caller's decision (the error carries
///   the wait in [`Error::retry_after`](crate::Error::retry_after)).
///
/// **What a retry costs**
///
/// - Each retry is one of the [`max_attempts`](Self::with_max_attempts)
///   and costs tokens of a retry budget shared by the whole client (after
///   aws-sdk-rust's token bucket; see [`with_budget`](Self::with_budget));
///   each success refunds one, and an empty bucket returns the error at
///   once, which stops retry storms.
/// - A `429` from the API with a `Retry-After` the policy allows is a
///   reason to wait, never to give up: the call is retried after that wait
///   through a fresh slot of the rate limiter, and it costs neither an
///   attempt nor the budget. A `429` without `Retry-After`, or with
///   `Retry-After: 0` (which would make the wait a hot loop against the
///   server), counts like any other failure.
///
/// **The rate limiter**
///
/// - Every API call (submit, status, result, upload; not output
///   downloads, which go to another host) passes one rate limiter shared by
///   every clone of the client and every job of
///   [`Client::run_many`](crate::Client::run_many). With
///   [`ClientBuilder::rate_limit`](crate::ClientBuilder::rate_limit) it
///   keeps to that budget from the first call; it also learns a budget
///   from the `429`s, for the classes of call (submits, reads, uploads)
///   that were refused, so one call's `429` slows the calls of its class
///   in every task.
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
    /// One attempt per call: no retries, except that an API call's `429`
    /// with an allowed `Retry-After` is still waited out (see the rules
    /// above); add
    /// [`with_max_retry_after`](Self::with_max_retry_after)`(Duration::ZERO)`
    /// to end a call at its first failure whatever it is.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
