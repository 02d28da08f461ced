//! The [`Client`] handle: its shared state ([`Inner`], made by
//! [`ClientBuilder::build`](crate::ClientBuilder::build)), the public
//! operations, and the keyed calls they send (submit, v1 run, upload). A
//! job's reads are its [`JobReader`]'s.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use tracing::Instrument as _;
use tryon_api::{ResponseValue, types};
use url::Url;

use crate::error::{Error, Result};
use crate::job::{Job, JobReader, Known};
use crate::order::tail_longest_first;
use crate::output::Output;
use crate::poll::Origin;
use crate::reader::read_image;
use crate::request::TryOnRequest;
use crate::retry::{ApiCaller, Call, CallError, RateLimit, salvage_request_id};

/// A client for Segmind's P-Image Try-On API.
///
/// Cheap to clone (an `Arc` inside); clones share connections, the retry
/// budget and the rate limiter.
///
/// Runs here against a local `tryon-mock` server (started in hidden lines;
/// a program would call [`Client::from_env`] and talk to Segmind):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = tryon_mock::MockServer::start().await;
/// # let dir = tempfile::tempdir()?;
/// # let person_path = dir.path().join("person.png");
/// # std::fs::write(&person_path, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\xdac\xfc\xcf\xc0\x50\x0f\0\x04\x85\x01\x80\x84\xa9\x8c!\0\0\0\0IEND\xaeB`\x82")?;
/// # let out_path = dir.path().join("out.png");
/// # let (person_path, out_path) = (person_path.as_path(), out_path.as_path());
/// use tryon_client::{Client, Image, TryOnRequest};
/// let req = TryOnRequest::builder()
///     .person(Image::file(person_path))
///     .garment(Image::url("https://example.com/shirt.jpg"))
///     .build()?;
/// // In a program: `Client::from_env()?` (reads SEGMIND_API_KEY).
/// let client = Client::builder()
///     .api_key("sk-test")
///     .base_url(server.uri())
///     .build()?;
/// client.run(&req).await?.save(out_path).await?;
/// # assert!(std::fs::read(out_path)?.starts_with(b"\x89PNG"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// What every clone of a [`Client`] shares.
pub(crate) struct Inner {
    /// The API host, with the key.
    pub(crate) api: tryon_api::Client,
    /// The storage host (`upload-asset`), with the key.
    pub(crate) upload: tryon_api::Client,
    /// The request history host, with the key.
    pub(crate) history: tryon_api::Client,
    /// Every keyed call goes through it.
    pub(crate) caller: Arc<ApiCaller>,
    /// What the client's jobs ask.
    pub(crate) jobs: Arc<JobReader>,
    pub(crate) base_url: Url,
    pub(crate) upload_base_url: Url,
    pub(crate) history_base_url: Url,
    pub(crate) upload_local_images: bool,
    /// The cap on the v1 run's image, as on every download.
    pub(crate) max_download_bytes: u64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let executor = i.caller.executor();
        f.debug_struct("Client")
            .field("base_url", &i.base_url.as_str())
            .field("upload_base_url", &i.upload_base_url.as_str())
            .field("history_base_url", &i.history_base_url.as_str())
            .field("api_key", &"[REDACTED]")
            .field("poll", i.jobs.poll_policy())
            .field("retry", executor.policy())
            .field("clock", executor.clock())
            .field("upload_local_images", &i.upload_local_images)
            .field("max_download_bytes", &i.max_download_bytes)
            .field("wait_timeout", &i.jobs.wait_timeout())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The handle on a client's shared state (the builder makes it).
    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The shared state, for the operations written in other modules
    /// (the account's reads).
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The API base URL this client sends its key to.
    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// The request history base URL this client sends its key to (see
    /// [`ClientBuilder::history_base_url`](crate::ClientBuilder::history_base_url)).
    pub fn history_base_url(&self) -> &Url {
        &self.inner.history_base_url
    }

    /// The request budget the client keeps to now: the one configured with
    /// [`ClientBuilder::rate_limit`](crate::ClientBuilder::rate_limit), or
    /// the one learned from `429`s; `None` while no `429` has been seen and
    /// none was configured. Shared by every clone (a batch shows it on its
    /// progress line).
    pub fn rate_budget(&self) -> Option<RateLimit> {
        self.inner.caller.executor().rate_budget()
    }

    /// Joins the client's shared budget now
    /// ([`ClientBuilder::shared_budget`](crate::ClientBuilder::shared_budget)),
    /// instead of at the first API call: registers with the store and
    /// reads the budget. Does nothing without a shared budget.
    ///
    /// # Errors
    /// [`Error::Config`] naming `shared_budget`, the URL (without its
    /// password) and why: the store cannot be reached, or what is stored
    /// under the budget's name is not a budget this client can trust.
    pub async fn join_shared_budget(&self) -> Result<()> {
        self.inner.caller.executor().join_shared_budget().await
    }

    /// How many clients share this client's budget (this one included), as
    /// the store said at the last call; `None` without a shared budget, or
    /// before the first answer. A sharer counts for 30 s after its last
    /// call.
    pub fn shared_budget_sharers(&self) -> Option<u32> {
        self.inner.caller.executor().shared_budget_sharers()
    }

    /// Submits the job, waits for it (up to the client's wait timeout) and
    /// reads its result.
    pub async fn run(&self, request: &TryOnRequest) -> Result<Output> {
        let job = self.submit(request).await?;
        job.wait().await
    }

    /// Submits the job and returns at once with its handle.
    ///
    /// Every image input is read and checked first, exactly as
    /// [`TryOnRequest::preflight`] does, so a bad input is refused before
    /// anything is sent. Retried only when the server provably did not
    /// take it (the rules are on [`RetryPolicy`](crate::RetryPolicy)); an
    /// unknown outcome is [`Error::AmbiguousSubmit`] and is never retried.
    pub async fn submit(&self, request: &TryOnRequest) -> Result<Job> {
        let span = tracing::info_span!(
            "tryon.submit",
            garments = request.garment_count(),
            turbo = request.turbo(),
            request_id = tracing::field::Empty,
        );
        async {
            let body = self.wire_body(request).await?;
            let request_id = match self.send_submit(&body).await {
                Ok(answer) => answer.request_id,
                Err(CallError::Payload(raw)) => salvage_request_id(&raw)?,
                Err(CallError::Error(e)) => return Err(e),
            };
            if request_id.trim().is_empty() {
                return Err(Error::InvalidResponse {
                    request_id: None,
                    problem: "submit answered 200 with an empty request_id (the job may be billed)"
                        .into(),
                });
            }
            tracing::Span::current().record("request_id", request_id.as_str());
            tracing::info!(request_id = %request_id, "submitted");
            let known = Known {
                expected: Some(request.expected_duration()),
                garments: u32::try_from(request.garment_count()).unwrap_or(u32::MAX),
                turbo: request.turbo(),
            };
            Ok(Job::new(
                self.inner.jobs.clone(),
                request_id,
                known,
                Origin::Submitted,
            ))
        }
        .instrument(span)
        .await
    }

    /// Re-attaches to a job by id (after a restart, or from another
    /// process). Nothing is sent until the handle is used. Its expected
    /// time is unknown, so polling starts quick and slows down; set it with
    /// [`Job::with_expected_duration`] when known.
    pub fn job(&self, request_id: impl Into<String>) -> Job {
        let known = Known {
            expected: None,
            garments: 0,
            turbo: false,
        };
        Job::new(
            self.inner.jobs.clone(),
            request_id.into(),
            known,
            Origin::Reattached,
        )
    }

    /// What this client has learned of the service's speed from the jobs
    /// it waited for (shared by every clone; the rule is on
    /// [`SpeedEstimate`](crate::poll::SpeedEstimate)).
    pub fn speed_estimate(&self) -> crate::poll::SpeedEstimate {
        self.inner.jobs.speed().snapshot()
    }

    /// Whether this client's waits poll the status URL: set once the result
    /// URL answered otherwise than a status before completion (see
    /// [`Job`]); a job then costs one more call.
    pub fn polls_status_url(&self) -> bool {
        self.inner.jobs.polls_status()
    }

    /// Runs the job on the synchronous v1 endpoint and returns the image
    /// bytes. Same input checks and retry rules as
    /// [`submit`](Self::submit); the answer goes through the same reader as
    /// [`Output::download`] (size cap, content type, magic bytes, whole
    /// image). The v1 answer carries no `request_id`, so an image lost after
    /// the `200` (billed) is [`Error::AmbiguousSubmit`], never retried.
    pub async fn run_sync(&self, request: &TryOnRequest) -> Result<Bytes> {
        let span = tracing::info_span!("tryon.run_sync", garments = request.garment_count());
        async {
            let body = self.wire_body(request).await?;
            self.send_run_sync(&body).await
        }
        .instrument(span)
        .await
    }

    /// Runs many jobs with at most `concurrency` in flight, yielding each
    /// `(index, result)` as it finishes (not in input order; `index` is the
    /// request's place in the input).
    ///
    /// Jobs start in input order, except the last `concurrency` of an input
    /// whose length is known (an exact size hint, as a `Vec` or a range
    /// has): those start longest expected duration first, so the run does
    /// not end waiting on a long job started last.
    ///
    /// All jobs share the client's retry budget and rate limiter (see
    /// [`RetryPolicy`](crate::RetryPolicy)), so a `429` seen by one slows
    /// the others. `concurrency` 0 is taken as 1.
    pub fn run_many<I>(
        &self,
        requests: I,
        concurrency: usize,
    ) -> impl Stream<Item = (usize, Result<Output>)> + Send + 'static
    where
        I: IntoIterator<Item = TryOnRequest>,
        I::IntoIter: Send + 'static,
    {
        let client = self.clone();
        let concurrency = concurrency.max(1);
        futures::stream::iter(tail_longest_first(
            requests,
            concurrency,
            TryOnRequest::expected_duration,
        ))
        .map(move |(i, req)| {
            let client = client.clone();
            async move { (i, client.run(&req).await) }
        })
        .buffer_unordered(concurrency)
    }

    /// Builds the wire body, uploading local images when configured.
    async fn wire_body(&self, request: &TryOnRequest) -> Result<types::TryOnInput> {
        if self.inner.upload_local_images {
            request
                .to_wire(Some(|data: Vec<String>| self.upload_assets(data)))
                .await
        } else {
            request
                .to_wire(None::<fn(Vec<String>) -> std::future::Ready<Result<Vec<String>>>>)
                .await
        }
    }

    /// `POST /v2/p-image-try-on`. An unreadable `200` body comes back as
    /// [`CallError::Payload`] so the caller can salvage a billed id.
    async fn send_submit(
        &self,
        body: &types::TryOnInput,
    ) -> std::result::Result<types::SubmitResponse, CallError> {
        let api = &self.inner.api;
        self.inner
            .caller
            .call(Call::Submit, move || async move {
                api.submit_try_on().body(body.clone()).send().await
            })
            .await
            .map(ResponseValue::into_inner)
    }

    /// `POST /v1/p-image-try-on`, and its image read by the one capped
    /// image reader. The job is billed once the answer is `200`, so an
    /// image cut short is an [`Error::AmbiguousSubmit`], never retried.
    async fn send_run_sync(&self, body: &types::TryOnInput) -> Result<Bytes> {
        let api = &self.inner.api;
        let rv = self
            .inner
            .caller
            .call(Call::Submit, move || async move {
                api.run_try_on_sync().body(body.clone()).send().await
            })
            .await
            .map_err(CallError::into_error)?;
        let headers = rv.headers().clone();
        let max = self.inner.max_download_bytes;
        read_image(&headers, rv.into_inner_stream(), max)
            .await
            .map_err(|fault| {
                let problem = fault.problem();
                if fault.is_cut_short() {
                    Error::AmbiguousSubmit {
                        detail: format!(
                            "the v1 run answered 200 (billed) but its image was lost: {problem}"
                        ),
                        source: None,
                    }
                } else {
                    Error::InvalidResponse {
                        request_id: None,
                        problem: format!("v1 answer: {problem}"),
                    }
                }
            })
    }

    /// Stores `data:` URIs through the storage host.
    async fn upload_assets(&self, data_urls: Vec<String>) -> Result<Vec<String>> {
        // The client's own base64 is canonical; the spec's pattern is
        // checked here all the same, by the generated type.
        let data_urls = data_urls
            .into_iter()
            .enumerate()
            .map(|(i, uri)| {
                types::UploadAssetRequestDataUrlsItem::try_from(uri)
                    .map_err(|e| Error::invalid(format!("data_urls[{i}]"), e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let body = types::UploadAssetRequest { data_urls };
        let upload = &self.inner.upload;
        let rv = self
            .inner
            .caller
            .call(Call::Upload, || async {
                upload.upload_asset().body(body.clone()).send().await
            })
            .await
            .map_err(CallError::into_error)?;
        let urls = rv.into_inner().file_urls;
        for u in &urls {
            let ok = Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(Error::InvalidResponse {
                    request_id: None,
                    problem: format!(
                        "upload-asset returned a URL that is not http(s): {:?}",
                        tryon_api::redact::Secrets::default().redact(u)
                    ),
                });
            }
        }
        Ok(urls)
    }
}
