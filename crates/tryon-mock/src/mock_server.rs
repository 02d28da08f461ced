//! `MockServer` and its builder: the in-process handle on one mock.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::clock::MockClock;
use crate::config::{
    Credits, FailRule, MockConfig, RateLimitRule, RealisticProfile, ResultBeforeCompletion, Stages,
    Timing,
};
use crate::fault::Fault;
use crate::http::conn::{ConnLimits, accept_loop, bind};
use crate::request_log::RequestLogEntry;
use crate::state::State;
use crate::sync::lock;

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
    control_token: Option<String>,
}

impl Default for MockServerBuilder {
    fn default() -> Self {
        Self {
            config: MockConfig::default(),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            expected_submits: None,
            spec_check: true,
            control_token: None,
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

    /// How long a completed job's output stays downloadable (its `output`
    /// and the history's `generation_url`), apart from the status
    /// retention. Default 7 days.
    pub fn output_retention(mut self, d: Duration) -> Self {
        self.config.output_retention = d;
        self
    }

    /// How long after its submit a request's history row lands; before
    /// that it is absent, or with nulls when `partial`. Default 0 s,
    /// absent.
    pub fn history_landing(mut self, delay: Duration, partial: bool) -> Self {
        self.config.history_delay = delay;
        self.config.history_partial = partial;
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

    /// What the result URL answers before the job is final. Default:
    /// `200` with the current status (the contract's assumption).
    pub fn result_before_completion(mut self, answer: ResultBeforeCompletion) -> Self {
        self.config.result_before_completion = answer;
        self
    }

    /// A token bucket per key. Default: no limit.
    pub fn rate_limit(mut self, limit: RateLimitRule) -> Self {
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

    /// Keeps JSON response bodies in the request log. Default false.
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

    /// Requires `Authorization: Bearer <token>` on every `/__mock/` call
    /// but `GET /__mock/health` (401 without it). Default: no token, for a
    /// mock on loopback.
    pub fn control_token(mut self, token: impl Into<String>) -> Self {
        self.control_token = Some(token.into());
        self
    }

    /// Most open connections (default 256, and never more than the open-file
    /// limit allows less 32); at the cap the oldest idle connection is
    /// closed to make room.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }

    /// A request's head must arrive within `d`, and a kept-alive connection
    /// with no new request for `d` is closed. Default 10 s.
    pub fn header_timeout(mut self, d: Duration) -> Self {
        self.config.header_timeout = d;
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
    ///
    /// # Errors
    /// The address cannot be bound, or a configured value is out of bounds
    /// (`InvalidInput`, naming the field; see [`MockConfig::validate`]).
    pub async fn try_start(self) -> std::io::Result<MockServer> {
        self.config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let (listener, addr, local) = bind(self.addr).await?;
        let base = match &self.config.public_url {
            Some(p) => p.trim_end_matches('/').to_string(),
            None => local.clone(),
        };
        let clock = if self.config.virtual_time {
            MockClock::new_virtual()
        } else {
            MockClock::new_real()
        };
        let limits = ConnLimits {
            max_connections: self.config.max_connections,
            header_timeout: self.config.header_timeout,
        };
        #[cfg_attr(not(feature = "spec-check"), allow(unused_mut))]
        let mut state = State::new(self.config, clock, base, self.control_token);
        #[cfg(feature = "spec-check")]
        {
            state.spec = self.spec_check.then(Default::default);
        }
        let state = Arc::new(state);
        *lock(&state.expected_submits) = self.expected_submits;
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state), limits));
        Ok(MockServer {
            state,
            addr,
            uri: local,
            task,
        })
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

    /// Moves the clock forward (also in real-time mode, on top of real
    /// time); it stops at [`MAX_CLOCK_SECS`](crate::limits::MAX_CLOCK_SECS).
    pub fn advance(&self, by: Duration) {
        self.state.clock.advance(by);
    }

    /// Every request so far (the newest `request_log_capacity` of them).
    pub fn request_log(&self) -> Vec<RequestLogEntry> {
        self.state.request_log()
    }

    /// Billed jobs, for all keys: accepted v2 submits plus successful v1
    /// runs (a submit whose connection was dropped after acceptance counts).
    pub fn billed_submits(&self) -> u64 {
        self.state.billing(None).total
    }

    /// Billed jobs for one key.
    pub fn billed_submits_for(&self, key: &str) -> u64 {
        self.state.billing(Some(key)).key.map_or(0, |k| k.billed)
    }

    /// The remaining credit balance of `key`, when credits are configured
    /// and the key has been charged or set.
    pub fn balance(&self, key: &str) -> Option<f64> {
        self.state.billing(Some(key)).key.and_then(|k| k.balance)
    }

    /// Sets the credit balance of `key` (credits must be configured to be
    /// enforced).
    pub fn set_balance(&self, key: &str, balance: f64) {
        self.state.set_balance(key, balance);
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
                "tryon-mock: {} response bod(y/ies) did not match their document (tryon_api::SPEC, or tryon_mock::CONTROL_SPEC under /__mock/): {violations:#?}",
                violations.len()
            );
        }
        if let Some(n) = *lock(&self.state.expected_submits) {
            let got = self.billed_submits();
            assert!(
                got == n,
                "tryon-mock: expected {n} billed submit(s), got {got}; request log: {:#?}",
                self.request_log()
            );
        }
    }

    /// Adds a fault while running.
    ///
    /// # Panics
    /// If the fault is out of bounds (a latency over
    /// [`MAX_LATENCY_SECS`](crate::limits::MAX_LATENCY_SECS), a status outside
    /// 400..=599, …) or [`MAX_FAULTS`](crate::limits::MAX_FAULTS) are active: a
    /// test's own mistake, named in the message.
    pub fn push_fault(&self, fault: Fault) {
        expect_valid(self.state.push_faults(vec![fault]));
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.state.clear_faults();
    }

    /// Adds a failure rule while running (applies to jobs submitted after).
    ///
    /// # Panics
    /// If the rule is out of bounds (see [`push_fault`](Self::push_fault)).
    pub fn push_fail_rule(&self, rule: FailRule) {
        expect_valid(self.state.push_fail_rule(rule));
    }

    /// Removes every failure rule.
    pub fn clear_fail_rules(&self) {
        expect_valid(self.state.set_fail_rules(Vec::new()));
    }

    /// Sets or removes the rate limit (buckets start full again).
    ///
    /// # Panics
    /// If the limit is not finite or out of bounds.
    pub fn set_rate_limit(&self, limit: Option<RateLimitRule>) {
        expect_valid(self.state.set_rate_limit(limit));
    }

    /// Sets what the result URL answers before the job is final.
    pub fn set_result_before_completion(&self, answer: ResultBeforeCompletion) {
        self.state.set_result_before_completion(answer);
    }

    /// Sets or removes the accepted key list.
    ///
    /// # Panics
    /// If a key is empty or the list is out of bounds.
    pub fn set_keys(&self, keys: Option<Vec<String>>) {
        expect_valid(self.state.set_keys(keys));
    }

    /// Sets or removes credits (prices and starting balance).
    ///
    /// # Panics
    /// If a price or balance is negative or not finite.
    pub fn set_credits(&self, credits: Option<Credits>) {
        expect_valid(self.state.set_credits(credits));
    }

    /// Sets the timing for jobs submitted from now on.
    ///
    /// # Panics
    /// If a stage is longer than [`MAX_DURATION_SECS`](crate::limits::MAX_DURATION_SECS).
    pub fn set_timing(&self, timing: Timing) {
        expect_valid(self.state.set_timing(timing));
    }

    /// Places a row in a key's request history, as the control call
    /// `POST /__mock/history` does (the same JSON: `key` and any of
    /// `request_id`, `model_name`, `status`, `credits_deduction`,
    /// `request_body`, `error`, `age`, `lands_in`): another client's
    /// request on the account, a look-alike body, a record that lands late.
    /// Nothing is billed. Returns its `request_id`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let server = tryon_mock::MockServer::start().await;
    /// let id = server.place_history(serde_json::json!({"key": "sk-test", "age": 60})).unwrap();
    /// assert_eq!(id.len(), 36);
    /// # }
    /// ```
    ///
    /// # Errors
    /// A value out of bounds or of the wrong shape, naming the field.
    pub fn place_history(&self, row: serde_json::Value) -> Result<String, String> {
        let row: crate::state::PlacedRow =
            serde_json::from_value(row).map_err(|e| format!("history: {e}"))?;
        self.state
            .place_history(vec![row])
            .map(|mut entries| entries.remove(0).request_id)
            .map_err(|e| format!("history{e}"))
    }

    /// How many jobs are stored (expired ones are removed lazily).
    pub fn job_count(&self) -> usize {
        self.state.job_count()
    }

    /// Back to the starting configuration: no jobs, request log, billing or
    /// uploads; initial faults and rules; the clock's advances taken back
    /// (a virtual clock reads zero again).
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

/// A setter's value was out of bounds: the test's own mistake.
fn expect_valid<T>(r: Result<T, String>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("tryon-mock: {e}"),
    }
}

impl MockServer {
    /// Waits until the server stops (it only stops when dropped or aborted,
    /// so for a standalone process this is "forever").
    pub async fn run(mut self) {
        let _ = (&mut self.task).await;
    }
}
