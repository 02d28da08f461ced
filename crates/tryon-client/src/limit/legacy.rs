//! The rate limiter of version 0.1 (before the adaptive token bucket),
//! kept only so the throughput bench can compare against it
//! ([`ClientBuilder::legacy_rate_limiter`](crate::ClientBuilder::legacy_rate_limiter)).
//!
//! When any call sees a `429`, every task of the client slows down: all
//! calls hold off until the server's `Retry-After` has passed, and calls
//! are then spaced by a pace that doubles on each further `429` and halves
//! on each success, so the client recovers its full speed once the server
//! stops throttling (additive-increase/multiplicative-decrease, in time).
//!
//! Like TCP's congestion control, the pace doubles at most once per round:
//! a `429` answering a call that was sent *before* the last slow-down says
//! nothing new (that call left at the old speed), so a burst of concurrent
//! calls throttled together slows the client once, not once per call.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Shortest spacing kept after a `429`.
const MIN_PACE: Duration = Duration::from_millis(100);
/// Longest spacing.
const MAX_PACE: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct State {
    /// No call starts before this (clock time).
    resume_at: Duration,
    /// Spacing between call starts; zero when not throttled.
    pace: Duration,
    /// The next free start slot when pacing.
    next_slot: Duration,
    /// When the pace was last slowed (clock time).
    slowed_at: Option<Duration>,
}

#[derive(Debug, Default)]
pub(crate) struct PaceLimiter {
    state: Mutex<State>,
}

impl PaceLimiter {
    /// The state. A thread that panicked while holding the lock cannot
    /// have left it torn (each update is a few plain assignments), so a
    /// poisoned lock is used as it is, never silently turned off: the one
    /// way this crate handles poisoning.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long the caller must wait before its call may start; reserves
    /// the slot.
    pub(crate) fn reserve(&self, now: Duration) -> Duration {
        let mut s = self.lock();
        if s.pace.is_zero() && s.resume_at <= now {
            return Duration::ZERO;
        }
        let start = now.max(s.resume_at).max(s.next_slot);
        s.next_slot = start + s.pace;
        start.saturating_sub(now)
    }

    /// A call sent at `sent_at` saw `429` at `now`: hold everyone off, and
    /// slow the pace unless the call left before the last slow-down.
    pub(crate) fn throttled(
        &self,
        now: Duration,
        sent_at: Duration,
        retry_after: Option<Duration>,
    ) {
        let mut s = self.lock();
        if s.slowed_at.is_none_or(|at| sent_at > at) {
            s.pace = (s.pace * 2).clamp(MIN_PACE, MAX_PACE);
            s.slowed_at = Some(now);
        }
        let hold = retry_after.unwrap_or(s.pace);
        s.resume_at = s.resume_at.max(now + hold);
        tracing::debug!(pace = ?s.pace, hold = ?hold, "rate limited: slowing all calls");
    }

    /// A call succeeded: speed back up.
    pub(crate) fn succeeded(&self) {
        let mut s = self.lock();
        if s.pace.is_zero() {
            return;
        }
        s.pace /= 2;
        if s.pace < MIN_PACE {
            s.pace = Duration::ZERO;
            tracing::debug!("rate limiter recovered full speed");
        }
    }

    #[cfg(test)]
    pub(crate) fn pace(&self) -> Duration {
        self.lock().pace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_holds_everyone_then_recovers() {
        let l = PaceLimiter::default();
        let t0 = Duration::from_secs(10);
        assert_eq!(l.reserve(t0), Duration::ZERO);
        l.throttled(t0, t0, Some(Duration::from_secs(3)));
        // Every caller now waits for Retry-After, then is spaced by the pace.
        assert_eq!(l.reserve(t0), Duration::from_secs(3));
        assert_eq!(l.reserve(t0), Duration::from_secs(3) + MIN_PACE);
        // A call that left after the slow-down and is throttled again.
        l.throttled(
            t0 + Duration::from_secs(4),
            t0 + Duration::from_secs(3),
            None,
        );
        assert_eq!(l.pace(), MIN_PACE * 2);
        l.succeeded();
        l.succeeded();
        assert_eq!(l.pace(), Duration::ZERO);
        let later = t0 + Duration::from_mins(1);
        assert_eq!(l.reserve(later), Duration::ZERO);
    }

    #[test]
    fn concurrent_429s_from_one_round_slow_the_pace_once() {
        let l = PaceLimiter::default();
        let sent = Duration::from_secs(1);
        for i in 0..16 {
            l.throttled(
                sent + Duration::from_millis(i),
                sent,
                Some(Duration::from_secs(1)),
            );
        }
        assert_eq!(
            l.pace(),
            MIN_PACE,
            "sixteen calls of one round: one slow-down"
        );
    }
}
