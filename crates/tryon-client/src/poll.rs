//! When to poll a job's status.
//!
//! The default, [`ModelAwarePolling`], plans around the job's expected
//! compute time (about 2 s per garment, at most 4 s in all with `turbo`): the first
//! poll waits for most of it, later polls come quickly and slow down
//! gently, a queued job is checked at a moderate pace, and every delay gets
//! jitter so many jobs do not poll in lockstep. [`FixedPolling`] is the
//! plain alternative. Any [`PollPolicy`] can be plugged into
//! [`ClientBuilder::poll_policy`](crate::ClientBuilder::poll_policy).
//!
//! Whatever the policy says, a wait never sleeps past its deadline: the
//! last sleep is cut to end at the deadline, one last poll is made, and then
//! [`Error::Timeout`](crate::Error::Timeout) is returned.

use std::fmt::Debug;
use std::time::Duration;

pub use crate::speed::SpeedEstimate;

/// What a poll policy knows when it picks the next delay.
///
/// Times are measured from the job's submission (or from `client.job(..)`
/// for a re-attached job).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PollState {
    /// Status polls made so far for this wait.
    pub polls: u32,
    /// Time since submission (or re-attach).
    pub elapsed: Duration,
    /// The job's expected compute time, when known from its request: the
    /// published figure, or what the client has learned of the service's
    /// speed (see [`SpeedEstimate`]).
    pub expected: Option<Duration>,
    /// The low and high ends of the job's compute time (the 10th and 90th
    /// percentile of what the client saw such jobs take); `None` until it
    /// has learned them.
    pub expected_range: Option<(Duration, Duration)>,
    /// How long the client expects a fresh submit to queue (learned; zero
    /// until then).
    pub expected_queue: Duration,
    /// The last status seen, if any.
    pub last: Option<Phase>,
    /// When the job was last seen `QUEUED` (its compute started after
    /// that). `Some(0)` right after submit.
    pub last_queued_at: Option<Duration>,
    /// How many polls in a row have seen the job `PROCESSING`.
    pub processing_polls: u32,
}

/// How a job handle came to be, which says what a wait knows at its
/// origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Submitted by this client: the submit said `QUEUED` at the origin.
    Submitted,
    /// Re-attached by id: its status is unknown.
    Reattached,
}

impl PollState {
    /// The state when a wait starts, `elapsed` after the job's submission
    /// (or re-attach); a job submitted here is known to be queued at 0.
    pub(crate) fn start(elapsed: Duration, expected: Option<Duration>, origin: Origin) -> Self {
        let submitted = origin == Origin::Submitted;
        Self {
            polls: 0,
            elapsed,
            expected,
            expected_range: None,
            expected_queue: Duration::ZERO,
            last: submitted.then_some(Phase::Queued),
            last_queued_at: submitted.then_some(Duration::ZERO),
            processing_polls: 0,
        }
    }

    /// Records one poll's answer, seen `at` after the origin: `phase` is
    /// `None` for a final status. The one update both a wait and the
    /// simulation below use.
    pub(crate) fn observe(&mut self, at: Duration, phase: Option<Phase>) {
        self.polls += 1;
        self.elapsed = at;
        match phase {
            Some(Phase::Queued) => {
                self.last_queued_at = Some(at);
                self.processing_polls = 0;
            }
            Some(Phase::Processing) => self.processing_polls += 1,
            None => {}
        }
        self.last = phase.or(self.last);
    }
}

/// The shortest delay before the next poll while the client's request
/// budget binds (calls wait for the rate limiter): every poll that still
/// sees the job running then costs a call another job's submit or result
/// needed, so the poll is planned for when the job has almost surely
/// finished (its expected time plus 15 % and a second, from when it was
/// last seen queued, plus the learned queue wait for a fresh submit), and
/// overruns are checked every quarter of the expected time (at least a
/// second). The poll policy's own delay is kept when it is longer.
pub(crate) fn budget_bound_delay(s: &PollState) -> Duration {
    let Some(expected) = s.expected else {
        return (s.elapsed / 4).max(Duration::from_secs(2));
    };
    let floor = (expected / 4).max(Duration::from_secs(1));
    if s.last == Some(Phase::Queued) && s.polls > 0 {
        return (expected / 2).max(Duration::from_secs(2));
    }
    let due = s.compute_start() + expected.mul_f64(1.15) + Duration::from_secs(1);
    if s.elapsed < due {
        due.saturating_sub(s.elapsed)
    } else {
        floor
    }
}

impl PollState {
    /// When the job's compute is planned to start: when it was last seen
    /// queued, and for a fresh submit (not polled yet) the learned queue
    /// wait after that.
    fn compute_start(&self) -> Duration {
        let start = self.last_queued_at.unwrap_or_default();
        if self.polls == 0 && self.last == Some(Phase::Queued) {
            start + self.expected_queue
        } else {
            start
        }
    }
}

/// A job's non-final phase, as far as polling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Waiting for a worker.
    Queued,
    /// A worker has it.
    Processing,
}

/// Picks how long to wait before the next status poll.
///
/// The default, [`ModelAwarePolling`], plans around the job's expected
/// compute time; [`FixedPolling`] is the plain alternative; any policy can
/// be plugged into
/// [`ClientBuilder::poll_policy`](crate::ClientBuilder::poll_policy).
/// Whatever the policy says, a wait never sleeps past its deadline: the
/// last sleep is cut to end at the deadline, one last poll is made, and then
/// [`Error::Timeout`](crate::Error::Timeout) is returned.
pub trait PollPolicy: Send + Sync + Debug + 'static {
    /// The delay before the next poll. The caller cuts it to the deadline.
    fn next_delay(&self, state: &PollState) -> Duration;
}

/// Polls every `interval`, like the official SDK (1 s). Useful as a
/// baseline; [`ModelAwarePolling`] makes fewer polls and detects completion
/// about as fast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedPolling {
    /// The delay between polls.
    pub interval: Duration,
}

impl PollPolicy for FixedPolling {
    fn next_delay(&self, _state: &PollState) -> Duration {
        self.interval
    }
}

/// The default policy: plans polls around the job's expected time.
///
/// With expected time `E` (from the request) and the job last seen queued
/// at `q` (0 right after submit):
/// - the first poll is at `q + first_fraction * E` (0.9 E after submit when
///   nothing queues: the earliest the service's ±10 % spread finishes it);
///   once the client has learned the service's speed
///   ([`SpeedEstimate`]), `E` is the learned time, `q` after a submit
///   includes the learned queue wait, and the first poll is at the low end
///   `lo` of the learned range `lo..hi`, or, when the whole range and a
///   quarter again (`hi + (hi - lo) / 4`) ends within three quarters of a
///   poll step of `lo`, once at that end (a short job is then found done by its first
///   poll, at most a step late; jitter only delays that poll, by at most
///   [`MAX_SINGLE_JITTER`]); the first poll
///   then waits at least [`MIN_FIRST_DELAY`], not `min_interval`;
/// - after that, polls come every `clamp(E / 20, min_interval,
///   overrun_interval)` (at most 0.6 s) until `q + 1.5 E`, so a finished
///   job is seen within a second; a job later than that is polled every
///   `(t - (q + 1.5 E)) / 4` (at least that step, at most `max_interval`),
///   where `t` is the time since submission;
/// - while the job is queued, polls come every `clamp(max(E / 2, 0.4 t),
///   min_interval, min(queued_max_interval, 0.9 E + 1 s))`: a job that has
///   queued long is likely to queue longer, so a long queue is checked less
///   often, but a short job cannot start and finish unseen for long;
/// - with no expected time (a re-attached job), polls start at
///   `min_interval` and grow by `growth` up to `max_interval`.
///
/// Every delay is then moved by a random amount of at most `jitter` times
/// itself, and at most 0.5 s, either way (so a long wait aimed at the moment
/// a job can first be done is not moved seconds past it).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelAwarePolling {
    /// Share of the expected time the first poll waits. Default 0.9.
    pub first_fraction: f64,
    /// Longest delay between polls while the job is due (from the first
    /// poll to 1.5 times its expected time). Default 600 ms.
    pub overrun_interval: Duration,
    /// Shortest delay between polls. Default 600 ms.
    pub min_interval: Duration,
    /// Longest delay between polls. Default 5 s.
    pub max_interval: Duration,
    /// Longest delay between polls while the job is queued. Default 3 s.
    pub queued_max_interval: Duration,
    /// Growth of the delay per overrun poll. Default 1.25.
    pub growth: f64,
    /// Relative jitter, `0.0..=1.0`, never more than ±0.5 s. Default 0.1
    /// (±10 %).
    pub jitter: f64,
}

impl Default for ModelAwarePolling {
    fn default() -> Self {
        Self {
            first_fraction: 0.9,
            overrun_interval: Duration::from_millis(600),
            min_interval: Duration::from_millis(600),
            max_interval: Duration::from_secs(5),
            queued_max_interval: Duration::from_secs(3),
            growth: 1.25,
            jitter: 0.1,
        }
    }
}

impl ModelAwarePolling {
    /// The same policy without jitter (deterministic; for tests and
    /// simulations).
    #[must_use]
    pub fn without_jitter(mut self) -> Self {
        self.jitter = 0.0;
        self
    }

    fn grown(&self, base: Duration, steps: u32) -> Duration {
        let factor = self
            .growth
            .max(1.0)
            .powi(i32::try_from(steps.min(64)).unwrap_or(64));
        base.mul_f64(factor.min(1e6)).min(self.max_interval)
    }

    /// The delay before jitter, and whether jitter may only delay it (a
    /// single poll aimed past the learned range).
    fn base_delay(&self, s: &PollState) -> (Duration, bool) {
        let Some(expected) = s.expected else {
            return (self.grown(self.min_interval, s.polls), false);
        };
        if s.last == Some(Phase::Queued) && s.polls > 0 {
            // Seen queued by a poll: compute has not started. The longer it
            // has waited, the longer it is likely to wait still.
            // A short job could start and finish between two polls: keep
            // the gap within its compute time plus a second.
            let cap = self
                .queued_max_interval
                .min(expected.mul_f64(0.9) + Duration::from_secs(1))
                .max(self.min_interval);
            let d = (expected / 2)
                .max(s.elapsed.mul_f64(0.4))
                .clamp(self.min_interval, cap);
            return (d, false);
        }
        let start = s.compute_start();
        let step = (expected / 20).clamp(
            self.min_interval,
            self.overrun_interval.max(self.min_interval),
        );
        let planned = match s.expected_range {
            Some((lo, hi)) => {
                let late = hi + hi.saturating_sub(lo) / 4;
                let single = late.saturating_sub(lo) <= step.mul_f64(0.75);
                // A queue the estimate does not know of yet would make a
                // short job's single poll early: aim a little past it.
                let at = if single { late + SINGLE_MARGIN } else { lo };
                Some((start + at, single))
            }
            None => None,
        };
        let (first, single, floor) = match planned {
            Some((first, single)) => (first, single, MIN_FIRST_DELAY.min(self.min_interval)),
            None => (
                start + expected.mul_f64(self.first_fraction.clamp(0.0, 1.0)),
                false,
                self.min_interval,
            ),
        };
        // Jitter may have made the last poll a little early: do not count
        // that as "still before the plan".
        let early = if single {
            Duration::ZERO
        } else {
            self.jitter_span(first)
        };
        if s.elapsed + early < first {
            let floor = if s.polls == 0 {
                floor
            } else {
                self.min_interval
            };
            return (first.saturating_sub(s.elapsed).max(floor), single);
        }
        let overdue = start + expected.mul_f64(1.5);
        let d = ((s.elapsed.saturating_sub(overdue)) / 4).clamp(step, self.max_interval.max(step));
        (d, false)
    }
}

impl ModelAwarePolling {
    /// How far jitter may move a delay of `base` either way: `jitter` times
    /// it, but never more than [`MAX_JITTER`]. A long wait (the first poll
    /// of an 11-garment job after a queue, some 20 s) is aimed at the
    /// moment the job can first be done; ±10 % of it would move that poll
    /// by 2 s, up to 2 s after the job finished. Half a second spreads
    /// many jobs' polls apart just as well.
    fn jitter_span(&self, base: Duration) -> Duration {
        base.mul_f64(self.jitter.clamp(0.0, 1.0)).min(MAX_JITTER)
    }
}

/// The most jitter moves a poll, either way.
const MAX_JITTER: Duration = Duration::from_millis(500);

/// How far past the end of the learned range (and a quarter) a single poll
/// aims: 50 ms.
const SINGLE_MARGIN: Duration = Duration::from_millis(50);

/// The most jitter delays a single poll aimed past the learned range
/// (every moment later is detection delay): 100 ms.
pub const MAX_SINGLE_JITTER: Duration = Duration::from_millis(100);

/// The shortest wait before a job's first poll once the client has learned
/// the service's speed (a job the service finishes in a tenth of a second
/// is then not polled more than half a second late): 50 ms.
pub const MIN_FIRST_DELAY: Duration = Duration::from_millis(50);

impl PollPolicy for ModelAwarePolling {
    fn next_delay(&self, state: &PollState) -> Duration {
        let (base, late_only) = self.base_delay(state);
        let span = self.jitter_span(base).as_secs_f64();
        if span == 0.0 {
            return base;
        }
        let offset = if late_only {
            rand::random_range(0.0..=span.min(MAX_SINGLE_JITTER.as_secs_f64()))
        } else {
            rand::random_range(-span..=span)
        };
        Duration::from_secs_f64((base.as_secs_f64() + offset).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(polls: u32, elapsed: f64, expected: Option<f64>, last: Option<Phase>) -> PollState {
        PollState {
            polls,
            elapsed: Duration::from_secs_f64(elapsed),
            expected: expected.map(Duration::from_secs_f64),
            expected_range: None,
            expected_queue: Duration::ZERO,
            last,
            last_queued_at: Some(Duration::ZERO),
            processing_polls: 0,
        }
    }

    #[test]
    fn first_poll_waits_most_of_the_expected_time() {
        let p = ModelAwarePolling::default().without_jitter();
        let d = p.next_delay(&state(0, 0.0, Some(22.0), Some(Phase::Queued)));
        assert_eq!(d, Duration::from_secs_f64(22.0 * 0.9));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = ModelAwarePolling::default();
        for _ in 0..1000 {
            let d = p.next_delay(&state(0, 0.0, Some(2.0), None)).as_secs_f64();
            assert!((1.8 * 0.9 - 1e-9..=1.8 * 1.1 + 1e-9).contains(&d), "{d}");
        }
    }

    #[test]
    fn jitter_never_moves_a_long_first_poll_by_more_than_half_a_second() {
        // An 11-garment job seen queued at 10 s: its first poll is planned
        // for 10 s + 0.9 * 22 s; ±10 % of the 19.8 s wait would land it up
        // to 2 s after a job that finished on time.
        let p = ModelAwarePolling::default();
        let mut s = state(4, 10.0, Some(22.0), Some(Phase::Processing));
        s.last_queued_at = Some(Duration::from_secs(10));
        s.processing_polls = 1;
        for _ in 0..1000 {
            let d = p.next_delay(&s).as_secs_f64();
            assert!((19.3 - 1e-9..=20.3 + 1e-9).contains(&d), "{d}");
        }
    }

    #[test]
    fn overrun_polls_grow_to_the_cap() {
        let p = ModelAwarePolling::default().without_jitter();
        let mut s = state(5, 100.0, Some(2.0), Some(Phase::Processing));
        s.processing_polls = 50;
        assert_eq!(p.next_delay(&s), Duration::from_secs(5));
    }

    /// Simulates a job that queues for `queue` then computes for exactly
    /// its expected time, polled the way `Job::wait` polls. Returns (polls,
    /// detection delay).
    fn simulate(
        policy: &dyn PollPolicy,
        expected: Duration,
        queue: Duration,
        actual: Duration,
    ) -> (u32, Duration) {
        let done_at = queue + actual;
        let mut s = PollState::start(Duration::ZERO, Some(expected), Origin::Submitted);
        loop {
            let t = s.elapsed + policy.next_delay(&s);
            if t >= done_at {
                s.observe(t, None);
                return (s.polls, t.saturating_sub(done_at));
            }
            s.observe(
                t,
                Some(if t < queue {
                    Phase::Queued
                } else {
                    Phase::Processing
                }),
            );
        }
    }

    #[test]
    fn polls_and_detection_delay_against_fixed_one_second() {
        use std::fmt::Write as _;
        let aware = ModelAwarePolling::default().without_jitter();
        let fixed = FixedPolling {
            interval: Duration::from_secs(1),
        };
        let mut table = String::from(
            "garments queue compute | model-aware polls, delay | fixed 1s polls, delay\n",
        );
        let (mut aware_polls, mut fixed_polls) = (0u32, 0u32);
        let (mut aware_delay, mut fixed_delay) = (Duration::ZERO, Duration::ZERO);
        for garments in [1usize, 3, 11] {
            for queue in [0.0, 5.3] {
                // Compute within the service's spread around the plan
                // (the mock's realistic profile: ±10 %).
                for speed in [1.0, 0.9] {
                    let e = crate::TryOnRequest::builder()
                        .person(crate::Image::url("https://example.com/p.jpg"))
                        .garments(
                            (0..garments)
                                .map(|g| crate::Image::url(format!("https://example.com/{g}.jpg"))),
                        )
                        .build()
                        .expect("a valid request")
                        .expected_duration();
                    let q = Duration::from_secs_f64(queue);
                    let actual = e.mul_f64(speed);
                    let (ap, ad) = simulate(&aware, e, q, actual);
                    let (fp, fd) = simulate(&fixed, e, q, actual);
                    aware_polls += ap;
                    fixed_polls += fp;
                    aware_delay += ad;
                    fixed_delay += fd;
                    let _ = writeln!(
                        table,
                        "{garments:>8} {queue:>4.1}s {:>6.1}s | {ap:>5}, {:>6.3}s | {fp:>5}, {:>6.3}s",
                        actual.as_secs_f64(),
                        ad.as_secs_f64(),
                        fd.as_secs_f64()
                    );
                }
            }
        }
        // The claim the policy makes, checked in code (the snapshot keeps
        // the table): at most half the polls of fixed 1 s polling overall,
        // and a mean detection delay no worse.
        assert!(
            f64::from(aware_polls) <= 0.5 * f64::from(fixed_polls),
            "{aware_polls} polls against {fixed_polls}\n{table}"
        );
        assert!(
            aware_delay <= fixed_delay,
            "total delay {aware_delay:?} against {fixed_delay:?}\n{table}"
        );
        insta::assert_snapshot!(table);
    }
}
