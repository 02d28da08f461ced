#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod clock;
mod config;
mod fault;
mod http;
mod journal;
mod limits;
mod log;
#[cfg(feature = "proxy")]
mod proxy;
#[cfg(feature = "proxy")]
mod record;
mod render;
#[cfg(feature = "proxy")]
mod replay;
mod secs;
mod serve;
mod server;
#[cfg(feature = "spec-check")]
pub mod spec_check;
mod state;
mod sync;
#[cfg(feature = "test-util")]
pub mod test_util;
mod validate;

pub use clock::MockClock;
pub use config::{
    CONTENT_BLOCKED, Credits, FailRule, JobMatch, MockConfig, RateLimit, RateScope,
    RealisticProfile, StageFn, Stages, Timing,
};
pub use fault::{Fault, FaultKind, RetryAfter, Route};
pub use http::control::control_routes;
pub use journal::{JournalEntry, key_fingerprint};
pub use limits::{
    MAX_BODY_BYTES, MAX_CLOCK_SECS, MAX_DURATION_SECS, MAX_FAIL_RULES, MAX_FAULTS,
    MAX_JOURNAL_CAPACITY, MAX_KEYS, MAX_LATENCY_SECS, MAX_RATE, MAX_RETRY_AFTER_SECS,
    MAX_TEXT_BYTES,
};
pub use log::LogWriter;
#[cfg(feature = "proxy")]
pub use proxy::{
    DRIFT_HEADER, DriftRecord, MAX_DRIFT_RECORDS, MAX_PROXY_BODY, Proxy, ProxyOptions, SEGMIND_API,
    SEGMIND_UPLOAD, read_capped,
};
#[cfg(feature = "proxy")]
pub use record::{DEFAULT_RECORD_LIMIT, RECORDING_FORMAT};
pub use render::{MAX_INPUT_PIXELS, MAX_INPUT_SIDE, MAX_SIDE, PLACEHOLDER_SIZE};
#[cfg(feature = "proxy")]
pub use replay::{MAX_REPLAY_SPEED, REPLAY_MISS_STATUS, Replay, ReplayOptions};
pub use serve::{ServeOptions, serve};
pub use server::{MockServer, MockServerBuilder};

/// The control API's `OpenAPI` 3.0 document, `openapi/tryon-mock-control.yaml`
/// of this crate: every route under `/__mock/`, its bodies and answers. The
/// one copy: the spec check judges the mock's control answers by it, the
/// Python package's route table is generated from it (`cargo xtask
/// codegen`), and any language can generate a client from it.
///
/// ```
/// assert!(tryon_mock::CONTROL_SPEC.contains("/__mock/advance:"));
/// ```
pub const CONTROL_SPEC: &str = include_str!("../openapi/tryon-mock-control.yaml");

/// Most bytes of one response body kept in the journal with
/// `record_bodies`: 64 KiB.
pub const MAX_RECORDED_BODY: usize = 64 * 1024;
