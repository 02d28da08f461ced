#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

// Each module is a room of its own; the arrows run one way:
// builder -> session -> {transport, classify, output}; client -> {session,
// job}; job -> {session, output, poll}; output -> {transport, reader}.
mod builder;
mod classify;
mod client;
mod clock;
mod error;
mod image;
mod job;
mod limit;
mod order;
mod output;
mod poll;
mod reader;
mod request;
mod retry;
mod session;
mod transport;

pub use builder::{
    API_KEY_ENV, BASE_URL_ENV, ClientBuilder, DEFAULT_BASE_URL, DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_UPLOAD_BASE_URL, UPLOAD_URL_ENV,
};
pub use clock::{Clock, Sleep, TokioClock, VirtualClock};
pub use error::{Error, Result};
pub use image::{
    CheckedImage, DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, Image, ImageKind,
    MAX_IMAGE_SIDE, read_image_file,
};
pub use job::{Job, Status};
pub use limit::RateLimit;
pub use order::{TailLongestFirst, tail_longest_first};
pub use output::Output;
pub use poll::{FixedPolling, ModelAwarePolling, Phase, PollPolicy, PollState};
pub use request::{
    Format, MAX_GARMENTS, MAX_OUTPUT_QUALITY, Preflight, TURBO_ADVISED_MAX_GARMENTS, TryOnRequest,
    TryOnRequestBuilder,
};
pub use retry::RetryPolicy;
pub use secrecy::SecretString;
pub use session::Client;
/// The generated low-level crate, for callers who need the raw wire.
pub use tryon_api;
