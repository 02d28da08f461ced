//! A submitted job: status, waiting, events, result; and the narrow
//! [`JobReader`] a job asks, so a handle never needs the whole client.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tracing::Instrument as _;
use tryon_api::types::{JobStatus, ResultResponse, StatusResponse};

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::output::{Downloader, Output};
use crate::poll::{Origin, Phase, PollPolicy, PollState, budget_bound_delay};
use crate::retry::{ApiCaller, Deadline};

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

    fn phase(&self) -> Option<Phase> {
        match self {
            Status::Queued => Some(Phase::Queued),
            Status::Processing => Some(Phase::Processing),
            _ => None,
        }
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
#[derive(Debug, Clone)]
pub struct Job {
    reader: Arc<JobReader>,
    request_id: String,
    expected: Option<Duration>,
    /// Clock time of submission, or of re-attach.
    origin_at: Duration,
    /// How the handle came to be: submitted here, or re-attached.
    origin: Origin,
    span: tracing::Span,
}

impl Job {
    pub(crate) fn new(
        reader: Arc<JobReader>,
        request_id: String,
        expected: Option<Duration>,
        origin: Origin,
    ) -> Self {
        let origin_at = reader.clock().now();
        let span = tracing::info_span!("tryon.job", request_id = %request_id);
        Self {
            reader,
            request_id,
            expected,
            origin_at,
            origin,
            span,
        }
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
        self.status_within(None).instrument(self.span.clone()).await
    }

    async fn status_within(&self, deadline: Option<Deadline>) -> Result<Status> {
        match self.reader.read_status(&self.request_id, deadline).await {
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

    /// Reads the result once. Before completion this is
    /// [`Error::NotReady`]; a failed job is [`Error::Failed`].
    pub async fn result(&self) -> Result<Output> {
        self.result_within(None).instrument(self.span.clone()).await
    }

    async fn result_within(&self, deadline: Option<Deadline>) -> Result<Output> {
        let r = self.reader.read_result(&self.request_id, deadline).await?;
        match r.status {
            JobStatus::Completed => {
                let url = r.output.filter(|o| !o.trim().is_empty()).ok_or_else(|| {
                    Error::InvalidResponse {
                        request_id: Some(self.request_id.clone()),
                        problem: "COMPLETED result without an output URL".into(),
                    }
                })?;
                let inference_time = r
                    .metrics
                    .and_then(|m| m.inference_time)
                    .and_then(|t| Duration::try_from_secs_f64(t).ok());
                tracing::info!(?inference_time, "completed");
                Output::new(
                    self.reader.downloader(),
                    self.request_id.clone(),
                    &url,
                    inference_time,
                )
            }
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

/// Polls a job and yields status changes.
struct Poller {
    job: Job,
    deadline: Deadline,
    state: PollState,
    emitted: Option<Status>,
    done: bool,
}

impl Poller {
    fn new(job: Job, timeout: Duration) -> Self {
        let now = job.reader.clock().now();
        let state = PollState::start(now.saturating_sub(job.origin_at), job.expected, job.origin);
        Self {
            deadline: Deadline::after(now, timeout),
            state,
            emitted: None,
            done: false,
            job,
        }
    }

    fn timeout(&self) -> Error {
        self.job.reader.timeout(&self.job.request_id, self.deadline)
    }

    async fn next(&mut self) -> Option<Result<Status>> {
        if self.done {
            return None;
        }
        // A fresh submit is known to be queued: say so before any call.
        if self.emitted.is_none() && self.job.origin == Origin::Submitted && self.state.polls == 0 {
            self.emitted = Some(Status::Queued);
            return Some(Ok(Status::Queued));
        }
        let clock = self.job.reader.clock().clone();
        loop {
            let now = clock.now();
            if now >= self.deadline.at {
                self.done = true;
                return Some(Err(self.timeout()));
            }
            let first_contact = self.state.polls == 0 && self.state.last.is_none();
            let delay = if first_contact {
                Duration::ZERO
            } else {
                self.state.elapsed = now.saturating_sub(self.job.origin_at);
                let planned = self.job.reader.next_poll_delay(&self.state);
                if self.job.reader.reads_bound() {
                    planned.max(budget_bound_delay(&self.state))
                } else {
                    planned
                }
            };
            // Never sleep past the deadline: the last poll happens at it.
            let delay = delay.min(self.deadline.at.saturating_sub(now));
            if !delay.is_zero() {
                clock.sleep(delay).await;
            }
            let status = match self.job.status_within(Some(self.deadline)).await {
                Ok(s) => s,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            let at = clock.now().saturating_sub(self.job.origin_at);
            self.state.observe(at, status.phase());
            tracing::debug!(polls = self.state.polls, status = %status, "polled");
            if status.is_final() {
                self.done = true;
            }
            if self.emitted.as_ref() != Some(&status) {
                tracing::info!(status = %status, polls = self.state.polls, "status changed");
                self.emitted = Some(status.clone());
                return Some(Ok(status));
            }
        }
    }
}

/// What a [`Job`] asks: its status and result reads, the poll policy, the
/// default wait, and the downloader its [`Output`] gets. One per client,
/// shared by all of its jobs.
pub(crate) struct JobReader {
    api: tryon_api::Client,
    caller: Arc<ApiCaller>,
    poll: Arc<dyn PollPolicy>,
    wait_timeout: Duration,
    downloader: Downloader,
}

impl std::fmt::Debug for JobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobReader")
            .field("poll", &self.poll)
            .field("wait_timeout", &self.wait_timeout)
            .finish_non_exhaustive()
    }
}

impl JobReader {
    pub(crate) fn new(
        api: tryon_api::Client,
        caller: Arc<ApiCaller>,
        poll: Arc<dyn PollPolicy>,
        wait_timeout: Duration,
        downloader: Downloader,
    ) -> Self {
        Self {
            api,
            caller,
            poll,
            wait_timeout,
            downloader,
        }
    }

    /// The poll policy.
    pub(crate) fn poll_policy(&self) -> &Arc<dyn PollPolicy> {
        &self.poll
    }

    /// How long [`Job::wait`] waits by default.
    pub(crate) fn wait_timeout(&self) -> Duration {
        self.wait_timeout
    }

    fn clock(&self) -> &SharedClock {
        self.caller.executor().clock()
    }

    /// The next poll's delay, by the client's poll policy.
    fn next_poll_delay(&self, state: &PollState) -> Duration {
        self.poll.next_delay(state)
    }

    /// Whether status reads now wait for the rate limiter.
    fn reads_bound(&self) -> bool {
        self.caller.executor().reads_bound()
    }

    /// The handle outputs download through.
    fn downloader(&self) -> Downloader {
        self.downloader.clone()
    }

    /// The error of a wait that reached its deadline.
    fn timeout(&self, request_id: &str, deadline: Deadline) -> Error {
        self.caller.executor().timeout(request_id, deadline)
    }

    /// `GET /v2/requests/{id}/status`, on the configured origin.
    async fn read_status(
        &self,
        request_id: &str,
        deadline: Option<Deadline>,
    ) -> Result<StatusResponse> {
        let api = &self.api;
        self.caller
            .read(request_id, deadline, move || {
                api.get_status().request_id(request_id).send()
            })
            .await
    }

    /// `GET /v2/requests/{id}`, on the configured origin.
    async fn read_result(
        &self,
        request_id: &str,
        deadline: Option<Deadline>,
    ) -> Result<ResultResponse> {
        let api = &self.api;
        self.caller
            .read(request_id, deadline, move || {
                api.get_result().request_id(request_id).send()
            })
            .await
    }
}
