//! A submitted job: status, waiting, events, result. A handle asks the
//! narrow [`JobReader`] (`reader.rs`), so it never needs the whole client;
//! its waits are a [`Poller`](poller::Poller)'s (`poller.rs`).

mod poller;
mod reader;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::Stream;
use tracing::Instrument as _;
use tryon_api::types::JobStatus;

pub(crate) use reader::JobReader;

use crate::error::{Error, Result};
use crate::output::Output;
use crate::poll::Origin;
use crate::retry::Deadline;
use poller::Poller;

/// Where a job is in its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Accepted, waiting for a worker.
    Queued,
    /// A worker has it.
    Processing,
    /// Done; read the output with [`Job::result`].
    Completed,
    /// Failed (content blocks too), with the server's detail.
    Failed {
        /// What the server said.
        detail: String,
    },
}

impl Status {
    /// `Completed` or `Failed`.
    pub fn is_final(&self) -> bool {
        matches!(self, Status::Completed | Status::Failed { .. })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Queued => f.write_str("QUEUED"),
            Status::Processing => f.write_str("PROCESSING"),
            Status::Completed => f.write_str("COMPLETED"),
            Status::Failed { detail } => write!(f, "FAILED: {detail}"),
        }
    }
}

/// A handle on a submitted job. Holds only its id (and what the client
/// knows about it), so it can be dropped and re-made with
/// [`Client::job`](crate::Client::job) at any time within the one-hour
/// retention.
///
/// Status and result URLs are always built from the `request_id` on the
/// client's configured origin; absolute URLs in the server's answers are
/// never followed with the key.
///
/// A wait ([`wait`](Self::wait), [`events`](Self::events)) polls the
/// result URL, which answers the current status before completion and
/// the output once done (docs/CONTRACT.md: assumed), so a job found done
/// by its first poll costs two calls in all: the submit and that poll.
/// Should the result URL answer anything else before completion (a `404`
/// within the retention, another `2xx`, a body without a status), the
/// client asks the status URL once, takes its answer, and its waits poll
/// the status URL from then on (said once, at `info`); such an answer is
/// never taken for expiry, and nothing is ever submitted again.
/// [`status`](Self::status) always reads the light status URL.
#[derive(Debug, Clone)]
pub struct Job {
    reader: Arc<JobReader>,
    request_id: String,
    expected: Option<Duration>,
    /// Garments of the request (0: unknown) and its mode, for the plan.
    garments: u32,
    turbo: bool,
    /// Clock time of submission, or of re-attach.
    origin_at: Duration,
    /// How the handle came to be: submitted here, or re-attached.
    origin: Origin,
    /// The output a poll of the result URL found, shared by clones: a
    /// wait, or `result` after `events`, costs no further call.
    completed: Arc<OnceLock<Output>>,
    span: tracing::Span,
}

/// What a client knows of a job's request when it makes the handle.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Known {
    /// The published compute time.
    pub(crate) expected: Option<Duration>,
    /// Garments (0: unknown).
    pub(crate) garments: u32,
    /// Whether it runs with `turbo`.
    pub(crate) turbo: bool,
}

impl Job {
    pub(crate) fn new(
        reader: Arc<JobReader>,
        request_id: String,
        known: Known,
        origin: Origin,
    ) -> Self {
        let origin_at = reader.clock().now();
        let span = tracing::info_span!("tryon.job", request_id = %request_id);
        Self {
            reader,
            request_id,
            expected: known.expected,
            garments: known.garments,
            turbo: known.turbo,
            origin_at,
            origin,
            completed: Arc::default(),
            span,
        }
    }

    /// Keeps the output a poll found.
    fn keep(&self, output: Output) {
        let _ = self.completed.set(output);
    }

    /// The job's id (a UUID string). Keep it to re-attach later.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The expected compute time used to plan polls, if known.
    pub fn expected_duration(&self) -> Option<Duration> {
        self.expected
    }

    /// Sets the expected compute time (for a re-attached job whose request
    /// is known; see [`TryOnRequest::expected_duration`](crate::TryOnRequest::expected_duration)).
    #[must_use]
    pub fn with_expected_duration(mut self, expected: Duration) -> Self {
        self.expected = Some(expected);
        self
    }

    /// Reads the job's status once (with retries on transient errors).
    /// A failed job is `Ok(Status::Failed { .. })`; an unknown or expired
    /// one is [`Error::Expired`].
    pub async fn status(&self) -> Result<Status> {
        let read = self.reader.read_status(&self.request_id, None);
        match read.instrument(self.span.clone()).await {
            Ok(s) => Ok(match s.status {
                JobStatus::Queued => Status::Queued,
                JobStatus::Processing => Status::Processing,
                JobStatus::Completed => Status::Completed,
                JobStatus::Failed => Status::Failed {
                    detail: s.error.unwrap_or_else(|| "no detail given".into()),
                },
            }),
            Err(Error::Failed { detail, .. }) => Ok(Status::Failed { detail }),
            Err(e) => Err(e),
        }
    }

    /// Waits for the job, up to the client's wait timeout, and reads its
    /// result.
    pub async fn wait(&self) -> Result<Output> {
        self.wait_with(self.reader.wait_timeout()).await
    }

    /// Waits at most `timeout` from now and reads the result. Never sleeps
    /// past the deadline: on expiry it returns [`Error::Timeout`] with the
    /// `request_id`, and the job can be waited for again.
    pub async fn wait_with(&self, timeout: Duration) -> Result<Output> {
        async {
            let mut poller = Poller::new(self.clone(), timeout);
            while let Some(item) = poller.next().await {
                match item? {
                    Status::Completed => return self.result_within(Some(poller.deadline)).await,
                    Status::Failed { detail } => {
                        return Err(Error::Failed {
                            request_id: self.request_id.clone(),
                            detail,
                        });
                    }
                    _ => {}
                }
            }
            Err(poller.timeout())
        }
        .instrument(self.span.clone())
        .await
    }

    /// Reads the result once (a wait or [`events`](Self::events) of this
    /// handle that found it done has it already: no call then). Before
    /// completion this is [`Error::NotReady`] (also where the result URL
    /// answers otherwise before completion: one status read tells); a
    /// failed job is [`Error::Failed`].
    pub async fn result(&self) -> Result<Output> {
        if let Some(output) = self.completed.get() {
            return Ok(output.clone());
        }
        let r = self
            .reader
            .result_once(&self.request_id)
            .instrument(self.span.clone())
            .await?;
        self.output_of(r)
    }

    /// The result after a wait saw the job completed.
    async fn result_within(&self, deadline: Option<Deadline>) -> Result<Output> {
        if let Some(output) = self.completed.get() {
            return Ok(output.clone());
        }
        let r = self.reader.read_result(&self.request_id, deadline).await?;
        self.output_of(r)
    }

    fn output_of(&self, r: tryon_api::types::ResultResponse) -> Result<Output> {
        match r.status {
            JobStatus::Completed => self.reader.output(&self.request_id, r),
            JobStatus::Failed => Err(Error::Failed {
                request_id: self.request_id.clone(),
                detail: r.error.unwrap_or_else(|| "no detail given".into()),
            }),
            other => Err(Error::NotReady {
                request_id: self.request_id.clone(),
                status: other.to_string(),
            }),
        }
    }

    /// A stream of the job's status changes, polled with the client's
    /// policy, ending after a final status (`Completed` or `Failed`), an
    /// error, or the client's wait timeout ([`Error::Timeout`]).
    ///
    /// A freshly submitted job yields `Queued` first without a call.
    pub fn events(&self) -> impl Stream<Item = Result<Status>> + Send + 'static {
        self.events_with(self.reader.wait_timeout())
    }

    /// [`events`](Self::events) with its own timeout from now.
    pub fn events_with(
        &self,
        timeout: Duration,
    ) -> impl Stream<Item = Result<Status>> + Send + 'static {
        let poller = Poller::new(self.clone(), timeout);
        let span = self.span.clone();
        futures::stream::unfold(poller, move |mut p| {
            let span = span.clone();
            async move { p.next().instrument(span).await.map(|item| (item, p)) }
        })
    }
}
