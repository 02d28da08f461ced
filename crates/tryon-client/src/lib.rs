#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
pub mod clock;
mod error;
mod image;
mod job;
mod limit;
mod output;
pub mod poll;
mod request;
pub mod retry;

pub use client::{
    API_KEY_ENV, BASE_URL_ENV, Client, ClientBuilder, DEFAULT_BASE_URL, DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_UPLOAD_BASE_URL, UPLOAD_URL_ENV,
};
pub use clock::{Clock, TokioClock, VirtualClock};
pub use error::{Error, Result};
pub use image::{
    CheckedImage, DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, Image, ImageKind,
};
pub use job::{Job, Status};
pub use output::Output;
pub use poll::{FixedPolling, ModelAwarePolling, PollPolicy};
pub use request::{
    Format, MAX_GARMENTS, MAX_OUTPUT_QUALITY, Preflight, TURBO_ADVISED_MAX_GARMENTS, TryOnRequest,
    TryOnRequestBuilder,
};
pub use retry::RetryPolicy;
pub use secrecy::SecretString;
/// The generated low-level crate, for callers who need the raw wire.
pub use tryon_api;
