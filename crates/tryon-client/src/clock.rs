//! Time and sleeping, behind one small trait so tests and the mock can drive
//! virtual time.
//!
//! Every wait in this crate (poll intervals, retry backoff, `Retry-After`,
//! the shared rate limiter) goes through [`Clock::sleep`], and every deadline
//! is measured with [`Clock::now`]. Production uses [`TokioClock`]. Tests use
//! [`VirtualClock`], or wrap a mock server's clock in a newtype. With
//! `tryon-mock` (a dev-dependency), a job of eleven garments runs to the
//! end in no real time:
//!
//! ```
//! use std::{future::Future, pin::Pin, time::Duration};
//! use tryon_client::{Client, Clock, Image, TryOnRequest};
//! use tryon_mock::{MockClock, MockServer};
//!
//! // The whole adapter: sleeping advances the mock's virtual time.
//! #[derive(Clone, Debug)]
//! struct MockTime(MockClock);
//! impl Clock for MockTime {
//!     fn now(&self) -> Duration { self.0.now() }
//!     fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
//!         self.0.advance(d);
//!         Box::pin(std::future::ready(()))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tryon_client::Error> {
//! let server = MockServer::builder()
//!     .virtual_time()
//!     .stages(Duration::from_secs(3), Duration::from_secs(22))
//!     .start()
//!     .await;
//! let client = Client::builder()
//!     .api_key("sk-test")
//!     .base_url(server.uri())
//!     .clock(MockTime(server.clock()))
//!     .build()?;
//! let req = TryOnRequest::builder()
//!     .person(Image::url("https://example.com/person.jpg"))
//!     .garments((0..11).map(|i| Image::url(format!("https://example.com/{i}.jpg"))))
//!     .build()?;
//! let output = client.run(&req).await?;
//! assert!(server.now() >= Duration::from_secs(25)); // 25 s passed, virtually
//! assert!(output.download().await?.starts_with(b"\x89PNG"));
//! # Ok(())
//! # }
//! ```

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// A boxed, sendable future that finishes after a sleep.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Monotonic time, wall-clock time and sleeping.
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

/// A virtual clock: `sleep` advances time at once and returns, so waits of
/// any length take no real time. Clones share the same time.
///
/// Handy in tests, and the model for adapting a mock server's clock.
///
/// ```
/// use std::time::Duration;
/// use tryon_client::{Clock, VirtualClock};
/// # tokio_test_block_on(async {
/// let clock = VirtualClock::new();
/// clock.sleep(Duration::from_secs(90)).await;
/// assert_eq!(clock.now(), Duration::from_secs(90));
/// # });
/// # fn tokio_test_block_on(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct VirtualClock {
    nanos: Arc<AtomicU64>,
}

impl VirtualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward without sleeping.
    pub fn advance(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        self.advance(duration);
        // Yield once so concurrent tasks interleave as they would in real time.
        Box::pin(tokio::task::yield_now())
    }

    fn system_time(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + self.now()
    }
}

/// The clock a client holds.
pub(crate) type SharedClock = Arc<dyn Clock>;
