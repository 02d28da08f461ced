//! The one retry executor every request goes through: submit, status,
//! result, upload, v1 run, the account's reads (credits, history) and
//! output download.
//!
//! After smithy-rs, the pieces are kept apart: a *classifier* (per kind of
//! answer: the API classifier in `classify.rs`, the downloader for output
//! hosts) turns one attempt's outcome into a [`Failure`] that says whether
//! the call may be retried; this executor alone decides whether it *is*
//! retried and how long to wait, by the rules on
//! [`RetryPolicy`](crate::RetryPolicy), drawing on the client-wide
//! [`RetryBudget`] and waiting for the shared [`RateLimiter`]'s slots.

use std::time::Duration;

use super::RetryPolicy;
use super::budget::RetryBudget;
use super::limiter::{Limiter, Slot};
use super::rate_limiter::{RateLimit, Route};
use crate::clock::SharedClock;
use crate::error::Error;

/// Clock time after which no sleep may end, and when the wait began (to
/// report how long it lasted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline {
    /// No sleep may end after this clock time.
    pub(crate) at: Duration,
    /// When the wait began.
    pub(crate) started: Duration,
}

impl Deadline {
    /// A deadline `timeout` after `now`.
    pub(crate) fn after(now: Duration, timeout: Duration) -> Self {
        Self {
            at: now.saturating_add(timeout),
            started: now,
        }
    }
}

/// What is being sent: decides what may be retried, and who is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call<'a> {
    /// A billed `POST` (v2 submit or v1 run): retried only when provably not
    /// taken.
    Submit,
    /// The storage upload: retried like a read (a duplicate upload costs
    /// nothing but storage).
    Upload,
    /// A status or result read of a job, which always has an id, and may
    /// run under a wait's deadline.
    Read {
        /// The job read.
        request_id: &'a str,
        /// The wait's deadline, if any.
        deadline: Option<Deadline>,
    },
    /// A not-billed read of the account's own records (credit balance,
    /// request history, one history entry): retried like a job's read,
    /// through the same rate limiter (its class of reads: every keyed call
    /// counts against the account's limit), with no deadline. A `404` is
    /// not a job's expiry: the caller reads it.
    Account {
        /// The request the read is about (a history entry), if any.
        request_id: Option<&'a str>,
    },
    /// An output download from the output host (not the API): it does not
    /// pass the API's rate limiter, but it draws on the same retry budget.
    Download {
        /// The job whose output it is.
        request_id: &'a str,
    },
}

impl Call<'_> {
    /// The job the call is about.
    pub(crate) fn request_id(&self) -> Option<&str> {
        match self {
            Call::Read { request_id, .. } | Call::Download { request_id } => Some(request_id),
            Call::Account { request_id } => *request_id,
            Call::Submit | Call::Upload => None,
        }
    }

    /// The deadline, with the job it is about (only reads have one).
    fn deadline(&self) -> Option<(&str, Deadline)> {
        match self {
            Call::Read {
                request_id,
                deadline: Some(deadline),
            } => Some((request_id, *deadline)),
            _ => None,
        }
    }

    /// The rate limiter's class of an API call; `None` for downloads,
    /// which go to another host and are not limited.
    fn route(&self) -> Option<Route> {
        match self {
            Call::Submit => Some(Route::Submit),
            Call::Upload => Some(Route::Upload),
            Call::Read { .. } | Call::Account { .. } => Some(Route::Read),
            Call::Download { .. } => None,
        }
    }
}

/// An attempt that failed in a way that may pass if made again.
#[derive(Debug)]
pub(crate) struct Retryable {
    /// The error returned if no retry follows.
    pub(crate) error: Error,
    /// The server's `Retry-After`, if it gave one.
    pub(crate) retry_after: Option<Duration>,
    /// A `429`: slow every API call of the client down.
    pub(crate) throttled: bool,
}

impl Retryable {
    /// A retryable error with no `Retry-After` (no answer, or a body cut
    /// short).
    pub(crate) fn transient(error: Error) -> Self {
        Self {
            error,
            retry_after: None,
            throttled: false,
        }
    }
}

/// How one attempt failed, as its classifier decided.
#[derive(Debug)]
pub(crate) enum Failure<E> {
    /// May be retried; the executor decides whether it is.
    Retry(Retryable),
    /// Ends the call with this error.
    Fatal(E),
}

/// Retries, budget, rate limiter and clock: shared by every clone of a
/// client, so one budget and one pace cover all of its requests.
pub(crate) struct Executor {
    policy: RetryPolicy,
    budget: RetryBudget,
    limiter: Limiter,
    clock: SharedClock,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("policy", &self.policy)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// An executor with a full retry budget and `limiter` (the process's
    /// own, or a shared budget's).
    pub(crate) fn new(policy: RetryPolicy, limiter: Limiter, clock: SharedClock) -> Self {
        Self {
            budget: RetryBudget::new(policy.budget),
            limiter,
            policy,
            clock,
        }
    }

    pub(crate) fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub(crate) fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The request budget applied now (configured or learned), if any.
    pub(crate) fn rate_budget(&self) -> Option<RateLimit> {
        self.limiter.budget()
    }

    /// Joins the shared budget now, if the client has one.
    pub(crate) async fn join_shared_budget(&self) -> crate::error::Result<()> {
        self.limiter.join().await
    }

    /// The live sharers of the shared budget, when last heard.
    pub(crate) fn shared_budget_sharers(&self) -> Option<u32> {
        self.limiter.sharers()
    }

    /// Whether status reads now wait for the limiter (the budget binds
    /// them): polls are then planned for when a job is likely done.
    pub(crate) fn reads_bound(&self) -> bool {
        self.limiter.binding(self.clock.now(), Route::Read)
    }

    /// Makes attempts with `attempt` until one succeeds, its classifier
    /// calls the failure fatal, or the rules end the retries.
    pub(crate) async fn execute<T, E, F, Fut>(&self, call: Call<'_>, mut attempt: F) -> Result<T, E>
    where
        E: From<Error>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure<E>>>,
    {
        let mut n: u32 = 1;
        loop {
            let ticket = self.wait_turn(call).await?;
            let retryable = match attempt().await {
                Ok(v) => {
                    if let Some(ticket) = &ticket {
                        self.limiter.succeeded(self.clock.now(), ticket);
                    }
                    self.budget.refund(1);
                    return Ok(v);
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(r)) => r,
            };
            if retryable.throttled
                && let Some(ticket) = &ticket
            {
                self.limiter
                    .throttled(self.clock.now(), ticket, retryable.retry_after)
                    .await;
            }
            let free = retryable.throttled
                && ticket.is_some()
                && retryable
                    .retry_after
                    .is_some_and(|d| !d.is_zero() && d <= self.policy.max_retry_after);
            let delay = self.retry_delay(call, n, retryable, free)?;
            self.clock.sleep(delay).await;
            if !free {
                n += 1;
            }
        }
    }

    /// Waits for the rate limiter's slot (API calls only), never past the
    /// deadline; a slot voided by a cut while waiting is planned again.
    async fn wait_turn(&self, call: Call<'_>) -> Result<Option<Slot>, Error> {
        let Some(route) = call.route() else {
            return Ok(None);
        };
        // Held until the slot comes: a shared budget's turn to book.
        let _turn = self.limiter.gate().await;
        loop {
            let ticket = self.limiter.reserve(self.clock.now(), route).await;
            if let Some((request_id, deadline)) = call.deadline()
                && self.clock.now() + ticket.wait() > deadline.at
            {
                return Err(self.timeout(request_id, deadline));
            }
            if ticket.wait().is_zero() {
                return Ok(Some(ticket));
            }
            self.clock.sleep(ticket.wait()).await;
            if self.limiter.still_valid(&ticket) {
                return Ok(Some(ticket));
            }
        }
    }

    /// The wait before retry number `n`, or the error that ends the call.
    /// A `free` retry (an API call's `429` with an allowed `Retry-After`)
    /// skips the attempt count and the budget.
    fn retry_delay(
        &self,
        call: Call<'_>,
        n: u32,
        r: Retryable,
        free: bool,
    ) -> Result<Duration, Error> {
        let Retryable {
            error, retry_after, ..
        } = r;
        if !free && n >= self.policy.max_attempts {
            tracing::warn!(attempt = n, error = %error, "giving up: retry attempts exhausted");
            return Err(error);
        }
        if retry_after.is_some_and(|d| d > self.policy.max_retry_after) {
            tracing::warn!(
                ?retry_after,
                "giving up: Retry-After longer than the policy allows"
            );
            return Err(error);
        }
        if !free && !self.budget.withdraw(self.policy.retry_cost) {
            tracing::warn!(error = %error, "giving up: client retry budget exhausted");
            return Err(error);
        }
        let delay = retry_after.unwrap_or_else(|| self.policy.backoff(n));
        if let Some((request_id, deadline)) = call.deadline()
            && self.clock.now() + delay > deadline.at
        {
            tracing::info!(?delay, "not retrying: the wait would pass the deadline");
            return Err(self.timeout(request_id, deadline));
        }
        tracing::info!(attempt = n, ?delay, error = %error, "retrying");
        Ok(delay)
    }

    /// The error of a wait that reached its deadline.
    pub(crate) fn timeout(&self, request_id: &str, deadline: Deadline) -> Error {
        Error::Timeout {
            request_id: request_id.to_string(),
            elapsed: self.clock.now().saturating_sub(deadline.started),
        }
    }
}
