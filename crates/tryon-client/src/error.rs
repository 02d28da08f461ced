//! The one error type of this crate.

use std::path::PathBuf;
use std::time::Duration;

/// A shorthand for `Result<T, tryon_client::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, from a bad argument to a failed job.
///
/// Callers usually branch on [`Error::is_retryable`], [`Error::status`],
/// [`Error::request_id`] and [`Error::retry_after`] rather than on variants;
/// the enum is `#[non_exhaustive]` so new cases can be added.
///
/// No variant ever holds the API key: server bodies are scrubbed of it
/// before they are stored, and the key itself is only kept as a
/// [`secrecy::SecretString`] inside the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `Client::from_env` found no API key in the environment.
    ///
    /// Set the variable (for example `export SEGMIND_API_KEY=...`) or pass
    /// the key to `Client::builder().api_key(..)`.
    #[error(
        "{variable} is not set: export your Segmind API key in it, or pass one to Client::builder().api_key(..)"
    )]
    MissingApiKey {
        /// The environment variable that was read.
        variable: &'static str,
    },

    /// The client configuration is unusable (bad base URL, plain `http`
    /// to a non-loopback host, a TLS backend that fails to start, ...).
    #[error("invalid client configuration: {field}: {problem}")]
    Config {
        /// The setting at fault, for example `base_url`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },

    /// A request failed validation before anything was sent.
    ///
    /// The message names the field and the limit, for example
    /// `garment_images: 12 given, at most 11 allowed`. Fix the input; retrying
    /// cannot help.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field at fault, in the API's own words (`garment_images[2]`).
        field: String,
        /// What is wrong with it, and the limit.
        problem: String,
    },

    /// A local file could not be read (an [`Image::file`](crate::Image::file)
    /// input) or written ([`Output::save`](crate::Output::save)).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// `401`: the API key is missing or wrong.
    ///
    /// Check the key in `SEGMIND_API_KEY` (or the one given to the builder)
    /// against your Segmind dashboard.
    #[error(
        "401 Unauthorized{}: the API key was rejected; check SEGMIND_API_KEY against your Segmind dashboard ({message})",
        fmt_request_id(request_id.as_deref())
    )]
    Unauthorized {
        /// The job, when the call was about one (a 401 while waiting for
        /// an accepted, billed job): re-attach to it once the account is
        /// fixed.
        request_id: Option<String>,
        /// The server's `error` text.
        message: String,
    },

    /// `403`: the key is valid but lacks the permission for this call.
    ///
    /// Check the key's permissions or the account's access to this model.
    #[error(
        "403 Forbidden{}: the API key lacks permission for this model or call; check its permissions in your Segmind dashboard ({message})",
        fmt_request_id(request_id.as_deref())
    )]
    Forbidden {
        /// The job, when the call was about one (a 403 while waiting for
        /// an accepted, billed job): re-attach to it once the account is
        /// fixed.
        request_id: Option<String>,
        /// The server's `error` text.
        message: String,
    },

    /// `406`: the account has not enough credits. A refused submit was not
    /// billed.
    ///
    /// Top up the account, then submit again.
    #[error(
        "406 Not Acceptable{}: the account is out of credits; top up in your Segmind dashboard, then submit again ({message})",
        fmt_request_id(request_id.as_deref())
    )]
    InsufficientCredits {
        /// The job, when the call was about one (a 406 while waiting for
        /// an accepted, billed job): re-attach to it once the account is
        /// fixed.
        request_id: Option<String>,
        /// The server's `error` text.
        message: String,
    },

    /// `429` that outlasted the retry policy (or the deadline); see
    /// [`RetryPolicy`](crate::RetryPolicy) for when a `429` is waited out.
    #[error("429 Too Many Requests{}: {message}", fmt_retry_after(*retry_after))]
    RateLimited {
        /// The job, when the call was about one.
        request_id: Option<String>,
        /// How long the server asked to wait, if it said.
        retry_after: Option<Duration>,
        /// The server's `error` text.
        message: String,
    },

    /// The job ended `FAILED` (served as a `422`, or as a `200` whose body
    /// says `FAILED`). Content blocks surface here too. Nothing to retry with
    /// the same input; try another seed or other images.
    #[error("job {request_id} failed: {detail}")]
    Failed {
        /// The job.
        request_id: String,
        /// The failure detail the server gave.
        detail: String,
    },

    /// `404` on a job this client knows: its id is unknown, or the job is
    /// older than the one-hour retention. Submit again if you still need it.
    #[error("job {request_id} is unknown or expired (results are kept for one hour)")]
    Expired {
        /// The job.
        request_id: String,
    },

    /// The job did not finish before the deadline. It may still finish:
    /// re-attach with `client.job(request_id)` and wait again.
    #[error(
        "job {request_id} not finished after {elapsed:?}; re-attach with client.job(\"{request_id}\")"
    )]
    Timeout {
        /// The job, to re-attach to.
        request_id: String,
        /// How long this wait lasted.
        elapsed: Duration,
    },

    /// `job.result()` was called before the job completed.
    #[error("job {request_id} is not finished yet (status {status})")]
    NotReady {
        /// The job.
        request_id: String,
        /// The status the server reported.
        status: String,
    },

    /// The submit was sent but its outcome is unknown (the connection
    /// dropped or timed out after the request went out, or the `200` body was
    /// lost). The job may exist and be billed, so the client did **not**
    /// submit again. Check your Segmind dashboard before resubmitting.
    #[error("submit outcome unknown, not retried to avoid paying twice: {detail}")]
    AmbiguousSubmit {
        /// What happened.
        detail: String,
        /// The transport error, if any.
        #[source]
        source: Option<reqwest::Error>,
    },

    /// Any other HTTP error answer. Keeps the status, the raw body and the
    /// job id when there is one.
    #[error("HTTP {status}{}: {message}", fmt_request_id(request_id.as_deref()))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's `error` text, or the raw body when it was not JSON.
        message: String,
        /// The raw body (truncated to a few KiB).
        body: String,
        /// The job, when the call was about one.
        request_id: Option<String>,
    },

    /// The request never got an answer (connect error, reset, timeout).
    /// Retryable for reads; for a submit see [`Error::AmbiguousSubmit`].
    #[error("transport error{}: {source}", fmt_request_id(request_id.as_deref()))]
    Transport {
        /// The job, when the call was about one.
        request_id: Option<String>,
        /// The underlying error (its URL never carries the key).
        #[source]
        source: reqwest::Error,
    },

    /// The server answered something this client cannot read (a `200` body
    /// that is not the documented JSON, an output URL that does not parse).
    #[error("unreadable response{}: {problem}", fmt_request_id(request_id.as_deref()))]
    InvalidResponse {
        /// The job, when the call was about one.
        request_id: Option<String>,
        /// What is wrong.
        problem: String,
    },

    /// Downloading the output failed a safety check (too large, not an
    /// image) or the output host answered an error.
    #[error("download of job {request_id}'s output failed: {problem}")]
    Download {
        /// The job whose output it was.
        request_id: String,
        /// The HTTP status, when the host answered with an error.
        status: Option<u16>,
        /// What is wrong, with the limit when one was hit.
        problem: String,
    },
}

fn fmt_retry_after(d: Option<Duration>) -> String {
    d.map(|d| format!(" (retry after {d:?})"))
        .unwrap_or_default()
}

fn fmt_request_id(id: Option<&str>) -> String {
    id.map(|id| format!(" for job {id}")).unwrap_or_default()
}

impl Error {
    /// Whether the same call may succeed if made again later: true for the
    /// failures a read is retried on (see
    /// [`RetryPolicy`](crate::RetryPolicy)). False for
    /// [`Error::AmbiguousSubmit`] (submitting again may pay twice), for
    /// validation, auth and credit errors, and for failed or expired jobs.
    /// A [`Error::Timeout`] is not retryable as such: re-attach instead.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::RateLimited { .. } => true,
            Error::Api { status, .. } => matches!(status, 500 | 502 | 503 | 504),
            Error::Download { status, .. } => {
                matches!(status, Some(429 | 500 | 502 | 503 | 504))
            }
            _ => false,
        }
    }

    /// The HTTP status the server answered, if this error came from one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { .. } => Some(401),
            Error::Forbidden { .. } => Some(403),
            Error::InsufficientCredits { .. } => Some(406),
            Error::RateLimited { .. } => Some(429),
            Error::Expired { .. } => Some(404),
            Error::Api { status, .. } => Some(*status),
            Error::Download { status, .. } => *status,
            Error::Transport { source, .. } => source.status().map(|s| s.as_u16()),
            _ => None,
        }
    }

    /// The job this error is about, when there is one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Failed { request_id, .. }
            | Error::Expired { request_id }
            | Error::Timeout { request_id, .. }
            | Error::NotReady { request_id, .. }
            | Error::Download { request_id, .. } => Some(request_id),
            Error::RateLimited { request_id, .. }
            | Error::Unauthorized { request_id, .. }
            | Error::Forbidden { request_id, .. }
            | Error::InsufficientCredits { request_id, .. }
            | Error::Api { request_id, .. }
            | Error::Transport { request_id, .. }
            | Error::InvalidResponse { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// How long the server asked to wait (`Retry-After`), if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn config(field: &'static str, problem: impl Into<String>) -> Self {
        Error::Config {
            field,
            problem: problem.into(),
        }
    }
}
