//! Every decision of a shared budget, as one pure function of its state
//! ([`decide`]): the file backend runs it under its lock, and `budget.lua`
//! is the same function, line for line, for Redis to run atomically (the
//! shared-budget tests run one suite against both and compare each reply).
//!
//! It is the process's own limiter (`rate_limiter.rs`) with its state moved
//! where every sharer sees it: a told budget paces every class of call, a
//! budget learned from `429`s paces the refused classes, one cut per round
//! (the epoch), a hold-off until a `Retry-After`, growth per success that
//! waited. Two things differ, because sharers report what happened in the
//! request they send next rather than in a call of its own (one round trip
//! per API call):
//!
//! - successes are counted per class in two windows of [`WINDOW`] (the
//!   current one and the one before, weighted by how much of it is still
//!   inside the last [`WINDOW`]), not kept one by one;
//! - growth is applied for the waited successes a report carries, at most
//!   [`MAX_GROWTH_STEPS`] at a time;
//! - until a budget is known (none told, none learned), calls are paced by
//!   a *discovery* pace that starts at [`PROBE_RATE`] a second and doubles
//!   every second: sharers that start together would otherwise send all of
//!   their first calls at once (three batches of 16 send 48 into a bucket
//!   of 10), and every one of them past the bucket is a `429`. The first
//!   `429` ends it, as it ends a lone client's unlimited start, and voids
//!   the slots booked at that pace.
//!
//! Times are microseconds on the store's clock (the Redis server's `TIME`,
//! the machine's clock for a file), as `f64`, so the Lua script (whose
//! numbers are doubles) computes exactly what this does.
#![allow(
    clippy::float_cmp,
    reason = "whole numbers (epochs, windows, flags) compared exactly, as the Lua script compares them"
)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::super::rate_limiter::{BACKOFF, GROWTH, MAX_RATE, MIN_RATE, SLOW_START_GROWTH, WINDOW};

/// The format of the state; a state of another version is refused.
pub(crate) const VERSION: u32 = 1;
/// A sharer not heard of for this long is no longer counted (µs).
pub(crate) const SHARER_TTL_US: f64 = 30e6;
/// Most sharers counted; the longest unheard are dropped first.
pub(crate) const MAX_SHARERS: usize = 1024;
/// A stored time further ahead than this is not trusted (a clock that
/// stepped back, a state written by hand): it is taken as now (µs).
pub(crate) const HORIZON_US: f64 = 86_400e6;
/// Most successes of one class a report may carry.
pub(crate) const MAX_REPORT: u64 = 100_000;
/// Most growth steps one report applies.
pub(crate) const MAX_GROWTH_STEPS: u64 = 10_000;
/// The longest `Retry-After` the store holds everybody off for (µs).
pub(crate) const MAX_RETRY_AFTER_US: f64 = 3_600e6;
/// The discovery pace's first rate (calls a second, over all sharers).
pub(crate) const PROBE_RATE: f64 = 10.0;
/// The discovery pace doubles this many times at most (to about 10^13/s).
pub(crate) const MAX_PROBE_DOUBLINGS: f64 = 40.0;

/// The success-counting window in µs.
pub(crate) fn window_us() -> f64 {
    WINDOW.as_secs_f64() * 1e6
}

/// What a shared budget remembers. Field names are those of the Redis
/// hash and of the file's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct State {
    /// [`VERSION`].
    pub(crate) v: u32,
    /// The told budget (calls per second), 0 for none.
    pub(crate) told: f64,
    /// The learned budget (calls per second over the refused classes), 0
    /// until the first `429`.
    pub(crate) rate: f64,
    /// The next free slot of the learned budget.
    pub(crate) tat_l: f64,
    /// The next free slot of the told budget.
    pub(crate) tat_c: f64,
    /// The end of the last told slot held by a call no cut can void.
    pub(crate) kept: f64,
    /// No call of a refused class starts before this.
    pub(crate) resume: f64,
    /// Refusals before this say nothing new (the last cut's Retry-After).
    pub(crate) quiet: f64,
    /// Bumped at every cut.
    pub(crate) epoch: f64,
    /// 1 while growing fast (from a first estimate to the next cut).
    pub(crate) slow: f64,
    /// The refused classes, one bit per class (1 submits, 2 reads, 4 uploads).
    pub(crate) refused: f64,
    /// The current counting window (its index: time / [`WINDOW`]).
    pub(crate) win: f64,
    /// Successes per class in the current window.
    pub(crate) cur: [f64; 3],
    /// Successes per class in the window before.
    pub(crate) prev: [f64; 3],
    /// When the first success was reported; -1 for never.
    pub(crate) first: f64,
    /// When the discovery pace began; -1 for not yet.
    pub(crate) probe: f64,
    /// The next free slot of the discovery pace.
    pub(crate) tat_p: f64,
    /// Each sharer's id and when it was last heard of.
    pub(crate) sharers: BTreeMap<String, f64>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            v: VERSION,
            told: 0.0,
            rate: 0.0,
            tat_l: 0.0,
            tat_c: 0.0,
            kept: 0.0,
            resume: 0.0,
            quiet: 0.0,
            epoch: 0.0,
            slow: 0.0,
            refused: 0.0,
            win: 0.0,
            cur: [0.0; 3],
            prev: [0.0; 3],
            first: -1.0,
            probe: -1.0,
            tat_p: 0.0,
            sharers: BTreeMap::new(),
        }
    }
}

/// What a sharer asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    /// Register, and read the state.
    Join,
    /// A start slot for one call.
    Reserve,
    /// A call of the ticket's epoch (-1: planned by the told budget alone)
    /// was answered `429`, with this `Retry-After` (µs; -1 for none).
    Throttled {
        /// The epoch of the refused call's ticket, -1 if it had none.
        epoch: f64,
        /// The refusal's `Retry-After` in µs, -1 for none.
        retry_after_us: f64,
    },
}

/// What a sharer saw since its last call: successes per class, and how
/// many of them had waited for a learned slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Report {
    /// Successes per class (indexed by `Route::index`).
    pub(crate) successes: [u64; 3],
    /// Of them, how many had waited for their slot of the learned budget.
    pub(crate) waited: u64,
}

/// One request to the store.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    /// What is asked.
    pub(crate) op: Op,
    /// The sharer's id.
    pub(crate) sharer: String,
    /// The sharer's told budget (calls per second), 0 for none.
    pub(crate) told: f64,
    /// The class of the call (`Route::index`).
    pub(crate) route: usize,
    /// What the sharer saw since its last call.
    pub(crate) report: Report,
}

/// The store's answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Reply {
    /// How long the call waits for its slot (µs; 0 unless reserving).
    pub(crate) wait_us: f64,
    /// The epoch the learned budget planned the slot in; -1 if it did not.
    pub(crate) ticket_epoch: f64,
    /// Whether the slot waited for the learned budget.
    pub(crate) waited: bool,
    /// The epoch now.
    pub(crate) epoch: f64,
    /// Sharers heard of in the last [`SHARER_TTL_US`], this one included.
    pub(crate) sharers: f64,
    /// The learned budget (calls per second), 0 for none.
    pub(crate) rate: f64,
    /// The told budget (calls per second), 0 for none.
    pub(crate) told: f64,
    /// The refused classes (bits).
    pub(crate) refused: f64,
    /// How far the learned budget's next free slot is ahead of now (µs).
    pub(crate) learned_ahead_us: f64,
    /// How far the told budget's next free slot is ahead of now (µs).
    pub(crate) told_ahead_us: f64,
}

fn is_refused(s: &State, route: usize) -> bool {
    // Bits of a whole number below 8 (checked when the state is read).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bits = s.refused as u8;
    bits & (1 << route) != 0
}

/// Moves the counting windows up to `now`.
fn roll(s: &mut State, now: f64) {
    let w = window_us();
    let idx = (now / w).floor();
    if idx > s.win {
        if idx == s.win + 1.0 {
            s.prev = s.cur;
        } else {
            s.prev = [0.0; 3];
        }
        s.cur = [0.0; 3];
        s.win = idx;
    }
}

/// Successes per second of the refused classes over about the last
/// [`WINDOW`] (at least one second).
fn measured(s: &mut State, now: f64) -> f64 {
    roll(s, now);
    let w = window_us();
    let mut nc = 0.0;
    let mut np = 0.0;
    for r in 0..3 {
        if is_refused(s, r) {
            nc += s.cur[r];
            np += s.prev[r];
        }
    }
    if s.first < 0.0 {
        return 0.0;
    }
    let since = now - s.first;
    let (count, span) = if since <= w {
        (nc + np, since.max(1e6))
    } else {
        let frac = (now - s.win * w) / w;
        (np * (1.0 - frac) + nc, w)
    };
    count / span * 1e6
}

/// Takes in a sharer's report: its successes, and growth for those that
/// waited.
fn apply_report(s: &mut State, now: f64, report: Report) {
    roll(s, now);
    let mut any = false;
    for (r, &n) in report.successes.iter().enumerate() {
        if n > 0 {
            any = true;
            #[allow(clippy::cast_precision_loss)]
            let n = n.min(MAX_REPORT) as f64;
            s.cur[r] += n;
        }
    }
    if any && s.first < 0.0 {
        s.first = now;
    }
    if s.rate > 0.0 && report.waited > 0 {
        let factor = if s.slow > 0.0 {
            SLOW_START_GROWTH
        } else {
            1.0 + 1.0 / GROWTH
        };
        for _ in 0..report.waited.min(MAX_GROWTH_STEPS) {
            s.rate *= factor;
            if s.told > 0.0 && s.rate > s.told {
                s.rate = s.told;
            }
        }
    }
}

/// Registers `sharer` as heard of now, forgets sharers unheard for
/// [`SHARER_TTL_US`], and keeps at most [`MAX_SHARERS`] (as the Redis
/// sorted set does: by time, then by id).
fn register(s: &mut State, sharer: &str, now: f64) {
    s.sharers.insert(sharer.to_string(), now);
    let cutoff = now - SHARER_TTL_US;
    s.sharers.retain(|_, &mut last| last > cutoff);
    if s.sharers.len() > MAX_SHARERS {
        let mut by_age: Vec<(f64, String)> =
            s.sharers.iter().map(|(id, &t)| (t, id.clone())).collect();
        by_age.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        for (_, id) in by_age.iter().take(s.sharers.len() - MAX_SHARERS) {
            s.sharers.remove(id);
        }
    }
}

/// Times further ahead than [`HORIZON_US`] are taken as now.
fn clamp(s: &mut State, now: f64) {
    let limit = now + HORIZON_US;
    for t in [
        &mut s.tat_l,
        &mut s.tat_c,
        &mut s.kept,
        &mut s.resume,
        &mut s.quiet,
        &mut s.tat_p,
    ] {
        if *t > limit {
            *t = now;
        }
    }
    if s.first > now {
        s.first = now;
    }
    if s.probe > now {
        s.probe = now;
    }
    // Windows from the future say nothing about now.
    if s.win * window_us() > limit {
        s.win = 0.0;
        s.cur = [0.0; 3];
        s.prev = [0.0; 3];
    }
}

/// A start slot for a call of class `route` (`rate_limiter.rs`'s
/// `reserve`, on the shared state). Returns (wait, ticket epoch, waited).
fn reserve(s: &mut State, now: f64, route: usize) -> (f64, f64, bool) {
    if s.rate <= 0.0 && s.told <= 0.0 {
        // No budget known yet: the discovery pace (see the module docs).
        if s.probe < 0.0 {
            s.probe = now;
        }
        let doublings = ((now - s.probe) / 1e6).floor().min(MAX_PROBE_DOUBLINGS);
        #[allow(clippy::cast_possible_truncation, reason = "a whole number, 0..=40")]
        let pace = PROBE_RATE * 2f64.powi(doublings as i32);
        let start = now.max(s.tat_p);
        s.tat_p = start + 1e6 / pace;
        // Planned in this epoch, so the first cut voids the slots booked
        // at the discovery pace (else they are sent, and refused, anyway).
        return (start - now, s.epoch, false);
    }
    let learned = s.rate > 0.0 && is_refused(s, route);
    let mut start = now;
    let mut waited = false;
    if learned {
        start = start.max(s.resume).max(s.tat_l);
        waited = start > now;
        s.tat_l = start + 1e6 / s.rate;
    }
    if s.told > 0.0 {
        let shared = start.max(s.tat_c);
        if learned && shared > start {
            s.tat_l += shared - start;
        }
        start = shared;
        s.tat_c = start + 1e6 / s.told;
        if !learned {
            s.kept = s.kept.max(s.tat_c);
        }
    }
    let epoch = if learned { s.epoch } else { -1.0 };
    (start - now, epoch, waited)
}

/// A call of class `route` planned in `epoch` saw `429` at `now`
/// (`rate_limiter.rs`'s `throttled`, on the shared state).
fn throttled(s: &mut State, now: f64, route: usize, epoch: f64, retry_after_us: f64) {
    let joins = !is_refused(s, route);
    if !joins && (epoch != s.epoch || now < s.quiet) {
        return;
    }
    s.refused += if joins { f64::from(1u8 << route) } else { 0.0 };
    let hold = if retry_after_us >= 0.0 {
        retry_after_us.min(MAX_RETRY_AFTER_US)
    } else {
        -1.0
    };
    let new = if s.rate > 0.0 && !joins {
        s.slow = 0.0;
        s.rate * BACKOFF
    } else {
        let h = hold.max(0.0);
        s.resume = s.resume.max(now + h);
        s.slow = 1.0;
        let floor = 1e6 / h.max(1e6);
        measured(s, now).max(floor) * BACKOFF
    };
    let new = new.max(MIN_RATE);
    s.rate = if s.told > 0.0 { new.min(s.told) } else { new };
    s.epoch += 1.0;
    if hold > 1e6 {
        s.quiet = now + hold;
        s.resume = s.resume.max(s.quiet);
    }
    s.tat_l = now.max(s.resume);
    s.tat_c = s.tat_c.min(now.max(s.kept));
}

/// Runs `call` on the state at `now` (µs on the store's clock) and
/// answers it. The state must have passed [`check`].
pub(crate) fn decide(s: &mut State, now: f64, call: &Call) -> Reply {
    clamp(s, now);
    register(s, &call.sharer, now);
    if call.told > 0.0 {
        s.told = call.told.min(MAX_RATE);
    }
    if s.told > 0.0 && s.rate > s.told {
        s.rate = s.told;
    }
    apply_report(s, now, call.report);
    let route = call.route.min(2);
    let (wait_us, ticket_epoch, waited) = match call.op {
        Op::Join => (0.0, -1.0, false),
        Op::Reserve => reserve(s, now, route),
        Op::Throttled {
            epoch,
            retry_after_us,
        } => {
            throttled(s, now, route, epoch, retry_after_us);
            (0.0, -1.0, false)
        }
    };
    #[allow(clippy::cast_precision_loss)]
    let sharers = s.sharers.len() as f64;
    Reply {
        wait_us,
        ticket_epoch,
        waited,
        epoch: s.epoch,
        sharers,
        rate: s.rate,
        told: s.told,
        refused: s.refused,
        learned_ahead_us: s.tat_l - now,
        told_ahead_us: s.tat_c - now,
    }
}

/// Checks a state read from a store: the version, and every field a
/// finite number in its range. The error names the field.
pub(crate) fn check(s: &State) -> Result<(), String> {
    if s.v != VERSION {
        return Err(format!(
            "version {} (this client reads version {VERSION})",
            s.v
        ));
    }
    let fields = [
        ("told", s.told),
        ("rate", s.rate),
        ("tat_l", s.tat_l),
        ("tat_c", s.tat_c),
        ("kept", s.kept),
        ("resume", s.resume),
        ("quiet", s.quiet),
        ("epoch", s.epoch),
        ("slow", s.slow),
        ("refused", s.refused),
        ("win", s.win),
    ];
    for (name, x) in fields {
        if !x.is_finite() || x < 0.0 {
            return Err(format!("field {name} is {x}, not a finite number >= 0"));
        }
    }
    for (name, x) in [("told", s.told), ("rate", s.rate)] {
        if x > MAX_RATE {
            return Err(format!(
                "field {name} is {x}, above {MAX_RATE} calls a second"
            ));
        }
    }
    if s.epoch.fract() != 0.0 || s.win.fract() != 0.0 {
        return Err("fields epoch and win must be whole numbers".into());
    }
    if !(s.slow == 0.0 || s.slow == 1.0) {
        return Err(format!("field slow is {}, not 0 or 1", s.slow));
    }
    if s.refused.fract() != 0.0 || s.refused > 7.0 {
        return Err(format!(
            "field refused is {}, not a whole number 0..=7",
            s.refused
        ));
    }
    for (name, counts) in [("cur", &s.cur), ("prev", &s.prev)] {
        if counts.iter().any(|x| !x.is_finite() || *x < 0.0) {
            return Err(format!(
                "field {name} holds a count that is not a finite number >= 0"
            ));
        }
    }
    for (name, x) in [("first", s.first), ("probe", s.probe)] {
        if !x.is_finite() || x < -1.0 {
            return Err(format!("field {name} is {x}, not a time or -1"));
        }
    }
    if !s.tat_p.is_finite() || s.tat_p < 0.0 {
        return Err(format!(
            "field tat_p is {}, not a finite number >= 0",
            s.tat_p
        ));
    }
    if s.sharers.len() > MAX_SHARERS
        || s.sharers
            .iter()
            .any(|(id, t)| id.len() > 64 || !t.is_finite())
    {
        return Err("field sharers is not a list of at most 1024 ids and times".into());
    }
    Ok(())
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
