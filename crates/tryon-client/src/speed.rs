//! What a client has learned of the service's speed: one estimator per
//! [`Client`](crate::Client), shared by every job it waits for (so by a
//! whole `run_many` or batch), read by the poll plan. The rule is written
//! once, on [`SpeedEstimate`].

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Samples kept per kind (the newest; older ones drop out).
pub(crate) const WINDOW: usize = 64;
/// Samples a kind needs before its estimate moves off the published figure.
pub(crate) const MIN_SAMPLES: usize = 2;
/// The slowest a speed factor is taken to be: four times the published
/// figure.
pub(crate) const MAX_FACTOR: f64 = 4.0;
/// The fastest: one sixty-fourth of the published figure.
pub(crate) const MIN_FACTOR: f64 = 1.0 / 64.0;
/// The longest queue wait a sample is taken to be.
pub(crate) const MAX_QUEUE: Duration = Duration::from_mins(5);
/// A compute time longer than the job's whole wait by more than this is
/// not believed (clock steps, or a hostile number).
const SLACK: Duration = Duration::from_secs(1);

/// What a client has learned of the service's speed, and the rule it
/// learns by (the one place it is written). [`Client::speed_estimate`](crate::Client::speed_estimate)
/// shows it; the poll plan ([`PollState`](crate::poll::PollState)'s
/// `expected`, `expected_range` and `expected_queue`) is made from it.
///
/// **What is measured**, for every job a wait of this client (`Job::wait`,
/// `run`, `run_many`, `events`) sees complete:
///
/// - its compute time, `metrics.inference_time` of the completed answer,
///   as a share of the published figure for its garments and mode (2 s a
///   garment; with `turbo` 1 s a garment, at most 4 s in all): the *speed
///   factor* of its mode, standard or turbo. A factor, not seconds a
///   garment, so the turbo cap scales with it;
/// - for a job this client submitted, how long it queued: its queue ended
///   after the last time it was seen `QUEUED` (at least its submit), and
///   after the last waiting answer less its compute time; and before the
///   first time it was seen running (and its completed answer less its
///   compute time). The sample is the middle of that span, or, for a job
///   never seen running, its start (when it was found done says as much
///   about the poll as about the queue).
///
/// **What is believed.** A compute time that is not a finite number above
/// zero (NaN, infinite, negative, 0) is dropped, and so is one longer than
/// the job's whole wait (no service computes longer than it has had the
/// job); a factor is clamped to ×1/64 ..= ×4 of the published figure, a
/// queue to 0 ..= 5 min. Each kind (standard factor, turbo factor, queue)
/// keeps its newest 64 samples.
///
/// **What is estimated.** Until a kind has 2 samples, it is the published
/// figure (factor 1, no queue): the first polls of a run are planned as
/// without learning. From then on a job's compute time is planned from
/// the samples of its mode with its own number of garments (when there
/// are 2 of them; else all of its mode): their median is the expected
/// time, and their 10th and 90th percentiles the range the plan aims its
/// polls into (percentiles by nearest rank, so of two samples the median
/// is the slower: one fast odd job cannot make the plan poll early). The queue is the 10th percentile of its samples: a low
/// end, so a job that queues less than most is not polled late. Medians
/// and percentiles, not means: a handful of odd jobs moves them little,
/// and the clamps bound what a window full of them can do.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeedEstimate {
    standard: Vec<(u32, f64)>,
    turbo: Vec<(u32, f64)>,
    queue: Vec<f64>,
}

/// The plan's inputs for one job, from the estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Planned {
    /// The expected compute time.
    pub(crate) expected: Duration,
    /// The low and high ends of the compute time, once learned.
    pub(crate) range: Option<(Duration, Duration)>,
    /// The expected queue wait of a fresh submit.
    pub(crate) queue: Duration,
}

impl SpeedEstimate {
    /// The median speed factor of a mode (`turbo` or standard) over every
    /// garment count: the share of the published figure its jobs took;
    /// 1.0 until the mode has 2 samples.
    pub fn factor(&self, turbo: bool) -> f64 {
        let all: Vec<f64> = self.mode(turbo).iter().map(|&(_, f)| f).collect();
        if all.len() < MIN_SAMPLES {
            return 1.0;
        }
        quantile(all, 0.5)
    }

    /// The compute time a garment takes in a mode, as learned: the
    /// published 2 s (turbo 1 s) times [`factor`](Self::factor).
    pub fn per_garment(&self, turbo: bool) -> Duration {
        let published = if turbo { 1.0 } else { 2.0 };
        Duration::from_secs_f64(published * self.factor(turbo))
    }

    /// The queue wait the plan expects of a fresh submit: zero until 2
    /// samples, then their 10th percentile.
    pub fn queue(&self) -> Duration {
        if self.queue.len() < MIN_SAMPLES {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(quantile(self.queue.clone(), 0.1))
    }

    /// How many compute samples a mode holds (at most 64).
    pub fn samples(&self, turbo: bool) -> usize {
        self.mode(turbo).len()
    }

    /// How many queue samples it holds (at most 64).
    pub fn queue_samples(&self) -> usize {
        self.queue.len()
    }

    fn mode(&self, turbo: bool) -> &[(u32, f64)] {
        if turbo { &self.turbo } else { &self.standard }
    }

    /// The plan for a job whose published compute time is `published`, of
    /// `garments` garments (0: unknown) in a mode.
    pub(crate) fn plan(&self, published: Duration, garments: u32, turbo: bool) -> Planned {
        let mode = self.mode(turbo);
        let same: Vec<f64> = mode
            .iter()
            .filter(|&&(g, _)| g == garments && garments > 0)
            .map(|&(_, f)| f)
            .collect();
        let chosen = if same.len() >= MIN_SAMPLES {
            same
        } else {
            mode.iter().map(|&(_, f)| f).collect()
        };
        let queue = self.queue();
        if chosen.len() < MIN_SAMPLES {
            return Planned {
                expected: published,
                range: None,
                queue,
            };
        }
        let at = |q| published.mul_f64(quantile(chosen.clone(), q));
        Planned {
            expected: at(0.5),
            range: Some((at(0.1), at(0.9))),
            queue,
        }
    }
}

/// The `q` quantile of `values` (nearest rank on the sorted values); 0 for
/// none. Every value is finite (they are clamped when kept).
fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((values.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    values[i.min(values.len() - 1)]
}

/// One completed job, as its wait saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completion {
    /// Garments of the job (0 when unknown: a re-attached job).
    pub(crate) garments: u32,
    /// Whether it ran with `turbo`.
    pub(crate) turbo: bool,
    /// The published compute time of the job.
    pub(crate) published: Duration,
    /// `metrics.inference_time` as the server sent it, if it did.
    pub(crate) inference_time: Option<f64>,
    /// The job's timeline, when this client submitted it.
    pub(crate) timeline: Option<Timeline>,
}

/// When a submitted job was seen in which state, from its submit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Timeline {
    /// The last time it was seen `QUEUED` (0: the submit).
    pub(crate) last_queued: Duration,
    /// The first time it was seen running.
    pub(crate) first_running: Option<Duration>,
    /// The last time it was seen not yet final.
    pub(crate) last_waiting: Duration,
    /// When its final answer came.
    pub(crate) completed: Duration,
}

#[derive(Debug, Default)]
struct Samples {
    standard: VecDeque<(u32, f64)>,
    turbo: VecDeque<(u32, f64)>,
    queue: VecDeque<f64>,
}

fn push<T>(window: &mut VecDeque<T>, value: T) {
    if window.len() >= WINDOW {
        window.pop_front();
    }
    window.push_back(value);
}

/// The estimator a client's jobs share (see [`SpeedEstimate`]).
#[derive(Debug)]
pub(crate) struct ServiceSpeed {
    samples: Mutex<Samples>,
    /// Bumped whenever an estimate moves, so sleeping polls re-plan.
    moved: tokio::sync::watch::Sender<u64>,
}

impl Default for ServiceSpeed {
    fn default() -> Self {
        Self {
            samples: Mutex::default(),
            moved: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl ServiceSpeed {
    /// What has been learned so far.
    pub(crate) fn snapshot(&self) -> SpeedEstimate {
        let s = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        SpeedEstimate {
            standard: s.standard.iter().copied().collect(),
            turbo: s.turbo.iter().copied().collect(),
            queue: s.queue.iter().copied().collect(),
        }
    }

    /// Told whenever an estimate moves.
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.moved.subscribe()
    }

    /// Learns from one completed job, by the rule on [`SpeedEstimate`].
    pub(crate) fn record(&self, c: &Completion) {
        let compute = c
            .inference_time
            .filter(|t| t.is_finite() && *t > 0.0)
            .filter(|&t| {
                c.timeline
                    .is_none_or(|tl| t <= (tl.completed + SLACK).as_secs_f64())
            });
        let published = c.published.as_secs_f64();
        let factor = compute
            .filter(|_| published > 0.0)
            .map(|t| (t / published).clamp(MIN_FACTOR, MAX_FACTOR));
        let queue = c.timeline.and_then(|tl| queue_sample(&tl, compute));
        if factor.is_none() && queue.is_none() {
            return;
        }
        let before = self.snapshot();
        {
            let mut s = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(f) = factor {
                let mode = if c.turbo {
                    &mut s.turbo
                } else {
                    &mut s.standard
                };
                push(mode, (c.garments, f));
            }
            if let Some(q) = queue {
                push(&mut s.queue, q);
            }
        }
        let after = self.snapshot();
        let moved = |turbo| {
            let (b, a) = (before.factor(turbo), after.factor(turbo));
            (a - b).abs() > 0.05 * b
                || before.samples(turbo) < MIN_SAMPLES && after.samples(turbo) >= MIN_SAMPLES
        };
        let queue_moved = {
            let (b, a) = (before.queue(), after.queue());
            a.abs_diff(b) > Duration::from_millis(100).max(b / 10)
        };
        if moved(c.turbo) || queue_moved {
            self.moved.send_modify(|v| *v = v.wrapping_add(1));
        }
    }
}

/// The middle of the span a submitted job's queue ended in (see
/// [`SpeedEstimate`]), clamped to `0..=MAX_QUEUE`; `None` when the
/// timeline cannot place it.
fn queue_sample(tl: &Timeline, compute: Option<f64>) -> Option<f64> {
    let secs = |d: Duration| d.as_secs_f64();
    let mut lo = secs(tl.last_queued);
    if let Some(c) = compute {
        lo = lo.max(secs(tl.last_waiting) - c);
    }
    let sample = match tl.first_running.map(secs) {
        // Seen queued, then running: the queue ended between the two.
        Some(hi) => {
            let hi = compute.map_or(hi, |c| hi.min(secs(tl.completed) - c));
            if hi < lo {
                return None;
            }
            f64::midpoint(lo, hi)
        }
        // Never seen running: when it completed says only how late it
        // could have started (that includes how late it was found done),
        // so the earliest its queue could have ended is the sample.
        None if compute.is_some() => lo,
        None => return None,
    };
    Some(sample.clamp(0.0, secs(MAX_QUEUE)))
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "clamped to the exact bounds")]
mod tests {
    use super::*;

    fn job(garments: u32, turbo: bool, inference_time: Option<f64>) -> Completion {
        // The published figure, as `TryOnRequest::expected_duration` has it.
        let published = if turbo {
            Duration::from_secs(u64::from(garments).min(4))
        } else {
            Duration::from_secs(2 * u64::from(garments))
        };
        Completion {
            garments,
            turbo,
            published,
            inference_time,
            timeline: None,
        }
    }

    fn learned(times: &[f64]) -> ServiceSpeed {
        let speed = ServiceSpeed::default();
        for &t in times {
            speed.record(&job(1, false, Some(t)));
        }
        speed
    }

    fn plan(speed: &ServiceSpeed) -> Planned {
        speed.snapshot().plan(Duration::from_secs(2), 1, false)
    }

    #[test]
    fn published_until_two_samples_then_the_median() {
        let speed = learned(&[0.1]);
        assert_eq!(plan(&speed).expected, Duration::from_secs(2));
        assert_eq!(plan(&speed).range, None);
        speed.record(&job(1, false, Some(0.1)));
        let p = plan(&speed);
        assert!((p.expected.as_secs_f64() - 0.1).abs() < 1e-9, "{p:?}");
        assert!(p.range.is_some());
    }

    #[test]
    fn outliers_move_the_median_little() {
        // 20 jobs of about 1 s, 4 of 100 s: the median stays at 1 s.
        let mut times = vec![1.0; 20];
        times.extend([100.0; 4]);
        let p = plan(&learned(&times));
        assert!((p.expected.as_secs_f64() - 1.0).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn of_two_samples_the_slower_is_the_median() {
        // One fast odd job and one as published: planned as published.
        let p = plan(&learned(&[0.01, 2.0]));
        assert_eq!(p.expected, Duration::from_secs(2));
    }

    #[test]
    fn hostile_compute_times_are_dropped_or_clamped() {
        let speed = learned(&[f64::NAN, -1.0, 0.0, f64::INFINITY, -0.0]);
        assert_eq!(speed.snapshot().samples(false), 0, "none believed");
        assert_eq!(plan(&speed).expected, Duration::from_secs(2));
        // 1e300 a job: clamped at 4 times the published figure.
        let speed = learned(&[1e300; 10]);
        let p = plan(&speed);
        assert_eq!(p.expected, Duration::from_secs(8));
        assert_eq!(speed.snapshot().factor(false), MAX_FACTOR);
        // A tiny one: clamped at one sixty-fourth.
        let speed = learned(&[1e-300; 10]);
        assert_eq!(speed.snapshot().factor(false), MIN_FACTOR);
        assert_eq!(plan(&speed).expected, Duration::from_secs(2).div_f64(64.0));
    }

    #[test]
    fn the_window_keeps_only_the_newest_samples() {
        let mut times = vec![8.0; 100];
        times.extend([1.0; WINDOW]);
        let speed = learned(&times);
        assert_eq!(speed.snapshot().samples(false), WINDOW);
        assert!((plan(&speed).expected.as_secs_f64() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_compute_time_longer_than_the_wait_is_not_believed() {
        let speed = ServiceSpeed::default();
        for _ in 0..5 {
            speed.record(&Completion {
                timeline: Some(Timeline {
                    completed: Duration::from_secs(3),
                    ..Timeline::default()
                }),
                ..job(1, false, Some(60.0))
            });
        }
        assert_eq!(speed.snapshot().samples(false), 0);
    }

    #[test]
    fn modes_and_garment_counts_are_kept_apart() {
        let speed = ServiceSpeed::default();
        for _ in 0..5 {
            // Standard: 3-garment jobs at half speed, 1-garment at full.
            speed.record(&job(3, false, Some(12.0)));
            speed.record(&job(1, false, Some(2.0)));
            // Turbo: a quarter of the published figure.
            speed.record(&job(1, true, Some(0.5)));
        }
        let s = speed.snapshot();
        let three = s.plan(Duration::from_secs(6), 3, false);
        assert!((three.expected.as_secs_f64() - 12.0).abs() < 1e-9);
        let one = s.plan(Duration::from_secs(2), 1, false);
        assert!((one.expected.as_secs_f64() - 2.0).abs() < 1e-9);
        let turbo = s.plan(Duration::from_secs(1), 1, true);
        assert!((turbo.expected.as_secs_f64() - 0.5).abs() < 1e-9);
        // Two garments: none of its own, so the whole mode.
        let two = s.plan(Duration::from_secs(4), 2, false);
        assert!(two.expected >= Duration::from_secs(4));
    }

    #[test]
    fn queue_samples_are_the_middle_of_their_span_and_bounded() {
        // Seen queued at 0 (submit) and 4 s, running at 6 s: ended at 5 s.
        let tl = Timeline {
            last_queued: Duration::from_secs(4),
            first_running: Some(Duration::from_secs(6)),
            last_waiting: Duration::from_secs(6),
            completed: Duration::from_secs(9),
        };
        assert_eq!(queue_sample(&tl, None), Some(5.0));
        // A compute time of 2 s: done at 9 s, so running from 7 s at the
        // latest; still waiting at 6 s, so not ended before 4 s.
        assert_eq!(queue_sample(&tl, Some(2.0)), Some(5.0));
        // Only the completed answer: the earliest, the submit (found done
        // late, it may not have queued at all).
        let fresh = Timeline {
            completed: Duration::from_secs(9),
            ..Timeline::default()
        };
        assert_eq!(queue_sample(&fresh, Some(2.0)), Some(0.0));
        assert_eq!(queue_sample(&fresh, None), None);
        // Still waiting at 6 s, and 2 s of compute: started after 4 s.
        let waited = Timeline {
            last_waiting: Duration::from_secs(6),
            ..fresh
        };
        assert_eq!(queue_sample(&waited, Some(2.0)), Some(4.0));
        // An hour's queue is clamped.
        let long = Timeline {
            last_queued: Duration::from_hours(2),
            first_running: Some(Duration::from_hours(2)),
            completed: Duration::from_hours(3),
            ..Timeline::default()
        };
        assert_eq!(
            queue_sample(&long, Some(1.0)),
            Some(MAX_QUEUE.as_secs_f64())
        );
        // Until two samples, no queue is expected; then the 10th
        // percentile.
        let speed = ServiceSpeed::default();
        for q in [10u64, 12, 14, 16, 18] {
            speed.record(&Completion {
                timeline: Some(Timeline {
                    first_running: Some(Duration::from_secs(q)),
                    last_waiting: Duration::from_secs(q),
                    completed: Duration::from_secs(q + 2),
                    last_queued: Duration::from_secs(q),
                }),
                ..job(1, false, None)
            });
            let s = speed.snapshot();
            if s.queue_samples() < MIN_SAMPLES {
                assert_eq!(s.queue(), Duration::ZERO);
            }
        }
        assert_eq!(speed.snapshot().queue(), Duration::from_secs(10));
    }

    #[test]
    fn a_move_wakes_the_sleeping_polls_once_and_a_repeat_does_not() {
        let speed = ServiceSpeed::default();
        let rx = speed.subscribe();
        speed.record(&job(1, false, Some(0.1)));
        assert!(!rx.has_changed().unwrap(), "one sample moves nothing");
        speed.record(&job(1, false, Some(0.1)));
        assert!(rx.has_changed().unwrap());
        let mut rx = speed.subscribe();
        rx.mark_unchanged();
        speed.record(&job(1, false, Some(0.1)));
        assert!(!rx.has_changed().unwrap(), "the same speed again");
    }
}
