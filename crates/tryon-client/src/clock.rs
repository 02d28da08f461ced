//! Time and sleeping, behind one small trait so tests and the mock can drive
//! virtual time.
//!
//! Every wait in this crate (poll intervals, retry backoff, `Retry-After`,
//! the shared rate limiter) goes through [`Clock::sleep`], and every deadline
//! is measured with [`Clock::now`]. Production uses [`TokioClock`]; the
//! clocks tests use are in `test_util.rs`, behind the `test-util` feature.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A boxed, sendable future that finishes after a sleep.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Monotonic time, wall-clock time and sleeping.
///
/// Every wait of a [`Client`](crate::Client) (poll intervals, retry
/// backoff, `Retry-After`, the shared rate limiter) goes through
/// [`sleep`](Self::sleep), and every deadline is measured with
/// [`now`](Self::now). [`TokioClock`] is the default. With the
/// `test-util` feature, `test_util::VirtualClock` runs waits of any length
/// in no real time and follows any other clock (a mock server's) in one
/// line, and `test_util::DrivingClock` moves another clock along with a
/// paused tokio runtime.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Monotonic time since an arbitrary, fixed origin.
    fn now(&self) -> Duration;

    /// A future that completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> Sleep;

    /// Wall-clock time, used only to read `Retry-After` given as an HTTP
    /// date. Defaults to [`SystemTime::now`]; a virtual clock may override it.
    fn system_time(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The default clock: `tokio::time` (so `#[tokio::test(start_paused = true)]`
/// also works with it).
#[derive(Debug, Clone)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The clock a client holds.
pub(crate) type SharedClock = Arc<dyn Clock>;
