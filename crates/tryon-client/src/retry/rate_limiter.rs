//! The client-side rate limiter every API call passes through: a paced
//! token bucket that learns the account's request budget from `429`s.
//!
//! After smithy-rs's `client_rate_limiter.rs`, simplified for a service
//! whose budget is fixed per account:
//!
//! - Until the first `429` (and with no budget configured) calls are not
//!   limited at all.
//! - The first `429` turns the limiter on, holds the refused calls off for
//!   the server's `Retry-After`, and sets the rate to what the server let
//!   through (successes per second over the last [`WINDOW`], at least one
//!   second), then grows it by 2 % per success that had to wait (a slow
//!   start, like TCP's) until the next `429`.
//! - The limit paces only the classes of call ([`Route`]: submits, status
//!   and result reads, uploads) that have been refused: where a service
//!   limits only its submits, status polls are never slowed by the
//!   submits' `429`s. A class refused for the first time joins the limit,
//!   which is measured again over every refused class (what the server let
//!   through of them), like a first `429`.
//! - Every later `429` cuts the rate to [`BACKOFF`] times itself, at most
//!   once per *round*: a `429` answering a call planned before the last cut
//!   says nothing new. A `Retry-After` longer than a second says the server
//!   is closed until then (a window limit refuses every call until its
//!   window ends; cutting for each refusal would take the rate far below
//!   the budget, and growing back takes thousands of calls): the limited
//!   calls are held off until then, and refusals until then are the same
//!   round. Calls that already hold a slot of the old pace are re-planned.
//! - After that, each success of a call that had to wait for its slot (the
//!   budget binds) raises the rate by one part in [`GROWTH`], so a cut costs
//!   about `0.03 * GROWTH` calls before the next probe: a few `429`s per
//!   thousand calls, never a storm, and the client finds a raised budget
//!   again.
//! - A configured budget ([`RateLimit`]) is the account's: it paces every
//!   class together from the first call and is never exceeded; a limit
//!   learned from `429`s still applies under it.
//!
//! Why one learned limit over the refused classes rather than one per
//! class: where one budget covers every keyed request (the common case),
//! limits learned per class each probe the shared budget on their own, and
//! their sum overshoots it.
//!
//! Slots are spaced evenly (no burst), which also keeps a per-window limit
//! happy. The `429`'d call itself retries after its `Retry-After` through a
//! fresh slot (see `executor.rs`).

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

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
/// assert_eq!(r.requests_per_minute(), 500.0);
/// assert_eq!(RateLimit::per_second(2.0)?.requests_per_minute(), 120.0);
/// assert_eq!(RateLimit::per_minute(120.0)?, RateLimit::per_second(2.0)?);
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
    pub fn per_minute(n: f64) -> Result<Self> {
        Self::per_second(n / 60.0).map(|_| Self { per_minute: n })
    }

    /// Requests per second.
    pub fn requests_per_second(&self) -> f64 {
        self.per_minute / 60.0
    }

    /// Requests per minute.
    pub fn requests_per_minute(&self) -> f64 {
        self.per_minute
    }
}

impl std::fmt::Display for RateLimit {
    /// In the unit that reads best, the way [`FromStr`] takes it back:
    /// `20/s` from 600 a minute up, `1.5/min` down to one a minute, `1/h`
    /// below that (so a rate of one an hour never shows as `0/min`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per_minute = self.requests_per_minute();
        let (n, unit) = if per_minute >= 600.0 {
            (per_minute / 60.0, "s")
        } else if per_minute >= 1.0 {
            (per_minute, "min")
        } else {
            (per_minute * 60.0, "h")
        };
        let n = format!("{n:.2}");
        let n = n.trim_end_matches('0').trim_end_matches('.');
        write!(f, "{n}/{unit}")
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
        Self::per_minute(per_minute)
    }
}

/// A class of call, as far as the learned limit cares. A service may limit
/// its routes apart (only submits, say, with status reads free), so the
/// learned limit paces only the classes that have been refused: a `429` on
/// a submit never slows status polls that are not being refused.
///
/// Uploads are a class of their own: they go to another host (the storage
/// host), whose limits say nothing about the API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Billed `POST`s: the v2 submit and the v1 run.
    Submit,
    /// Status and result reads of a job.
    Read,
    /// The storage upload.
    Upload,
}

impl Route {
    fn index(self) -> usize {
        match self {
            Route::Submit => 0,
            Route::Read => 1,
            Route::Upload => 2,
        }
    }
}

/// A reserved start time for one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    /// How long to wait before sending.
    pub(crate) wait: Duration,
    /// The class of the call.
    route: Route,
    /// The limiter's epoch when reserved, if the learned limit planned
    /// the slot: a cut since then voids it. A slot only the configured
    /// budget planned is never voided (re-planning it would waste it).
    epoch: Option<u64>,
    /// Whether the learned limit bound (the call had to wait for its
    /// slot): only such a success tells the limit it may grow.
    waited: bool,
}

/// What the limiter knows of one [`Route`].
#[derive(Debug, Default)]
struct Lane {
    /// Whether this class has been refused (`429`): only refused classes
    /// are paced by the learned limit.
    refused: bool,
    /// When recent calls of this class succeeded (clock time), oldest first.
    successes: VecDeque<Duration>,
}

#[derive(Debug)]
struct State {
    /// The configured budget (calls per second over every class), never
    /// exceeded.
    ceiling: Option<f64>,
    /// The next free start slot of the configured budget (clock time).
    next_shared: Duration,
    /// The end of the latest configured slot held by a call no cut can
    /// void (one the learned limit did not plan): a cut frees every
    /// configured slot after it.
    shared_kept: Duration,
    /// The learned limit (calls per second over the refused classes);
    /// `None` until the first `429`.
    rate: Option<f64>,
    /// The next free start slot of the learned limit (clock time).
    next_slot: Duration,
    /// No call of a refused class starts before this (clock time).
    resume_at: Duration,
    /// Bumped at every cut; voids older reservations.
    epoch: u64,
    /// Until when the server said (by the `Retry-After` of the last cut)
    /// it refuses: more `429`s before then say nothing new.
    quiet_until: Duration,
    /// Growing fast, from an estimate to the next cut.
    slow_start: bool,
    /// Per class, indexed by [`Route::index`].
    lanes: [Lane; 3],
}

impl State {
    /// Successes per second of the refused classes over the last
    /// [`WINDOW`] (at least one second).
    fn measured(&mut self, now: Duration) -> f64 {
        let from = now.saturating_sub(WINDOW);
        let mut first = now;
        let mut n = 0usize;
        for lane in &mut self.lanes {
            while lane.successes.front().is_some_and(|&t| t < from) {
                lane.successes.pop_front();
            }
            if lane.refused {
                n += lane.successes.len();
                first = first.min(lane.successes.front().copied().unwrap_or(now));
            }
        }
        let span = now.saturating_sub(first).max(Duration::from_secs(1));
        #[allow(clippy::cast_precision_loss)]
        let n = n as f64;
        n / span.as_secs_f64()
    }

    /// The learned limit, if it applies to `route`.
    fn learned_for(&self, route: Route) -> Option<f64> {
        self.rate.filter(|_| self.lanes[route.index()].refused)
    }
}

/// The client-wide adaptive limiter (see the module docs).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    state: Mutex<State>,
}

impl RateLimiter {
    pub(crate) fn new(configured: Option<RateLimit>) -> Self {
        Self {
            state: Mutex::new(State {
                ceiling: configured.map(|r| r.requests_per_second()),
                next_shared: Duration::ZERO,
                shared_kept: Duration::ZERO,
                rate: None,
                next_slot: Duration::ZERO,
                resume_at: Duration::ZERO,
                epoch: 0,
                quiet_until: Duration::ZERO,
                slow_start: false,
                lanes: Default::default(),
            }),
        }
    }

    /// The state; a poisoned lock is used as it is (each update is a few
    /// plain assignments, so it cannot be torn).
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The budget currently applied, if any: the learned one (over the
    /// classes refused so far), else the configured one.
    pub(crate) fn budget(&self) -> Option<RateLimit> {
        let s = self.lock();
        s.rate.or(s.ceiling).map(|per_second| RateLimit {
            per_minute: per_second * 60.0,
        })
    }

    /// Whether calls of `route` now wait for slots (the budget binds).
    pub(crate) fn binding(&self, now: Duration, route: Route) -> bool {
        let s = self.lock();
        (s.learned_for(route).is_some() && s.next_slot > now)
            || (s.ceiling.is_some() && s.next_shared > now)
    }

    /// Reserves the next start slot for a call of `route`: the later of the
    /// learned limit's slot (once its class has been refused) and the
    /// configured budget's slot.
    pub(crate) fn reserve(&self, now: Duration, route: Route) -> Ticket {
        let mut s = self.lock();
        let learned = s.learned_for(route);
        let mut start = now;
        let mut waited = false;
        if let Some(rate) = learned {
            start = start.max(s.resume_at).max(s.next_slot);
            waited = start > now;
            s.next_slot = start + Duration::from_secs_f64(1.0 / rate);
        }
        if let Some(c) = s.ceiling {
            let shared = start.max(s.next_shared);
            if learned.is_some() && shared > start {
                // Keep the learned slot in step with the later start.
                s.next_slot += shared.saturating_sub(start);
            }
            start = shared;
            s.next_shared = start + Duration::from_secs_f64(1.0 / c);
            if learned.is_none() {
                s.shared_kept = s.shared_kept.max(s.next_shared);
            }
        }
        Ticket {
            wait: start.saturating_sub(now),
            route,
            epoch: learned.map(|_| s.epoch),
            waited,
        }
    }

    /// Whether a slot reserved with `ticket` still holds (no cut since it
    /// was planned by the learned limit).
    pub(crate) fn still_valid(&self, ticket: Ticket) -> bool {
        ticket.epoch.is_none_or(|e| e == self.lock().epoch)
    }

    /// A call with `ticket` saw `429` at `now`.
    pub(crate) fn throttled(&self, now: Duration, ticket: Ticket, retry_after: Option<Duration>) {
        let mut s = self.lock();
        let lane = ticket.route.index();
        let joins = !s.lanes[lane].refused;
        if !joins && (ticket.epoch != Some(s.epoch) || now < s.quiet_until) {
            // Sent on a slot planned before the last cut, or refused while
            // the server said it would be (a window limit refuses every
            // call until the window ends): nothing new.
            return;
        }
        s.lanes[lane].refused = true;
        let new = match s.rate {
            Some(rate) if !joins => {
                s.slow_start = false;
                rate * BACKOFF
            }
            _ => {
                // Discovery (or a class refused for the first time joins
                // the limit): the burst is over; hold the refused classes
                // off once, and start from what passed of them (or one
                // call per Retry-After).
                let hold = retry_after.unwrap_or(Duration::ZERO);
                s.resume_at = s.resume_at.max(now + hold);
                s.slow_start = true;
                let floor = 1.0 / hold.max(Duration::from_secs(1)).as_secs_f64();
                s.measured(now).max(floor) * BACKOFF
            }
        };
        let new = new.max(MIN_RATE);
        s.rate = Some(s.ceiling.map_or(new, |c| new.min(c)));
        s.epoch += 1;
        // A Retry-After longer than a second (HTTP's smallest step, which a
        // token bucket answers whenever it is empty) says the server is
        // closed until then, as a window limit is until its window ends:
        // hold the limited classes off until then (their calls would only
        // be refused), and take the refusals until then as this round.
        if let Some(closed) = retry_after.filter(|d| *d > Duration::from_secs(1)) {
            s.quiet_until = now + closed;
            s.resume_at = s.resume_at.max(s.quiet_until);
        }
        // Re-plan from now at the new pace. The calls the cut voids give
        // back their configured slots too: every configured slot after the
        // last one a call still holds is free again (left booked, each cut
        // would push the re-planned calls behind slots nobody uses).
        s.next_slot = now.max(s.resume_at);
        s.next_shared = s.next_shared.min(now.max(s.shared_kept));
        tracing::debug!(
            route = ?ticket.route,
            rate_per_min = new * 60.0,
            ?retry_after,
            "rate limited: budget cut"
        );
    }

    /// A call with `ticket` succeeded at `now`.
    pub(crate) fn succeeded(&self, now: Duration, ticket: Ticket) {
        let mut s = self.lock();
        let lane = &mut s.lanes[ticket.route.index()];
        if lane.successes.len() >= MAX_SAMPLES {
            lane.successes.pop_front();
        }
        lane.successes.push_back(now);
        if ticket.waited
            && let Some(rate) = s.learned_for(ticket.route)
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

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "whole numbers, exact in f64")]
mod tests;
