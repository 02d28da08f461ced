//! Clocks for tests and benchmarks, behind the `test-util` feature (as
//! smithy-rs and tokio keep theirs): a [`VirtualClock`] that runs waits of
//! any length in no real time, and a [`DrivingClock`] that moves another
//! clock (a mock server's) along with a paused tokio runtime.
//!
//! ```toml
//! [dev-dependencies]
//! tryon-client = { version = "0.1", features = ["test-util"] }
//! ```

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::clock::{Clock, Sleep, TokioClock};

/// A virtual clock: `sleep` advances time at once, so waits of any length
/// take no real time. Clones share the same time.
///
/// On its own it starts at zero:
///
/// ```
/// use std::time::Duration;
/// use tryon_client::Clock;
/// use tryon_client::test_util::VirtualClock;
/// # tokio_test_block_on(async {
/// let clock = VirtualClock::new();
/// clock.sleep(Duration::from_secs(90)).await;
/// assert_eq!(clock.now(), Duration::from_secs(90));
/// # });
/// # fn tokio_test_block_on(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
///
/// [`following`](Self::following) makes it follow time kept elsewhere,
/// such as `tryon-mock`'s virtual clock, so a client and a mock server
/// share one virtual time. A job of eleven garments then runs to the end in
/// no real time:
///
/// ```
/// use std::time::Duration;
/// use tryon_client::test_util::VirtualClock;
/// use tryon_client::{Client, Image, TryOnRequest};
/// use tryon_mock::{MockClock, MockServer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tryon_client::Error> {
/// let server = MockServer::builder()
///     .virtual_time()
///     .stages(Duration::from_secs(3), Duration::from_secs(22))
///     .start()
///     .await;
/// // The whole adapter: sleeping advances the mock's virtual time.
/// let clock = VirtualClock::following(server.clock(), MockClock::now, MockClock::advance);
/// let client = Client::builder()
///     .api_key("sk-test")
///     .base_url(server.uri())
///     .clock(clock)
///     .build()?;
/// let req = TryOnRequest::builder()
///     .person(Image::url("https://example.com/person.jpg"))
///     .garments((0..11).map(|i| Image::url(format!("https://example.com/{i}.jpg"))))
///     .build()?;
/// let output = client.run(&req).await?;
/// assert!(server.now() >= Duration::from_secs(25)); // 25 s passed, virtually
/// assert!(output.download().await?.starts_with(b"\x89PNG"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct VirtualClock {
    time: Time,
}

#[derive(Clone)]
enum Time {
    /// Its own time, in nanoseconds since zero.
    Own(Arc<AtomicU64>),
    /// Time kept elsewhere.
    Following(Elsewhere),
}

/// Time kept by another clock, read and moved through two plain methods
/// of it, so any clock adapts without a wrapper type.
#[derive(Clone)]
struct Elsewhere {
    now: Arc<dyn Fn() -> Duration + Send + Sync>,
    advance: Arc<dyn Fn(Duration) + Send + Sync>,
}

impl Elsewhere {
    fn new<S>(clock: S, now: fn(&S) -> Duration, advance: fn(&S, Duration)) -> Self
    where
        S: Send + Sync + 'static,
    {
        let clock = Arc::new(clock);
        let read = clock.clone();
        Self {
            now: Arc::new(move || now(&read)),
            advance: Arc::new(move |d| advance(&clock, d)),
        }
    }

    fn now(&self) -> Duration {
        (self.now)()
    }

    fn advance(&self, duration: Duration) {
        (self.advance)(duration);
    }
}

impl Debug for VirtualClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.time {
            Time::Own(_) => "own",
            Time::Following(_) => "following",
        };
        f.debug_struct("VirtualClock")
            .field("time", &kind)
            .field("now", &self.now())
            .finish()
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self {
            time: Time::Own(Arc::default()),
        }
    }
}

impl VirtualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock that follows `source`'s time: [`now`](Clock::now) reads it
    /// with `now`, and a sleep moves it forward with `advance`. Takes plain
    /// methods, so any clock adapts without a wrapper type:
    /// `VirtualClock::following(server.clock(), MockClock::now, MockClock::advance)`.
    ///
    /// A sleep advances the source and completes at once, without yielding
    /// (a clock of its own yields once per sleep). Wall-clock time
    /// ([`Clock::system_time`]) is the machine's, since a server following
    /// the same source writes real dates in its `Retry-After` headers.
    pub fn following<S>(source: S, now: fn(&S) -> Duration, advance: fn(&S, Duration)) -> Self
    where
        S: Send + Sync + 'static,
    {
        Self {
            time: Time::Following(Elsewhere::new(source, now, advance)),
        }
    }

    /// Moves time forward without sleeping.
    pub fn advance(&self, duration: Duration) {
        match &self.time {
            Time::Own(nanos) => {
                let n = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
                let _ = nanos.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                    Some(t.saturating_add(n))
                });
            }
            Time::Following(source) => source.advance(duration),
        }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        match &self.time {
            Time::Own(nanos) => Duration::from_nanos(nanos.load(Ordering::SeqCst)),
            Time::Following(source) => source.now(),
        }
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        self.advance(duration);
        match self.time {
            // Yield once so concurrent tasks interleave as they would in
            // real time.
            Time::Own(_) => Box::pin(tokio::task::yield_now()),
            // The source's owner (a mock server) sees the call at once:
            // concurrent tasks reach it in bursts at one virtual instant,
            // as they would when their waits end together.
            Time::Following(_) => Box::pin(std::future::ready(())),
        }
    }

    fn system_time(&self) -> SystemTime {
        match self.time {
            Time::Own(_) => {
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + self.now()
            }
            Time::Following(_) => SystemTime::now(),
        }
    }
}

/// Tokio's clock, moving another clock (a mock server's virtual clock) up
/// to its own time whenever it is read and whenever one of its sleeps
/// ends. Under a paused tokio runtime, concurrent sleeps then overlap in
/// virtual time as they would in real time (unlike [`VirtualClock`], where
/// each sleep adds to the time): the way to measure many concurrent jobs
/// in no real time.
///
/// ```
/// use tryon_client::test_util::DrivingClock;
/// use tryon_mock::MockClock;
/// let mock = MockClock::new_virtual();
/// let clock = DrivingClock::new(mock.clone(), MockClock::now, MockClock::advance);
/// # let _ = clock;
/// ```
#[derive(Clone)]
pub struct DrivingClock {
    tokio: TokioClock,
    target: Elsewhere,
    /// Serialises catching up, so two readers never both advance it.
    lock: Arc<Mutex<()>>,
}

impl Debug for DrivingClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrivingClock")
            .field("tokio", &self.tokio)
            .finish_non_exhaustive()
    }
}

impl DrivingClock {
    /// A clock whose origin is now that keeps `target` (read with `now`,
    /// moved with `advance`) at its own time: every [`Clock::now`] first
    /// advances `target` by however far it is behind, and so does the end
    /// of every sleep. Start it when `target` reads zero. Takes plain
    /// methods, so any clock adapts without a wrapper type.
    pub fn new<S>(target: S, now: fn(&S) -> Duration, advance: fn(&S, Duration)) -> Self
    where
        S: Send + Sync + 'static,
    {
        Self {
            tokio: TokioClock::new(),
            target: Elsewhere::new(target, now, advance),
            lock: Arc::default(),
        }
    }
}

impl Clock for DrivingClock {
    fn now(&self) -> Duration {
        let t = self.tokio.now();
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let behind = t.saturating_sub(self.target.now());
        if !behind.is_zero() {
            self.target.advance(behind);
        }
        t
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let sleep = self.tokio.sleep(duration);
        // The target moves when this clock is read: read it as the sleep
        // ends, so whatever the sleeper sends next meets a target that is
        // up to date.
        let clock = self.clone();
        Box::pin(async move {
            sleep.await;
            let _ = clock.now();
        })
    }
}
