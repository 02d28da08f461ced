//! The narrow [`JobReader`] a job asks, one per client and shared by all
//! of its jobs: its status and result reads, which URL a wait polls (and
//! the fallback when the result URL does not answer a status), the poll
//! policy, the speed it has learned, the default wait and the downloader.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tryon_api::types::{JobStatus, ResultResponse, StatusResponse};

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::output::{Downloader, Output};
use crate::poll::{Phase, PollPolicy, PollState};
use crate::retry::{ApiCaller, Deadline};
use crate::speed::ServiceSpeed;

/// One poll's answer, whichever URL gave it.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Not final yet.
    Waiting(Phase),
    /// Done; with the result when the poll read the result URL.
    Completed {
        /// The full result (the result URL answered), or `None` (the
        /// status URL did: the result is one more call).
        result: Option<ResultResponse>,
        /// `metrics.inference_time` as sent.
        inference_time: Option<f64>,
    },
    /// Failed, with the server's detail.
    Failed {
        /// What the server said.
        detail: String,
    },
}

impl Answer {
    fn of_status(s: StatusResponse) -> Self {
        match s.status {
            JobStatus::Queued => Answer::Waiting(Phase::Queued),
            JobStatus::Processing => Answer::Waiting(Phase::Processing),
            JobStatus::Completed => Answer::Completed {
                result: None,
                inference_time: s.metrics.and_then(|m| m.inference_time),
            },
            JobStatus::Failed => Answer::Failed {
                detail: s.error.unwrap_or_else(|| "no detail given".into()),
            },
        }
    }

    fn of_result(r: ResultResponse) -> Self {
        match r.status {
            JobStatus::Queued => Answer::Waiting(Phase::Queued),
            JobStatus::Processing => Answer::Waiting(Phase::Processing),
            JobStatus::Completed => Answer::Completed {
                inference_time: r.metrics.as_ref().and_then(|m| m.inference_time),
                result: Some(r),
            },
            JobStatus::Failed => Answer::Failed {
                detail: r.error.unwrap_or_else(|| "no detail given".into()),
            },
        }
    }

    /// A read's outcome as an answer: a `422` is the job's failure.
    fn of_read<T>(read: Result<T>, of: fn(T) -> Self) -> Result<Self> {
        match read {
            Ok(v) => Ok(of(v)),
            Err(Error::Failed { detail, .. }) => Ok(Answer::Failed { detail }),
            Err(e) => Err(e),
        }
    }
}

/// Whether a result read's error is the result URL answering some other
/// way than a status before completion (contract: assumed to answer `200`
/// with the current status): a `404` (which may not be expiry), another
/// `2xx`, a body without a status, or a `4xx` that says nothing of the
/// account or the job. Errors of the account (`401`, `403`, `406`), a
/// `FAILED` job, and calls that failed (a `5xx`, `429`, no answer, a
/// deadline) are not.
fn answers_otherwise(e: &Error) -> bool {
    match e {
        Error::Expired { .. } | Error::InvalidResponse { .. } | Error::NotReady { .. } => true,
        Error::Api { status, .. } => {
            (300..500).contains(status) && !matches!(status, 401 | 403 | 406 | 408 | 422 | 429)
        }
        _ => false,
    }
}

/// What a [`Job`](super::Job) asks. One per client, shared by all of its
/// jobs.
pub(crate) struct JobReader {
    api: tryon_api::Client,
    caller: Arc<ApiCaller>,
    poll: Arc<dyn PollPolicy>,
    wait_timeout: Duration,
    downloader: Downloader,
    speed: ServiceSpeed,
    /// Set once the result URL has answered otherwise than a status
    /// before completion: waits of this client poll the status URL from
    /// then on.
    status_polling: AtomicBool,
}

impl std::fmt::Debug for JobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobReader")
            .field("poll", &self.poll)
            .field("wait_timeout", &self.wait_timeout)
            .field("status_polling", &self.status_polling)
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
            speed: ServiceSpeed::default(),
            status_polling: AtomicBool::new(false),
        }
    }

    /// The poll policy.
    pub(crate) fn poll_policy(&self) -> &Arc<dyn PollPolicy> {
        &self.poll
    }

    /// How long [`Job::wait`](super::Job::wait) waits by default.
    pub(crate) fn wait_timeout(&self) -> Duration {
        self.wait_timeout
    }

    /// What the client has learned of the service's speed.
    pub(crate) fn speed(&self) -> &ServiceSpeed {
        &self.speed
    }

    /// Whether waits poll the status URL (the result URL answered
    /// otherwise before completion).
    pub(crate) fn polls_status(&self) -> bool {
        self.status_polling.load(Ordering::Relaxed)
    }

    pub(crate) fn clock(&self) -> &SharedClock {
        self.caller.executor().clock()
    }

    /// The next poll's delay, by the client's poll policy.
    pub(crate) fn next_poll_delay(&self, state: &PollState) -> Duration {
        self.poll.next_delay(state)
    }

    /// Whether reads now wait for the rate limiter.
    pub(crate) fn reads_bound(&self) -> bool {
        self.caller.executor().reads_bound()
    }

    /// The error of a wait that reached its deadline.
    pub(crate) fn timeout(&self, request_id: &str, deadline: Deadline) -> Error {
        self.caller.executor().timeout(request_id, deadline)
    }

    /// An output at `url` (a history record's `generation_url`), fetched
    /// as every output is: without the key, capped, checked.
    pub(crate) fn output_at(
        &self,
        request_id: &str,
        url: &str,
        inference_time: Option<Duration>,
    ) -> Result<Output> {
        Output::new(
            self.downloader.clone(),
            request_id.to_string(),
            url,
            inference_time,
        )
    }

    /// The output of a completed result.
    pub(crate) fn output(&self, request_id: &str, r: ResultResponse) -> Result<Output> {
        let url =
            r.output
                .filter(|o| !o.trim().is_empty())
                .ok_or_else(|| Error::InvalidResponse {
                    request_id: Some(request_id.to_string()),
                    problem: "COMPLETED result without an output URL".into(),
                })?;
        let inference_time = r
            .metrics
            .and_then(|m| m.inference_time)
            .and_then(|t| Duration::try_from_secs_f64(t).ok());
        tracing::info!(?inference_time, "completed");
        Output::new(
            self.downloader.clone(),
            request_id.to_string(),
            &url,
            inference_time,
        )
    }

    /// One poll of a wait: the result URL (one call when the job is done),
    /// or the status URL once this client fell back to it. A result URL
    /// that answers otherwise than a status (see `answers_otherwise`) is
    /// never read as expiry nor as a failure of the job: the status URL is
    /// asked once, its answer is this poll's, and the client polls the
    /// status URL from then on (said once, at `info`).
    pub(crate) async fn poll(&self, request_id: &str, deadline: Deadline) -> Result<Answer> {
        if self.polls_status() {
            let read = self.read_status(request_id, Some(deadline)).await;
            return Answer::of_read(read, Answer::of_status);
        }
        match self.read_result(request_id, Some(deadline)).await {
            Err(e) if answers_otherwise(&e) => {
                let answer = Answer::of_read(
                    self.read_status(request_id, Some(deadline)).await,
                    Answer::of_status,
                )?;
                self.fall_back(&e);
                Ok(answer)
            }
            read => Answer::of_read(read, Answer::of_result),
        }
    }

    /// One read of the result, for [`Job::result`](super::Job::result).
    /// A result URL that answers otherwise before completion is checked
    /// with one status read as a poll is: a job still waiting is
    /// [`Error::NotReady`], a failed one [`Error::Failed`].
    pub(crate) async fn result_once(&self, request_id: &str) -> Result<ResultResponse> {
        let e = match self.read_result(request_id, None).await {
            Err(e) if answers_otherwise(&e) => e,
            read => return read,
        };
        let not_ready = |status: &str| Error::NotReady {
            request_id: request_id.to_string(),
            status: status.to_string(),
        };
        match Answer::of_read(self.read_status(request_id, None).await, Answer::of_status)? {
            Answer::Waiting(phase) => {
                self.fall_back(&e);
                Err(not_ready(match phase {
                    Phase::Queued => "QUEUED",
                    Phase::Processing => "PROCESSING",
                }))
            }
            Answer::Failed { detail } => Err(Error::Failed {
                request_id: request_id.to_string(),
                detail,
            }),
            Answer::Completed { .. } => Err(e),
        }
    }

    /// From now on this client's waits poll the status URL; said once.
    fn fall_back(&self, why: &Error) {
        if !self.status_polling.swap(true, Ordering::Relaxed) {
            tracing::info!(
                answer = %why,
                "the result URL did not answer the job's status before completion; \
                 polling the status URL from now on (a job then costs one more call)"
            );
        }
    }

    /// `GET /v2/requests/{id}/status`, on the configured origin.
    pub(crate) async fn read_status(
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
    pub(crate) async fn read_result(
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
