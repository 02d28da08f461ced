//! The client's shared state and the requests it sends, each through the
//! one [`Transport`] and the API classifier. Handles ([`Job`](crate::Job),
//! [`Output`](crate::Output)) ask it through a few methods; none reads its
//! fields.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tryon_api::types::{ErrorBody, ResultResponse, StatusResponse};
use tryon_api::{ResponseValue, types};
use url::Url;

use crate::classify::{CallError, classify, payload_as_failed};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::limit::RateLimit;
use crate::output::Downloader;
use crate::poll::{PollPolicy, PollState};
use crate::reader::read_image;
use crate::transport::{Call, Deadline, Transport};

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

struct Inner {
    api: tryon_api::Client,
    upload: tryon_api::Client,
    transport: Arc<Transport>,
    downloader: Downloader,
    base_url: Url,
    upload_base_url: Url,
    poll: Arc<dyn PollPolicy>,
    upload_local_images: bool,
    wait_timeout: Duration,
}

/// What [`ClientBuilder::build`](crate::ClientBuilder::build) assembles a
/// client from.
pub(crate) struct Parts {
    pub(crate) api: tryon_api::Client,
    pub(crate) upload: tryon_api::Client,
    pub(crate) transport: Arc<Transport>,
    pub(crate) downloader: Downloader,
    pub(crate) base_url: Url,
    pub(crate) upload_base_url: Url,
    pub(crate) poll: Arc<dyn PollPolicy>,
    pub(crate) upload_local_images: bool,
    pub(crate) wait_timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Client")
            .field("base_url", &i.base_url.as_str())
            .field("upload_base_url", &i.upload_base_url.as_str())
            .field("api_key", &"[REDACTED]")
            .field("poll", &i.poll)
            .field("retry", i.transport.retry_policy())
            .field("clock", i.transport.clock())
            .field("upload_local_images", &i.upload_local_images)
            .field("max_download_bytes", &i.downloader.max_bytes())
            .field("wait_timeout", &i.wait_timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn assemble(p: Parts) -> Self {
        Self {
            inner: Arc::new(Inner {
                api: p.api,
                upload: p.upload,
                transport: p.transport,
                downloader: p.downloader,
                base_url: p.base_url,
                upload_base_url: p.upload_base_url,
                poll: p.poll,
                upload_local_images: p.upload_local_images,
                wait_timeout: p.wait_timeout,
            }),
        }
    }

    /// The API base URL this client sends its key to.
    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// The request budget the client keeps to now: the one configured with
    /// [`ClientBuilder::rate_limit`](crate::ClientBuilder::rate_limit), or
    /// the one learned from `429`s; `None` while no `429` has been seen and
    /// none was configured. Shared by every clone (a batch shows it on its
    /// progress line).
    pub fn rate_budget(&self) -> Option<RateLimit> {
        self.inner.transport.rate_budget()
    }

    /// Whether status reads now wait for the rate limiter.
    pub(crate) fn reads_bound(&self) -> bool {
        self.inner.transport.reads_bound()
    }

    /// The clock every wait of this client runs on.
    pub(crate) fn clock(&self) -> &SharedClock {
        self.inner.transport.clock()
    }

    /// The next poll's delay, by the client's poll policy.
    pub(crate) fn next_poll_delay(&self, state: &PollState) -> Duration {
        self.inner.poll.next_delay(state)
    }

    /// How long [`Job::wait`](crate::Job::wait) waits by default.
    pub(crate) fn wait_timeout(&self) -> Duration {
        self.inner.wait_timeout
    }

    /// The handle outputs download through.
    pub(crate) fn downloader(&self) -> Downloader {
        self.inner.downloader.clone()
    }

    /// Whether local images are stored through `upload-asset` first.
    pub(crate) fn uploads_local_images(&self) -> bool {
        self.inner.upload_local_images
    }

    /// The error of a wait that reached its deadline.
    pub(crate) fn timeout(&self, request_id: &str, deadline: Deadline) -> Error {
        self.inner.transport.timeout(request_id, deadline)
    }

    /// `POST /v2/p-image-try-on`. An unreadable `200` body comes back as
    /// [`CallError::Payload`] so the caller can salvage a billed id.
    pub(crate) async fn send_submit(
        &self,
        body: &types::TryOnInput,
    ) -> std::result::Result<types::SubmitResponse, CallError> {
        self.call(Call::Submit, move || async move {
            self.inner
                .api
                .submit_try_on()
                .body(body.clone())
                .send()
                .await
        })
        .await
        .map(ResponseValue::into_inner)
    }

    /// `POST /v1/p-image-try-on`, and its image read by the one capped
    /// image reader. The job is billed once the answer is `200`, so an
    /// image cut short is an [`Error::AmbiguousSubmit`], never retried.
    pub(crate) async fn send_run_sync(&self, body: &types::TryOnInput) -> Result<Bytes> {
        let rv = self
            .call(Call::Submit, move || async move {
                self.inner
                    .api
                    .run_try_on_sync()
                    .body(body.clone())
                    .send()
                    .await
            })
            .await
            .map_err(CallError::into_error)?;
        let headers = rv.headers().clone();
        let max = self.inner.downloader.max_bytes();
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
    pub(crate) async fn upload_assets(&self, data_urls: Vec<String>) -> Result<Vec<String>> {
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
        let rv = self
            .call(Call::Upload, || async {
                self.inner
                    .upload
                    .upload_asset()
                    .body(body.clone())
                    .send()
                    .await
            })
            .await
            .map_err(CallError::into_error)?;
        let urls = rv.into_inner().file_urls;
        for u in &urls {
            let ok = Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(Error::InvalidResponse {
                    request_id: None,
                    problem: format!("upload-asset returned a URL that is not http(s): {u:?}"),
                });
            }
        }
        Ok(urls)
    }

    /// `GET /v2/requests/{id}/status`, on the configured origin.
    pub(crate) async fn read_status(
        &self,
        request_id: &str,
        deadline: Option<Deadline>,
    ) -> Result<StatusResponse> {
        let api = &self.inner.api;
        self.read(request_id, deadline, move || {
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
        let api = &self.inner.api;
        self.read(request_id, deadline, move || {
            api.get_result().request_id(request_id).send()
        })
        .await
    }

    /// A read of one job: a body whose `status` is `FAILED` is a failure
    /// whatever its shape.
    async fn read<T, F, Fut>(
        &self,
        request_id: &str,
        deadline: Option<Deadline>,
        send: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<ResponseValue<T>, tryon_api::Error<ErrorBody>>>,
    {
        let call = Call::Read {
            request_id,
            deadline,
        };
        self.call(call, send)
            .await
            .map(ResponseValue::into_inner)
            .or_else(|e| payload_as_failed(e, request_id))
    }

    /// One API call through the executor, classified by the API classifier.
    async fn call<T, F, Fut>(
        &self,
        call: Call<'_>,
        mut send: F,
    ) -> std::result::Result<ResponseValue<T>, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<ResponseValue<T>, tryon_api::Error<ErrorBody>>>,
    {
        let transport = &*self.inner.transport;
        transport
            .execute(call, || {
                let answer = send();
                async move {
                    match answer.await {
                        Ok(v) => Ok(v),
                        Err(e) => Err(classify(e, call, transport).await),
                    }
                }
            })
            .await
    }
}
