#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "proxy")]
pub mod capped;
mod checks;
mod clock;
mod config;
mod fault;
mod http;
pub mod limits;
pub mod logging;
mod mock_server;
#[cfg(feature = "proxy")]
mod proxy;
#[cfg(feature = "proxy")]
mod record;
mod render;
#[cfg(feature = "proxy")]
mod replay;
mod request_log;
mod secs;
#[cfg(feature = "spec-check")]
pub mod spec_check;
mod standalone;
mod state;
mod sync;
#[cfg(feature = "test-util")]
pub mod test_util;
mod validate;

pub use clock::MockClock;
pub use config::{
    Credits, FailRule, JobMatch, MockConfig, RateLimitRule, RateScope, RealisticProfile,
    ResultBeforeCompletion, StageFn, Stages, Timing,
};
pub use fault::{Fault, FaultKind, FaultRoute, RetryAfter};
pub use mock_server::{MockServer, MockServerBuilder};
#[cfg(feature = "proxy")]
pub use proxy::{DriftRecord, Proxy, ProxyOptions};
#[cfg(feature = "proxy")]
pub use record::RecordingIncomplete;
#[cfg(feature = "proxy")]
pub use replay::{Replay, ReplayOptions};
pub use request_log::RequestLogEntry;
pub use standalone::{ServeOptions, serve};

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
