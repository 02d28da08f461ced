//! The mock's clock: real time plus an offset, or purely virtual time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::limits::MAX_CLOCK_SECS;

/// The clock that drives job progress, expiry and rate limits in one
/// [`MockServer`](crate::MockServer).
///
/// Cheap to clone; every clone reads and moves the same time. In virtual mode
/// ([`MockServerBuilder::virtual_time`](crate::MockServerBuilder::virtual_time))
/// time stands still until [`advance`](Self::advance) is called; in real-time
/// mode [`now`](Self::now) is the real time elapsed since the server started
/// plus everything advanced so far.
///
/// Hand it to a client's sleeper so that waiting costs no real time: see the
/// crate docs, "Driving a client with the virtual clock".
#[derive(Clone)]
pub struct MockClock {
    inner: Arc<ClockInner>,
}

struct ClockInner {
    /// `None` in virtual mode.
    started: Option<Instant>,
    /// Nanoseconds added by `advance`.
    advanced_nanos: AtomicU64,
}

impl MockClock {
    /// A clock that only moves when [`advance`](Self::advance) is called.
    pub fn new_virtual() -> Self {
        Self {
            inner: Arc::new(ClockInner {
                started: None,
                advanced_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// A clock that follows real time from now on (and can still be advanced).
    pub fn new_real() -> Self {
        Self {
            inner: Arc::new(ClockInner {
                started: Some(Instant::now()),
                advanced_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Whether this clock only moves when advanced.
    pub fn is_virtual(&self) -> bool {
        self.inner.started.is_none()
    }

    /// Time since the server started, as this clock sees it.
    pub fn now(&self) -> Duration {
        let advanced = Duration::from_nanos(self.inner.advanced_nanos.load(Ordering::Acquire));
        match self.inner.started {
            Some(started) => started.elapsed() + advanced,
            None => advanced,
        }
    }

    /// Moves the clock forward by `by`. Jobs whose stage ends within the
    /// window change state at once; nothing runs in the background. The
    /// clock stops at [`MAX_CLOCK_SECS`](crate::limits::MAX_CLOCK_SECS) (100 years)
    /// of advances; see [`try_advance`](Self::try_advance) to be told.
    pub fn advance(&self, by: Duration) {
        let _ = self.add(by, true);
    }

    /// Moves the clock forward by `by`, or refuses (and leaves it as it
    /// is) when the advances would pass
    /// [`MAX_CLOCK_SECS`](crate::limits::MAX_CLOCK_SECS).
    ///
    /// # Errors
    /// A message naming the bound.
    pub fn try_advance(&self, by: Duration) -> Result<Duration, String> {
        self.add(by, false)?;
        Ok(self.now())
    }

    fn add(&self, by: Duration, saturate: bool) -> Result<(), String> {
        let max = MAX_CLOCK_SECS * 1_000_000_000;
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.inner
            .advanced_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                match n.checked_add(nanos).filter(|t| *t <= max) {
                    Some(t) => Some(t),
                    None if saturate => Some(max),
                    None => None,
                }
            })
            .map(|_| ())
            .map_err(|_| {
                format!(
                    "seconds: {} given, the clock may advance at most {MAX_CLOCK_SECS} s in all",
                    by.as_secs_f64()
                )
            })
    }

    /// Takes back every advance: a virtual clock reads zero again, a real
    /// one the real time since the server started.
    pub(crate) fn reset(&self) {
        self.inner.advanced_nanos.store(0, Ordering::Release);
    }
}

impl std::fmt::Debug for MockClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockClock")
            .field("virtual", &self.is_virtual())
            .field("now", &self.now())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_when_advanced() {
        let clock = MockClock::new_virtual();
        assert_eq!(clock.now(), Duration::ZERO);
        let other = clock.clone();
        other.advance(Duration::from_secs(61));
        assert_eq!(clock.now(), Duration::from_secs(61));
    }

    #[test]
    fn advances_stop_at_the_bound_and_reset_takes_them_back() {
        let clock = MockClock::new_virtual();
        assert!(clock.try_advance(Duration::from_secs_f64(1.8e10)).is_err());
        assert_eq!(clock.now(), Duration::ZERO);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), Duration::from_secs(MAX_CLOCK_SECS));
        clock.reset();
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now(), Duration::from_secs(1));
    }

    #[test]
    fn real_clock_includes_advances() {
        let clock = MockClock::new_real();
        clock.advance(Duration::from_hours(1));
        assert!(clock.now() >= Duration::from_hours(1));
    }
}
