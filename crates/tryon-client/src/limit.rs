//! The client-side rate limiter every API call passes through: a paced
//! token bucket that learns the account's request budget from `429`s.
//!
//! After smithy-rs's `client_rate_limiter.rs`, simplified for a service
//! whose budget is fixed per account:
//!
//! - Until the first `429` (and with no budget configured) calls are not
//!   limited at all.
//! - The first `429` turns the limiter on, holds every call off for the
//!   server's `Retry-After`, and sets the rate to what the server let
//!   through (successes per second over the last [`WINDOW`], at least one
//!   second), then grows it by 2 % per success that had to wait (a slow
//!   start, like TCP's) until the next `429`.
//! - Every later `429` cuts the rate to [`BACKOFF`] times itself, at most
//!   once per *round*: a `429` answering a call planned before the last cut
//!   says nothing new. Calls that already hold a slot of the old pace are
//!   re-planned.
//! - After that, each success of a call that had to wait for its slot (the
//!   budget binds) raises the rate by one part in [`GROWTH`], so a cut costs
//!   about `0.03 * GROWTH` calls before the next probe: a few `429`s per
//!   thousand calls, never a storm, and the client finds a raised budget
//!   again.
//! - A configured budget ([`RateLimit`]) starts the limiter at that rate and
//!   is never exceeded.
//!
//! Slots are spaced evenly (no burst), which also keeps a per-window limit
//! happy. The `429`'d call itself retries after its `Retry-After` through a
//! fresh slot (see `transport.rs`).

mod legacy;

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

pub(crate) use legacy::PaceLimiter;

use crate::error::{Error, Result};

/// How far back successes are counted to measure the server's rate.
pub(crate) const WINDOW: Duration = Duration::from_secs(20);
/// A cut keeps this share of the measured (or current) rate.
pub(crate) const BACKOFF: f64 = 0.97;
/// Each success that waited for its slot raises the rate by `1 / GROWTH`.
pub(crate) const GROWTH: f64 = 20_000.0;
/// The growth per waiting success during the slow start.
const SLOW_START_GROWTH: f64 = 1.02;
/// The slowest rate the limiter goes down to: one call a minute.
const MIN_RATE: f64 = 1.0 / 60.0;
/// Largest rate accepted as a configured budget (requests per second).
const MAX_RATE: f64 = 1.0e6;
/// Most success times kept for the measurement.
const MAX_SAMPLES: usize = 16_384;

/// A request budget: how many API calls (submits, status and result
/// reads, uploads) the account may make per unit of time.
///
/// ```
/// use tryon_client::RateLimit;
/// let r: RateLimit = "500/min".parse()?;
/// assert_eq!(r.per_minute(), 500.0);
/// assert_eq!(RateLimit::per_second(2.0)?.per_minute(), 120.0);
/// # Ok::<(), tryon_client::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    per_minute: f64,
}

impl RateLimit {
    /// `n` requests per second; `n` must be finite, above zero and at most
    /// one million.
    ///
    /// # Errors
    /// [`Error::Config`] naming `rate_limit` and the bounds.
    pub fn per_second(n: f64) -> Result<Self> {
        if !n.is_finite() || n <= 0.0 || n > MAX_RATE {
            return Err(Error::config(
                "rate_limit",
                format!("{n} requests per second is out of range (above 0, at most {MAX_RATE})"),
            ));
        }
        Ok(Self {
            per_minute: n * 60.0,
        })
    }

    /// `n` requests per minute (see [`per_second`](Self::per_second)).
    ///
    /// # Errors
    /// [`Error::Config`] naming `rate_limit` and the bounds.
    pub fn per_minute_budget(n: f64) -> Result<Self> {
        Self::per_second(n / 60.0).map(|_| Self { per_minute: n })
    }

    /// Requests per second.
    pub fn requests_per_second(&self) -> f64 {
        self.per_minute / 60.0
    }

    /// Requests per minute.
    pub fn per_minute(&self) -> f64 {
        self.per_minute
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.0}/min", self.per_minute())
    }
}

impl FromStr for RateLimit {
    type Err = Error;

    /// `N/s`, `N/min` or `N/h` (also `N/sec`, `N/m`, `N/hour`), `N` a
    /// positive number.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::config(
                "rate_limit",
                format!("{s:?} is not a rate: write N/s, N/min or N/h, e.g. 500/min"),
            )
        };
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let n: f64 = n.trim().parse().map_err(|_| bad())?;
        let per_minute = match unit.trim() {
            "s" | "sec" | "second" => n * 60.0,
            "m" | "min" | "minute" => n,
            "h" | "hour" => n / 60.0,
            _ => return Err(bad()),
        };
        Self::per_minute_budget(per_minute)
    }
}

/// A reserved start time for one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    /// How long to wait before sending.
    pub(crate) wait: Duration,
    /// The limiter's epoch when reserved: a cut since then voids the slot.
    epoch: u64,
    /// Whether the budget bound (the call had to wait for its slot).
    waited: bool,
}

#[derive(Debug)]
struct State {
    /// Calls per second; `None` while not limited.
    rate: Option<f64>,
    /// The configured budget, never exceeded.
    ceiling: Option<f64>,
    /// The next free start slot (clock time).
    next_slot: Duration,
    /// No call starts before this (clock time).
    resume_at: Duration,
    /// Bumped at every cut; voids older reservations.
    epoch: u64,
    /// Growing fast, from the first estimate to the first cut.
    slow_start: bool,
    /// When recent calls succeeded (clock time), oldest first.
    successes: VecDeque<Duration>,
}

/// The client-wide adaptive limiter (see the module docs).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    state: Mutex<State>,
}

impl RateLimiter {
    pub(crate) fn new(configured: Option<RateLimit>) -> Self {
        let rate = configured.map(|r| r.requests_per_second());
        Self {
            state: Mutex::new(State {
                rate,
                ceiling: rate,
                next_slot: Duration::ZERO,
                resume_at: Duration::ZERO,
                epoch: 0,
                slow_start: false,
                successes: VecDeque::new(),
            }),
        }
    }

    /// The state; a poisoned lock is used as it is (each update is a few
    /// plain assignments, so it cannot be torn).
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The budget currently applied, if any.
    pub(crate) fn budget(&self) -> Option<RateLimit> {
        self.lock().rate.map(|per_second| RateLimit {
            per_minute: per_second * 60.0,
        })
    }

    /// Whether calls now wait for slots (the budget binds).
    pub(crate) fn binding(&self, now: Duration) -> bool {
        let s = self.lock();
        s.rate.is_some() && s.next_slot > now
    }

    /// Reserves the next start slot.
    pub(crate) fn reserve(&self, now: Duration) -> Ticket {
        let mut s = self.lock();
        let epoch = s.epoch;
        let Some(rate) = s.rate else {
            let wait = s.resume_at.saturating_sub(now);
            return Ticket {
                wait,
                epoch,
                waited: !wait.is_zero(),
            };
        };
        let start = now.max(s.resume_at).max(s.next_slot);
        s.next_slot = start + Duration::from_secs_f64(1.0 / rate);
        let wait = start.saturating_sub(now);
        Ticket {
            wait,
            epoch,
            waited: !wait.is_zero(),
        }
    }

    /// Whether a slot reserved with `ticket` still holds (no cut since).
    pub(crate) fn still_valid(&self, ticket: Ticket) -> bool {
        self.lock().epoch == ticket.epoch
    }

    /// Successes per second over the last [`WINDOW`] (at least one
    /// second).
    fn measured(s: &mut State, now: Duration) -> f64 {
        let from = now.saturating_sub(WINDOW);
        while s.successes.front().is_some_and(|&t| t < from) {
            s.successes.pop_front();
        }
        let first = s.successes.front().copied().unwrap_or(now);
        let span = now.saturating_sub(first).max(Duration::from_secs(1));
        #[allow(clippy::cast_precision_loss)]
        let n = s.successes.len() as f64;
        n / span.as_secs_f64()
    }

    /// A call with `ticket` saw `429` at `now`.
    pub(crate) fn throttled(&self, now: Duration, ticket: Ticket, retry_after: Option<Duration>) {
        let mut s = self.lock();
        if ticket.epoch != s.epoch {
            // Sent on a slot planned before the last cut: nothing new.
            return;
        }
        let new = match s.rate {
            None => {
                // Discovery: the burst is over; hold everyone off once, and
                // start from what passed (or one call per Retry-After).
                let hold = retry_after.unwrap_or(Duration::ZERO);
                s.resume_at = s.resume_at.max(now + hold);
                s.slow_start = true;
                let floor = 1.0 / hold.max(Duration::from_secs(1)).as_secs_f64();
                Self::measured(&mut s, now).max(floor) * BACKOFF
            }
            Some(rate) => {
                s.slow_start = false;
                rate * BACKOFF
            }
        };
        let new = new.max(MIN_RATE);
        s.rate = Some(s.ceiling.map_or(new, |c| new.min(c)));
        s.epoch += 1;
        // Re-plan from now at the new pace.
        s.next_slot = now.max(s.resume_at);
        tracing::debug!(
            rate_per_min = new * 60.0,
            ?retry_after,
            "rate limited: budget cut"
        );
    }

    /// A call with `ticket` succeeded at `now`.
    pub(crate) fn succeeded(&self, now: Duration, ticket: Ticket) {
        let mut s = self.lock();
        if s.successes.len() >= MAX_SAMPLES {
            s.successes.pop_front();
        }
        s.successes.push_back(now);
        if ticket.waited
            && let Some(rate) = s.rate
        {
            let factor = if s.slow_start {
                SLOW_START_GROWTH
            } else {
                1.0 + 1.0 / GROWTH
            };
            let grown = rate * factor;
            s.rate = Some(s.ceiling.map_or(grown, |c| grown.min(c)));
        }
    }
}

/// Which limiter a client uses.
#[derive(Debug)]
pub(crate) enum Limiter {
    /// The adaptive token bucket (the default).
    Adaptive(RateLimiter),
    /// Version 0.1's pace limiter, for comparison in the bench only.
    Legacy(PaceLimiter),
    /// No limiter at all (the official SDK's pattern), for the bench only.
    Off,
}

impl Limiter {
    pub(crate) fn reserve(&self, now: Duration) -> Ticket {
        match self {
            Limiter::Adaptive(l) => l.reserve(now),
            Limiter::Legacy(l) => Ticket {
                wait: l.reserve(now),
                epoch: 0,
                waited: false,
            },
            Limiter::Off => Ticket {
                wait: Duration::ZERO,
                epoch: 0,
                waited: false,
            },
        }
    }

    pub(crate) fn still_valid(&self, ticket: Ticket) -> bool {
        match self {
            Limiter::Adaptive(l) => l.still_valid(ticket),
            Limiter::Legacy(_) | Limiter::Off => true,
        }
    }

    pub(crate) fn throttled(
        &self,
        now: Duration,
        sent_at: Duration,
        ticket: Ticket,
        retry_after: Option<Duration>,
    ) {
        match self {
            Limiter::Adaptive(l) => l.throttled(now, ticket, retry_after),
            Limiter::Legacy(l) => l.throttled(now, sent_at, retry_after),
            Limiter::Off => {}
        }
    }

    pub(crate) fn succeeded(&self, now: Duration, ticket: Ticket) {
        match self {
            Limiter::Adaptive(l) => l.succeeded(now, ticket),
            Limiter::Legacy(l) => l.succeeded(),
            Limiter::Off => {}
        }
    }

    pub(crate) fn budget(&self) -> Option<RateLimit> {
        match self {
            Limiter::Adaptive(l) => l.budget(),
            Limiter::Legacy(_) | Limiter::Off => None,
        }
    }

    pub(crate) fn binding(&self, now: Duration) -> bool {
        match self {
            Limiter::Adaptive(l) => l.binding(now),
            Limiter::Legacy(_) | Limiter::Off => false,
        }
    }

    /// Whether a `429` with `Retry-After` is a free retry (the adaptive
    /// limiter) or costs an attempt like any failure (version 0.1).
    pub(crate) fn waits_out_429s(&self) -> bool {
        matches!(self, Limiter::Adaptive(_))
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "whole numbers, exact in f64")]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn rates_parse_and_bad_ones_name_the_field() {
        assert_eq!("500/min".parse::<RateLimit>().unwrap().per_minute(), 500.0);
        assert_eq!(" 2 / s ".parse::<RateLimit>().unwrap().per_minute(), 120.0);
        assert_eq!("3600/h".parse::<RateLimit>().unwrap().per_minute(), 60.0);
        for bad in [
            "", "500", "0/min", "-1/s", "x/min", "5/day", "NaN/s", "inf/s",
        ] {
            let e = bad.parse::<RateLimit>().unwrap_err().to_string();
            assert!(e.contains("rate_limit"), "{bad}: {e}");
        }
    }

    #[test]
    fn unlimited_until_the_first_429_then_paced_at_what_passed() {
        let l = RateLimiter::new(None);
        let t0 = secs(0.0);
        // 10 calls pass at once, then a 429 with Retry-After 1 s.
        for _ in 0..10 {
            let t = l.reserve(t0);
            assert_eq!(t.wait, Duration::ZERO);
            l.succeeded(t0, t);
        }
        let t = l.reserve(t0);
        l.throttled(t0, t, Some(secs(1.0)));
        let rate = l.budget().unwrap().requests_per_second();
        assert!((rate - 9.7).abs() < 1e-9, "{rate}");
        // Everyone waits out the Retry-After, then is spaced by 1/rate.
        assert_eq!(l.reserve(t0).wait, secs(1.0));
        let second = l.reserve(t0).wait;
        assert!((second.as_secs_f64() - (1.0 + 1.0 / 9.7)).abs() < 1e-6);
    }

    #[test]
    fn a_cut_voids_old_slots_and_one_round_cuts_once() {
        let l = RateLimiter::new(RateLimit::per_second(10.0).ok());
        let now = secs(100.0);
        let tickets: Vec<_> = (0..16).map(|_| l.reserve(now)).collect();
        for t in &tickets {
            l.throttled(now, *t, Some(secs(1.0)));
        }
        // Sixteen 429s from one round: one cut.
        assert!(!l.still_valid(tickets[15]));
        let rate = l.budget().unwrap().requests_per_second();
        assert!((rate - 10.0 * BACKOFF).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn a_configured_budget_is_never_exceeded_and_binding_grows_back() {
        let l = RateLimiter::new(RateLimit::per_minute_budget(600.0).ok());
        let mut now = secs(0.0);
        for _ in 0..100 {
            let t = l.reserve(now);
            now += t.wait;
            l.succeeded(now, t);
        }
        // 100 calls at 10/s from t=0 take 9.9 s.
        assert!((now.as_secs_f64() - 9.9).abs() < 1e-6, "{now:?}");
        assert_eq!(l.budget().unwrap().per_minute(), 600.0);
        // A 429 cuts to 9.7/s, and waiting successes grow it back, never
        // above 10/s.
        let t = l.reserve(now);
        l.throttled(now, t, Some(secs(1.0)));
        let cut = l.budget().unwrap().requests_per_second();
        assert!((cut - 10.0 * BACKOFF).abs() < 1e-9, "{cut}");
        for _ in 0..20_000 {
            let t = l.reserve(now);
            now += t.wait;
            l.succeeded(now, t);
        }
        assert_eq!(l.budget().unwrap().per_minute(), 600.0);
    }
}
