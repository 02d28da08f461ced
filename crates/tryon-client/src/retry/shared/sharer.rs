//! This process's side of a shared budget: each API call asks the store
//! for its slot (one round trip, carrying what happened since the last
//! one), a `429` tells it at once, and when the store is lost the process
//! goes on alone with a [`RateLimiter`] of its own at its share of the
//! budget, asking the store again every [`PROBE`].

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::super::limiter::Slot;
use super::super::rate_limiter::{RateLimit, RateLimiter, Route};
use super::decide::{Call, Op, Reply, Report};
use super::{BOOKED_AHEAD, SharedBudget, Store, StoreError};
use crate::clock::SharedClock;
use crate::error::{Error, Result};

/// How often a lost store is asked again.
pub(crate) const PROBE: Duration = Duration::from_secs(1);

/// A slot the store planned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SharedTicket {
    /// How long to wait before sending.
    pub(crate) wait: Duration,
    route: Route,
    /// The epoch the learned budget planned it in; negative if it did not.
    epoch: f64,
    /// Whether it waited for the learned budget.
    waited: bool,
}

/// What the last answer said, on this process's clock.
#[derive(Debug, Clone, Copy)]
struct Seen {
    epoch: f64,
    rate: f64,
    told: f64,
    refused: f64,
    sharers: f64,
    learned_free_at: Duration,
    told_free_at: Duration,
}

/// Going on alone while the store is lost.
#[derive(Debug)]
struct Alone {
    limiter: RateLimiter,
    /// The store is asked again (by one call) from then on.
    next_probe: Duration,
}

#[derive(Debug, Default)]
struct Local {
    seen: Option<Seen>,
    /// Successes since the last call, for the next one to report.
    pending: Report,
    alone: Option<Alone>,
}

/// One process's membership of a shared budget.
pub(crate) struct Sharer {
    store: Box<dyn Store>,
    /// The budget as messages name it (URL without password, and name).
    shown: String,
    id: String,
    told: f64,
    clock: SharedClock,
    client_time: bool,
    gate: Semaphore,
    local: Mutex<Local>,
}

impl std::fmt::Debug for Sharer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sharer")
            .field("budget", &self.shown)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn us(d: f64) -> Duration {
    Duration::try_from_secs_f64(d / 1e6).unwrap_or(Duration::ZERO)
}

fn refused(bits: f64, route: Route) -> bool {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bits = bits as u8;
    bits & (1 << route.index()) != 0
}

impl Sharer {
    pub(crate) fn new(
        budget: &SharedBudget,
        api_key: &SecretString,
        told: Option<RateLimit>,
        clock: SharedClock,
    ) -> Result<Self> {
        Ok(Self {
            store: budget.store(api_key)?,
            shown: budget.to_string(),
            id: format!("{:016x}", rand::random::<u64>()),
            told: told.map_or(0.0, |r| r.requests_per_second()),
            clock,
            client_time: budget.client_time(),
            gate: Semaphore::new(BOOKED_AHEAD),
            local: Mutex::new(Local::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until this process holds fewer than [`BOOKED_AHEAD`] slots.
    pub(crate) async fn gate(&self) -> Option<SemaphorePermit<'_>> {
        self.gate.acquire().await.ok()
    }

    /// One store call of `op` for `route`, carrying the pending report.
    async fn ask(&self, op: Op, route: Route) -> std::result::Result<Reply, StoreError> {
        let report = std::mem::take(&mut self.lock().pending);
        let call = Call {
            op,
            sharer: self.id.clone(),
            told: self.told,
            route: route.index(),
            report,
        };
        let now = self
            .client_time
            .then(|| self.clock.now().as_secs_f64() * 1e6);
        #[cfg(feature = "test-util")]
        let _still = self.client_time.then(crate::test_util::hold_paused_clock);
        self.store.call(now, &call).await
    }

    /// Takes in an answer received at `now` (this process's clock).
    fn saw(&self, local: &mut Local, now: Duration, reply: &Reply) {
        local.seen = Some(Seen {
            epoch: reply.epoch,
            rate: reply.rate,
            told: reply.told,
            refused: reply.refused,
            sharers: reply.sharers.max(1.0),
            learned_free_at: now + us(reply.learned_ahead_us),
            told_free_at: now + us(reply.told_ahead_us),
        });
        if local.alone.take().is_some() {
            tracing::warn!(budget = %self.shown, "shared budget is back: sharing it again");
        }
    }

    /// The store did not answer at `now`: go on alone (saying so once), or
    /// stay alone and ask again in a [`PROBE`].
    fn lost<'l>(&self, local: &'l mut Local, now: Duration, e: &StoreError) -> &'l mut Alone {
        let seen = local.seen;
        let alone = local.alone.get_or_insert_with(|| {
            // The told (else learned) budget over the sharers seen last: a
            // share that keeps the account's budget if every sharer does it.
            let (budget, sharers) = match seen {
                Some(s) if s.told > 0.0 => (Some(s.told), s.sharers),
                Some(s) if s.rate > 0.0 => (Some(s.rate), s.sharers),
                _ => ((self.told > 0.0).then_some(self.told), 1.0),
            };
            let share = budget.and_then(|b| RateLimit::per_second(b / sharers).ok());
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let seen_sharers = sharers as u32;
            tracing::warn!(
                budget = %self.shown,
                error = %e,
                share = %share.map_or_else(|| "no limit until a 429".to_string(), |r| r.to_string()),
                sharers = seen_sharers,
                "shared budget lost: going on alone at a share of the budget until it is back"
            );
            // Slots booked from the store before it was lost are still
            // sent: the lone pace starts after the last of them.
            let booked = seen.map_or(now, |s| s.told_free_at.max(s.learned_free_at));
            Alone {
                limiter: RateLimiter::starting_at(share, booked.min(now + PROBE * 10)),
                next_probe: now,
            }
        });
        alone.next_probe = now + PROBE;
        alone
    }

    /// Joins now: registers with the store and reads the budget.
    pub(crate) async fn join(&self) -> Result<()> {
        let answer = self.ask(Op::Join, Route::Read).await;
        let now = self.clock.now();
        let mut local = self.lock();
        match answer {
            Ok(reply) => {
                self.saw(&mut local, now, &reply);
                Ok(())
            }
            Err(e) => Err(Error::config(
                "shared_budget",
                format!("{}: {e}", self.shown),
            )),
        }
    }

    /// The next start slot for a call of `route`.
    pub(crate) async fn reserve(&self, now: Duration, route: Route) -> Slot {
        {
            let mut local = self.lock();
            if let Some(alone) = &mut local.alone {
                if now < alone.next_probe {
                    return Slot::Local(alone.limiter.reserve(now, route));
                }
                // This call asks the store; the others stay alone until it
                // has an answer (or for a probe's time, if it never does).
                alone.next_probe = now + PROBE;
            }
        }
        let answer = self.ask(Op::Reserve, route).await;
        let now = self.clock.now();
        let mut local = self.lock();
        match answer {
            Ok(reply) => {
                self.saw(&mut local, now, &reply);
                Slot::Shared(SharedTicket {
                    wait: us(reply.wait_us),
                    route,
                    epoch: reply.ticket_epoch,
                    waited: reply.waited,
                })
            }
            Err(e) => Slot::Local(self.lost(&mut local, now, &e).limiter.reserve(now, route)),
        }
    }

    /// Whether `slot` still holds: no cut since the learned budget planned
    /// it (as far as this process has heard), and for a slot of the lone
    /// limiter, that it is still alone.
    #[allow(clippy::float_cmp, reason = "epochs are whole numbers")]
    pub(crate) fn still_valid(&self, slot: &Slot) -> bool {
        let local = self.lock();
        match slot {
            Slot::Local(t) => local
                .alone
                .as_ref()
                .is_some_and(|a| a.limiter.still_valid(*t)),
            Slot::Shared(t) => t.epoch < 0.0 || local.seen.is_none_or(|s| s.epoch == t.epoch),
        }
    }

    /// A call with `slot` saw `429` at `now`: tell everybody.
    pub(crate) async fn throttled(
        &self,
        now: Duration,
        slot: &Slot,
        retry_after: Option<Duration>,
    ) {
        match slot {
            Slot::Local(t) => {
                if let Some(alone) = &self.lock().alone {
                    alone.limiter.throttled(now, *t, retry_after);
                }
            }
            Slot::Shared(t) => {
                let op = Op::Throttled {
                    epoch: t.epoch,
                    retry_after_us: retry_after.map_or(-1.0, |d| d.as_secs_f64() * 1e6),
                };
                let answer = self.ask(op, t.route).await;
                let now = self.clock.now();
                let mut local = self.lock();
                match answer {
                    Ok(reply) => self.saw(&mut local, now, &reply),
                    Err(e) => {
                        self.lost(&mut local, now, &e);
                    }
                }
            }
        }
    }

    /// A call with `slot` succeeded at `now`: reported with the next call.
    pub(crate) fn succeeded(&self, now: Duration, slot: &Slot) {
        let mut local = self.lock();
        match slot {
            Slot::Local(t) => {
                if let Some(alone) = &local.alone {
                    alone.limiter.succeeded(now, *t);
                }
            }
            Slot::Shared(t) => {
                let p = &mut local.pending;
                p.successes[t.route.index()] += 1;
                if t.waited {
                    p.waited += 1;
                }
            }
        }
    }

    /// Whether calls of `route` now wait for slots.
    pub(crate) fn binding(&self, now: Duration, route: Route) -> bool {
        let local = self.lock();
        if let Some(alone) = &local.alone {
            return alone.limiter.binding(now, route);
        }
        local.seen.is_some_and(|s| {
            (s.rate > 0.0 && refused(s.refused, route) && s.learned_free_at > now)
                || (s.told > 0.0 && s.told_free_at > now)
        })
    }

    /// The budget applied now: learned, else told (for the whole budget,
    /// not this process's share of it); alone, the lone limiter's.
    pub(crate) fn budget(&self) -> Option<RateLimit> {
        let local = self.lock();
        if let Some(alone) = &local.alone {
            return alone.limiter.budget();
        }
        let s = local.seen?;
        let per_second = if s.rate > 0.0 { s.rate } else { s.told };
        (per_second > 0.0)
            .then(|| RateLimit::per_second(per_second).ok())
            .flatten()
            .or_else(|| {
                (self.told > 0.0)
                    .then(|| RateLimit::per_second(self.told).ok())
                    .flatten()
            })
    }

    /// Live sharers when last heard (this one included), if heard at all.
    pub(crate) fn sharers(&self) -> Option<u32> {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        self.lock().seen.map(|s| s.sharers as u32)
    }
}
