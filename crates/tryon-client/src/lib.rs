#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Each module is a room of its own, and the arrows run one way (each
// module uses only the ones named after it, as a scan of its `crate::`
// paths shows):
//   account -> client, error (the account's reads, on the client)
//   builder -> client, job, limits, output, poll, retry, clock, error
//   client  -> job, output, order, poll, reader, request, retry, error
//   job     -> output, poll, retry, speed, clock, error
//   output  -> reader, image, retry, error
//   retry   -> clock, error, test_util (feature `test-util`) (executor,
//              classify, budget, rate_limiter, limiter, shared)
//   request -> image, limits, error;  reader -> image;
//   image   -> limits, error
//   poll    -> speed (it shows `SpeedEstimate`)
//   speed, limits, order, clock, error: none (the tests of poll and order
//   build requests through the crate root)
//   test_util (feature `test-util`) -> clock
mod account;
mod builder;
mod client;
mod clock;
mod error;
mod image;
mod job;
pub mod limits;
mod order;
mod output;
pub mod poll;
mod reader;
mod request;
mod retry;
mod speed;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;

pub use account::{
    Credits, HISTORY_DEFAULT_MAX_ROWS, HISTORY_MAX_PAGES, HISTORY_MAX_PER_PAGE,
    HISTORY_MAX_WINDOW_DAYS, HistoryEntry, HistoryQuery, HistoryStatus, parse_history_date,
};
pub use builder::{
    API_KEY_ENV, BASE_URL_ENV, ClientBuilder, DEFAULT_BASE_URL, DEFAULT_HISTORY_BASE_URL,
    DEFAULT_UPLOAD_BASE_URL, HISTORY_URL_ENV, UPLOAD_URL_ENV,
};
pub use client::Client;
pub use clock::{Clock, Sleep, TokioClock};
pub use error::{Error, Result};
pub use image::{CheckedImage, Image, ImageKind, read_image_file};
pub use job::{Job, Status};
pub use order::{TailLongestFirst, tail_longest_first};
pub use output::Output;
pub use request::{Format, MAX_GARMENTS, Preflight, TryOnRequest, TryOnRequestBuilder};
pub use retry::{DEFAULT_BUDGET_NAME, RateLimit, RetryPolicy, SharedBudget};
pub use secrecy::SecretString;
/// The generated low-level crate, for callers who need the raw wire.
pub use tryon_api;

/// The workspace README's Rust blocks, compiled and run as this crate's
/// doctests, so the front door's examples cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct WorkspaceReadme;
