#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod clock;
mod config;
mod fault;
mod http;
mod journal;
mod render;
mod server;
#[cfg(feature = "spec-check")]
pub mod spec_check;
mod state;
mod validate;

pub use clock::MockClock;
pub use config::{
    CONTENT_BLOCKED, Credits, FailRule, JobMatch, MockConfig, RateLimit, RealisticProfile, StageFn,
    Stages, Timing,
};
pub use fault::{Fault, FaultKind, RetryAfter, Route};
pub use journal::JournalEntry;
pub use render::{MAX_SIDE, PLACEHOLDER_SIZE};
pub use server::{MockServer, MockServerBuilder, serve};
pub use validate::MAX_GARMENTS;
