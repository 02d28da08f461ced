//! The rate limiter the executor asks for each API call's slot: the
//! process's own (`rate_limiter.rs`), or a budget shared with other
//! processes and machines (`shared/`), which falls back to one of its own
//! while its store is lost.

use std::time::Duration;

use tokio::sync::SemaphorePermit;

use super::rate_limiter::{RateLimit, RateLimiter, Route, Ticket};
use super::shared::{SharedTicket, Sharer};
use crate::error::Result;

/// Whose limiter paces the client's API calls.
#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "one per client, made once")]
pub(crate) enum Limiter {
    /// This process's own.
    Local(RateLimiter),
    /// A budget shared with others.
    Shared(Sharer),
}

/// A reserved start slot, from whichever limiter planned it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    /// Planned by a limiter of this process.
    Local(Ticket),
    /// Planned by a shared budget's store.
    Shared(SharedTicket),
}

impl Slot {
    /// How long to wait before sending.
    pub(crate) fn wait(&self) -> Duration {
        match self {
            Slot::Local(t) => t.wait,
            Slot::Shared(t) => t.wait,
        }
    }
}

impl Limiter {
    /// Waits for a turn to book a slot (a shared budget lets each process
    /// hold only a few booked ahead; see `shared/mod.rs`).
    pub(crate) async fn gate(&self) -> Option<SemaphorePermit<'_>> {
        match self {
            Limiter::Local(_) => None,
            Limiter::Shared(s) => s.gate().await,
        }
    }

    /// The next start slot for a call of `route`.
    pub(crate) async fn reserve(&self, now: Duration, route: Route) -> Slot {
        match self {
            Limiter::Local(l) => Slot::Local(l.reserve(now, route)),
            Limiter::Shared(s) => s.reserve(now, route).await,
        }
    }

    /// Whether `slot` still holds (no cut since it was planned).
    pub(crate) fn still_valid(&self, slot: &Slot) -> bool {
        match (self, slot) {
            (Limiter::Local(l), Slot::Local(t)) => l.still_valid(*t),
            (Limiter::Shared(s), slot) => s.still_valid(slot),
            (Limiter::Local(_), Slot::Shared(_)) => true,
        }
    }

    /// A call with `slot` saw `429` at `now`.
    pub(crate) async fn throttled(
        &self,
        now: Duration,
        slot: &Slot,
        retry_after: Option<Duration>,
    ) {
        match (self, slot) {
            (Limiter::Local(l), Slot::Local(t)) => l.throttled(now, *t, retry_after),
            (Limiter::Shared(s), slot) => s.throttled(now, slot, retry_after).await,
            (Limiter::Local(_), Slot::Shared(_)) => {}
        }
    }

    /// A call with `slot` succeeded at `now`.
    pub(crate) fn succeeded(&self, now: Duration, slot: &Slot) {
        match (self, slot) {
            (Limiter::Local(l), Slot::Local(t)) => l.succeeded(now, *t),
            (Limiter::Shared(s), slot) => s.succeeded(now, slot),
            (Limiter::Local(_), Slot::Shared(_)) => {}
        }
    }

    /// Whether calls of `route` now wait for slots.
    pub(crate) fn binding(&self, now: Duration, route: Route) -> bool {
        match self {
            Limiter::Local(l) => l.binding(now, route),
            Limiter::Shared(s) => s.binding(now, route),
        }
    }

    /// The budget applied now, if any.
    pub(crate) fn budget(&self) -> Option<RateLimit> {
        match self {
            Limiter::Local(l) => l.budget(),
            Limiter::Shared(s) => s.budget(),
        }
    }

    /// Joins the shared budget now, if there is one.
    pub(crate) async fn join(&self) -> Result<()> {
        match self {
            Limiter::Local(_) => Ok(()),
            Limiter::Shared(s) => s.join().await,
        }
    }

    /// The live sharers last heard of, with a shared budget.
    pub(crate) fn sharers(&self) -> Option<u32> {
        match self {
            Limiter::Local(_) => None,
            Limiter::Shared(s) => s.sharers(),
        }
    }
}
