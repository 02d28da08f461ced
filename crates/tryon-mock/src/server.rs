//! `MockServer`, its builder, and the standalone entry point.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::clock::MockClock;
use crate::config::{Credits, FailRule, MockConfig, RateLimit, RealisticProfile, Stages, Timing};
use crate::fault::Fault;
use crate::journal::JournalEntry;
use crate::state::{ActiveFault, State, lock};

/// A running fake of the try-on API on a random loopback port.
///
/// It serves on the tokio runtime that started it (a spawned task, so the
/// default current-thread `#[tokio::test]` runtime works: the mock runs
/// whenever the test awaits). Dropping it stops it and verifies
/// expectations set with [`expect_submits`](Self::expect_submits).
pub struct MockServer {
    state: Arc<State>,
    addr: SocketAddr,
    uri: String,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer")
            .field("uri", &self.uri)
            .field("clock", &self.state.clock)
            .finish_non_exhaustive()
    }
}

/// Configures a [`MockServer`]; every setter documents its default.
#[derive(Debug, Clone)]
#[must_use]
pub struct MockServerBuilder {
    config: MockConfig,
    addr: SocketAddr,
    expected_submits: Option<u64>,
    #[cfg_attr(not(feature = "spec-check"), allow(dead_code))]
    spec_check: bool,
}

impl Default for MockServerBuilder {
    fn default() -> Self {
        Self {
            config: MockConfig::default(),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            expected_submits: None,
            spec_check: true,
        }
    }
}

impl MockServerBuilder {
    /// Replaces the whole configuration (e.g. one read from TOML).
    pub fn config(mut self, config: MockConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses a virtual clock that only moves with [`MockServer::advance`].
    /// Default: real time.
    pub fn virtual_time(mut self) -> Self {
        self.config.virtual_time = true;
        self
    }

    /// Every job spends `queued` in `QUEUED` and `processing` in
    /// `PROCESSING`. Default 20 ms and 80 ms.
    pub fn stages(mut self, queued: Duration, processing: Duration) -> Self {
        self.config.timing = Timing::Fixed(Stages::new(queued, processing));
        self
    }

    /// Sets the timing model (fixed, realistic or per request).
    pub fn timing(mut self, timing: Timing) -> Self {
        self.config.timing = timing;
        self
    }

    /// The realistic profile with its defaults and 4 workers (see
    /// [`RealisticProfile`]).
    pub fn realistic(mut self) -> Self {
        self.config.timing = Timing::Realistic(RealisticProfile::default());
        self.config.workers.get_or_insert(4);
        self
    }

    /// At most `n` jobs run at once; the rest stay `QUEUED`. Default: no
    /// bound.
    pub fn workers(mut self, n: usize) -> Self {
        self.config.workers = Some(n);
        self
    }

    /// How long jobs are kept after submission before 404. Default 1 hour.
    pub fn retention(mut self, d: Duration) -> Self {
        self.config.retention = d;
        self
    }

    /// Only these API keys are accepted (others get 401). Default: any
    /// non-empty key.
    pub fn keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.keys = Some(keys.into_iter().map(Into::into).collect());
        self
    }

    /// A token bucket per key. Default: no limit.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.config.rate_limit = Some(limit);
        self
    }

    /// Credits per key (406 when they run out). Default: unlimited.
    pub fn credits(mut self, credits: Credits) -> Self {
        self.config.credits = Some(credits);
        self
    }

    /// Adds a rule that makes matching jobs fail.
    pub fn fail(mut self, rule: FailRule) -> Self {
        self.config.fail_rules.push(rule);
        self
    }

    /// Adds a fault.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.config.faults.push(fault);
        self
    }

    /// Largest accepted body (413 above). Default 16 MiB.
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.config.max_body_bytes = n;
        self
    }

    /// Keeps JSON response bodies in the journal. Default false.
    pub fn record_bodies(mut self, on: bool) -> Self {
        self.config.record_bodies = on;
        self
    }

    /// Size of outputs whose person photo's size is not preserved. Default
    /// 64×96 (small, so tests stay fast); sides are clamped to 1..=2048.
    pub fn output_size(mut self, width: u32, height: u32) -> Self {
        self.config.output_size = (width, height);
        self
    }

    /// Listens on `addr` instead of `127.0.0.1:0`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Expects exactly `n` billed jobs by the time the server is dropped.
    pub fn expect_submits(mut self, n: u64) -> Self {
        self.expected_submits = Some(n);
        self
    }

    /// With the `spec-check` feature, checks every JSON body sent against
    /// the spec and fails [`MockServer::verify`] (and so the drop) on a
    /// violation. Default: on when the feature is compiled in (it is for
    /// this crate's own tests); no effect without the feature.
    pub fn spec_check(mut self, on: bool) -> Self {
        self.spec_check = on;
        self
    }

    /// Binds and starts serving on the current tokio runtime.
    ///
    /// # Panics
    /// If the address cannot be bound (use [`try_start`](Self::try_start)
    /// to handle that).
    pub async fn start(self) -> MockServer {
        match self.try_start().await {
            Ok(s) => s,
            Err(e) => panic!("tryon-mock: cannot bind a listener: {e}"),
        }
    }

    /// Binds and starts serving on the current tokio runtime.
    pub async fn try_start(self) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(self.addr).await?;
        let addr = listener.local_addr()?;
        let uri = format!("http://{addr}");
        let fixed_base = match &self.config.public_url {
            Some(p) => Some(p.trim_end_matches('/').to_string()),
            None if addr.ip().is_unspecified() => None,
            None => Some(uri.clone()),
        };
        let fallback = if addr.ip().is_unspecified() {
            format!("http://127.0.0.1:{}", addr.port())
        } else {
            uri.clone()
        };
        let clock = if self.config.virtual_time {
            MockClock::new_virtual()
        } else {
            MockClock::new_real()
        };
        #[cfg_attr(not(feature = "spec-check"), allow(unused_mut))]
        let mut state = State::new(self.config, clock, fixed_base, fallback);
        #[cfg(feature = "spec-check")]
        {
            state.spec = self.spec_check.then(Default::default);
        }
        let state = Arc::new(state);
        *lock(&state.expected_submits) = self.expected_submits;
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Ok(MockServer {
            state,
            addr,
            uri,
            task,
        })
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    // Connections live in this set, so aborting the loop closes them too.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        // Out of file descriptors and the like: back off a little.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                conns.spawn(async move {
                    let service = service_fn(move |req| crate::http::handle(Arc::clone(&state), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

impl MockServer {
    /// A server with the defaults: real time, 20 ms queued + 80 ms
    /// processing, no limits, no faults.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start() -> MockServer {
        Self::builder().start().await
    }

    /// A builder to configure the scenario.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder::default()
    }

    /// The base URL to give a client, like `http://127.0.0.1:PORT` (no
    /// trailing slash).
    pub fn uri(&self) -> String {
        self.uri.clone()
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// The server's clock (clone it into a client's sleeper).
    pub fn clock(&self) -> MockClock {
        self.state.clock.clone()
    }

    /// Time since the server started, on its clock.
    pub fn now(&self) -> Duration {
        self.state.clock.now()
    }

    /// Moves the clock forward (also in real-time mode, on top of real time).
    pub fn advance(&self, by: Duration) {
        self.state.clock.advance(by);
    }

    /// Every request so far (the newest `journal_capacity` of them).
    pub fn journal(&self) -> Vec<JournalEntry> {
        lock(&self.state.journal).iter().cloned().collect()
    }

    /// Billed jobs, for all keys: accepted v2 submits plus successful v1
    /// runs (a submit whose connection was dropped after acceptance counts).
    pub fn billed_submits(&self) -> u64 {
        lock(&self.state.billing).total
    }

    /// Billed jobs for one key.
    pub fn billed_submits_for(&self, key: &str) -> u64 {
        lock(&self.state.billing)
            .per_key
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// The remaining credit balance of `key`, when credits are configured
    /// and the key has been charged or set.
    pub fn balance(&self, key: &str) -> Option<f64> {
        lock(&self.state.billing).balances.get(key).copied()
    }

    /// Sets the credit balance of `key` (credits must be configured to be
    /// enforced).
    pub fn set_balance(&self, key: &str, balance: f64) {
        lock(&self.state.billing)
            .balances
            .insert(key.to_string(), balance);
    }

    /// Expects exactly `n` billed jobs by the time the server is dropped
    /// (checked on drop, skipped if the thread is already panicking).
    pub fn expect_submits(&self, n: u64) {
        *lock(&self.state.expected_submits) = Some(n);
    }

    /// What the spec check saw so far (empty when it is off).
    #[cfg(feature = "spec-check")]
    pub fn spec_report(&self) -> crate::spec_check::SpecReport {
        self.state
            .spec
            .as_ref()
            .map(|r| lock(r).clone())
            .unwrap_or_default()
    }

    /// Checks the expectations now.
    ///
    /// # Panics
    /// If the number of billed jobs differs from the expectation, or (with
    /// the `spec-check` feature) a body sent did not match the spec.
    pub fn verify(&self) {
        #[cfg(feature = "spec-check")]
        if let Some(report) = &self.state.spec {
            let violations = &lock(report).violations;
            assert!(
                violations.is_empty(),
                "tryon-mock: {} response bod(y/ies) did not match openapi/segmind-tryon.yaml: {violations:#?}",
                violations.len()
            );
        }
        if let Some(n) = *lock(&self.state.expected_submits) {
            let got = self.billed_submits();
            assert!(
                got == n,
                "tryon-mock: expected {n} billed submit(s), got {got}; journal: {:#?}",
                self.journal()
            );
        }
    }

    /// Adds a fault while running.
    pub fn push_fault(&self, fault: Fault) {
        lock(&self.state.settings)
            .faults
            .push(ActiveFault { fault });
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        lock(&self.state.settings).faults.clear();
    }

    /// Adds a failure rule while running (applies to jobs submitted after).
    pub fn push_fail_rule(&self, rule: FailRule) {
        lock(&self.state.settings).fail_rules.push(rule);
    }

    /// Removes every failure rule.
    pub fn clear_fail_rules(&self) {
        lock(&self.state.settings).fail_rules.clear();
    }

    /// Sets or removes the rate limit (buckets start full again).
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        lock(&self.state.settings).rate_limit = limit;
        lock(&self.state.buckets).clear();
    }

    /// Sets or removes the accepted key list.
    pub fn set_keys(&self, keys: Option<Vec<String>>) {
        lock(&self.state.settings).keys = keys;
    }

    /// Sets or removes credits (prices and starting balance).
    pub fn set_credits(&self, credits: Option<Credits>) {
        lock(&self.state.settings).credits = credits;
    }

    /// Sets the timing for jobs submitted from now on.
    pub fn set_timing(&self, timing: Timing) {
        lock(&self.state.settings).timing = timing;
    }

    /// How many jobs are stored (expired ones are removed lazily).
    pub fn job_count(&self) -> usize {
        lock(&self.state.jobs).map.len()
    }

    /// Back to the starting configuration: no jobs, journal, billing or
    /// uploads; initial faults and rules. The clock keeps its time.
    pub fn reset(&self) {
        self.state.reset();
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
        if !std::thread::panicking() {
            self.verify();
        }
    }
}

/// Runs the mock standalone on `addr` until the process ends: real time
/// unless the config says `virtual_time`, one `tracing` line per request,
/// and an `info` line with the base URL at start. The spec check is off
/// here (nothing would read its report).
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let config: tryon_mock::MockConfig = toml::from_str("retention = 60.0").unwrap();
/// tryon_mock::serve(config, "127.0.0.1:8080".parse().unwrap()).await
/// # }
/// ```
pub async fn serve(config: MockConfig, addr: SocketAddr) -> std::io::Result<()> {
    let server = MockServer::builder()
        .config(config)
        .bind(addr)
        .spec_check(false)
        .try_start()
        .await?;
    tracing::info!(uri = %server.uri(), "tryon-mock listening on {}", server.uri());
    server.run().await;
    Ok(())
}

impl MockServer {
    /// Waits until the server stops (it only stops when dropped or aborted,
    /// so for a standalone process this is "forever").
    pub async fn run(mut self) {
        let _ = (&mut self.task).await;
    }
}
