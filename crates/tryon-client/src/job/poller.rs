//! The poller behind [`Job::wait`](super::Job::wait) and
//! [`Job::events`](super::Job::events): plans each poll by the client's
//! policy and what it has learned of the service's speed, polls (the
//! result URL, so a job found done costs no further call), and teaches the
//! client's estimator what it saw.

use std::time::Duration;

use futures::future::Either;

use super::reader::Answer;
use super::{Job, Status};
use crate::error::{Error, Result};
use crate::poll::{Origin, Phase, PollState, budget_bound_delay};
use crate::retry::Deadline;
use crate::speed::{Completion, Timeline};

/// Polls a job and yields status changes.
pub(super) struct Poller {
    job: Job,
    pub(super) deadline: Deadline,
    state: PollState,
    emitted: Option<Status>,
    done: bool,
    /// When the job was seen in which state (from its origin).
    timeline: Timeline,
    /// Told when the client's speed estimate moves: a sleeping poll wakes
    /// and is planned again.
    moved: tokio::sync::watch::Receiver<u64>,
}

impl Poller {
    pub(super) fn new(job: Job, timeout: Duration) -> Self {
        let now = job.reader.clock().now();
        let state = PollState::start(now.saturating_sub(job.origin_at), job.expected, job.origin);
        let mut moved = job.reader.speed().subscribe();
        moved.mark_unchanged();
        Self {
            deadline: Deadline::after(now, timeout),
            state,
            emitted: None,
            done: false,
            timeline: Timeline::default(),
            moved,
            job,
        }
    }

    pub(super) fn timeout(&self) -> Error {
        self.job.reader.timeout(&self.job.request_id, self.deadline)
    }

    /// The plan's inputs from what the client has learned so far.
    fn learn(&mut self) {
        let Some(published) = self.job.expected else {
            return;
        };
        let plan =
            self.job
                .reader
                .speed()
                .snapshot()
                .plan(published, self.job.garments, self.job.turbo);
        self.state.expected = Some(plan.expected);
        self.state.expected_range = plan.range;
        self.state.expected_queue = if self.job.origin == Origin::Submitted {
            plan.queue
        } else {
            Duration::ZERO
        };
    }

    /// The delay before the next poll.
    fn plan(&mut self, now: Duration) -> Duration {
        let first_contact = self.state.polls == 0 && self.state.last.is_none();
        if first_contact {
            return Duration::ZERO;
        }
        self.learn();
        self.state.elapsed = now.saturating_sub(self.job.origin_at);
        let planned = self.job.reader.next_poll_delay(&self.state);
        if self.job.reader.reads_bound() {
            planned.max(budget_bound_delay(&self.state))
        } else {
            planned
        }
    }

    /// Sleeps `delay`; `false` when the client's speed estimate moved
    /// first (the poll is then planned again).
    async fn sleep(&mut self, delay: Duration) -> bool {
        let sleep = self.job.reader.clock().sleep(delay);
        let moved = std::pin::pin!(self.moved.changed());
        match futures::future::select(sleep, moved).await {
            Either::Left(((), _)) => true,
            Either::Right((Ok(()), _)) => false,
            // A closed channel cannot move again: sleep the rest.
            Either::Right((Err(_), sleep)) => {
                sleep.await;
                true
            }
        }
    }

    /// Teaches the client's estimator a completion seen `at` after the
    /// origin.
    fn record(&self, at: Duration, inference_time: Option<f64>) {
        let Some(published) = self.job.expected else {
            return;
        };
        let timeline = (self.job.origin == Origin::Submitted).then_some(Timeline {
            last_queued: self.state.last_queued_at.unwrap_or_default(),
            completed: at,
            ..self.timeline
        });
        self.job.reader.speed().record(&Completion {
            garments: self.job.garments,
            turbo: self.job.turbo,
            published,
            inference_time,
            timeline,
        });
    }

    pub(super) async fn next(&mut self) -> Option<Result<Status>> {
        if self.done {
            return None;
        }
        // A fresh submit is known to be queued: say so before any call.
        if self.emitted.is_none() && self.job.origin == Origin::Submitted && self.state.polls == 0 {
            self.emitted = Some(Status::Queued);
            return Some(Ok(Status::Queued));
        }
        let clock = self.job.reader.clock().clone();
        loop {
            let now = clock.now();
            if now >= self.deadline.at {
                self.done = true;
                return Some(Err(self.timeout()));
            }
            // Never sleep past the deadline: the last poll happens at it.
            let delay = self.plan(now).min(self.deadline.at.saturating_sub(now));
            if !delay.is_zero() && !self.sleep(delay).await {
                continue;
            }
            let answer = match self
                .job
                .reader
                .poll(&self.job.request_id, self.deadline)
                .await
            {
                Ok(a) => a,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            let at = clock.now().saturating_sub(self.job.origin_at);
            let status = match answer {
                Answer::Waiting(phase) => {
                    if phase == Phase::Processing && self.timeline.first_running.is_none() {
                        self.timeline.first_running = Some(at);
                    }
                    self.timeline.last_waiting = at;
                    self.state.observe(at, Some(phase));
                    match phase {
                        Phase::Queued => Status::Queued,
                        Phase::Processing => Status::Processing,
                    }
                }
                Answer::Failed { detail } => {
                    self.state.observe(at, None);
                    Status::Failed { detail }
                }
                Answer::Completed {
                    result,
                    inference_time,
                } => {
                    self.state.observe(at, None);
                    self.record(at, inference_time);
                    if let Some(r) = result {
                        match self.job.reader.output(&self.job.request_id, r) {
                            Ok(output) => self.job.keep(output),
                            Err(e) => {
                                self.done = true;
                                return Some(Err(e));
                            }
                        }
                    }
                    Status::Completed
                }
            };
            tracing::debug!(polls = self.state.polls, status = %status, "polled");
            if status.is_final() {
                self.done = true;
            }
            if self.emitted.as_ref() != Some(&status) {
                tracing::info!(status = %status, polls = self.state.polls, "status changed");
                self.emitted = Some(status.clone());
                return Some(Ok(status));
            }
        }
    }
}
