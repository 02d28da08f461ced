//! The client, its configuration and the calls it makes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret as _, SecretString};
use tracing::Instrument as _;
use tryon_api::types::{ErrorBody, ResultResponse, StatusResponse};
use tryon_api::{ResponseValue, types};
use url::Url;

use crate::clock::{Clock, SharedClock, TokioClock};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::limit::{Limiter, wait_turn};
use crate::output::Output;
use crate::poll::{ModelAwarePolling, PollPolicy};
use crate::request::TryOnRequest;
use crate::retry::{RetryBudget, RetryPolicy, parse_retry_after};

/// The environment variable [`Client::from_env`] reads the key from.
pub const API_KEY_ENV: &str = "SEGMIND_API_KEY";
/// The environment variable [`Client::from_env`] reads an optional API base
/// URL from (to point at a mock or a proxy).
pub const BASE_URL_ENV: &str = "SEGMIND_BASE_URL";
/// The environment variable [`Client::from_env`] reads an optional storage
/// (upload-asset) base URL from.
pub const UPLOAD_URL_ENV: &str = "SEGMIND_UPLOAD_URL";
/// Segmind's inference API.
pub const DEFAULT_BASE_URL: &str = "https://api.segmind.com";
/// Segmind's asset storage host, which serves `POST /upload-asset`.
pub const DEFAULT_UPLOAD_BASE_URL: &str = "https://workflows-api.segmind.com";
/// Default cap on a downloaded output: 50 MiB.
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 50 * 1024 * 1024;

const API_KEY_HEADER: &str = "x-api-key";
/// Most bytes of an error body kept in an [`Error`].
const MAX_ERROR_BODY: usize = 4096;

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
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    api: tryon_api::Client,
    upload: tryon_api::Client,
    pub(crate) download: reqwest::Client,
    api_key: SecretString,
    base_url: Url,
    upload_base_url: Url,
    pub(crate) poll: Arc<dyn PollPolicy>,
    pub(crate) retry: RetryPolicy,
    budget: RetryBudget,
    limiter: Limiter,
    pub(crate) clock: SharedClock,
    upload_local_images: bool,
    pub(crate) max_download_bytes: u64,
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
            .field("retry", &i.retry)
            .field("clock", &i.clock)
            .field("upload_local_images", &i.upload_local_images)
            .field("max_download_bytes", &i.max_download_bytes)
            .field("wait_timeout", &i.wait_timeout)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Client`]. Every setting has a documented default.
pub struct ClientBuilder {
    api_key: Option<SecretString>,
    base_url: String,
    upload_base_url: String,
    user_agent: String,
    request_timeout: Duration,
    connect_timeout: Duration,
    poll: Arc<dyn PollPolicy>,
    retry: RetryPolicy,
    http: Option<reqwest::ClientBuilder>,
    download: Option<reqwest::Client>,
    clock: Option<SharedClock>,
    upload_local_images: bool,
    max_download_bytes: u64,
    wait_timeout: Duration,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("base_url", &self.base_url)
            .field("upload_base_url", &self.upload_base_url)
            .field("user_agent", &self.user_agent)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            api_key: None,
            base_url: DEFAULT_BASE_URL.to_string(),
            upload_base_url: DEFAULT_UPLOAD_BASE_URL.to_string(),
            user_agent: format!("tryon-client/{} (rust)", env!("CARGO_PKG_VERSION")),
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            poll: Arc::new(ModelAwarePolling::default()),
            retry: RetryPolicy::default(),
            http: None,
            download: None,
            clock: None,
            upload_local_images: false,
            max_download_bytes: DEFAULT_MAX_DOWNLOAD_BYTES,
            wait_timeout: Duration::from_secs(600),
        }
    }
}

impl ClientBuilder {
    /// The API key (required). Accepts `&str`, `String` or a
    /// [`SecretString`]; it is kept as a `SecretString`, never printed, and
    /// sent only to the API and storage base URLs.
    #[must_use]
    pub fn api_key(mut self, key: impl Into<SecretString>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The API's base URL. Default [`DEFAULT_BASE_URL`]. Must be `https`,
    /// except for loopback hosts (`127.0.0.1`, `[::1]`, `localhost`), so a
    /// local mock works and the key never crosses a network in clear text.
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The storage host's base URL, where `POST /upload-asset` goes when
    /// [`upload_local_images`](Self::upload_local_images) is on. Default
    /// [`DEFAULT_UPLOAD_BASE_URL`] (Segmind's own storage host). The API key
    /// is sent there too, because Segmind's storage needs it: set this only
    /// to a host you trust with the key. Same `https` rule as `base_url`.
    #[must_use]
    pub fn upload_base_url(mut self, url: impl Into<String>) -> Self {
        self.upload_base_url = url.into();
        self
    }

    /// The `User-Agent`. Default `tryon-client/<version> (rust)`.
    #[must_use]
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// Timeout of one HTTP call (not of a whole wait). Default 120 s, long
    /// enough for [`Client::run_sync`] on eleven garments.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Connect timeout. Default 10 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How status polls are spaced. Default [`ModelAwarePolling`].
    #[must_use]
    pub fn poll_policy(mut self, policy: impl PollPolicy) -> Self {
        self.poll = Arc::new(policy);
        self
    }

    /// How failed calls are retried. Default [`RetryPolicy::default`].
    #[must_use]
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How long [`Client::run`] and [`Job::wait`] wait at most. Default
    /// 600 s (as the official SDK). [`Job::wait_with`] takes its own.
    #[must_use]
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// An existing reqwest configuration (proxies, TLS roots, pool
    /// settings) for the API and storage calls.
    ///
    /// It is a `ClientBuilder`, not a built `reqwest::Client`, because the
    /// key must be set as a *sensitive default header* of the client that
    /// talks to the API, and a built client cannot take default headers.
    /// This builder also sets the user agent, timeouts and a redirect policy
    /// that never follows a redirect to another origin (a custom header like
    /// `x-api-key` would otherwise be forwarded).
    #[must_use]
    pub fn http_client_builder(mut self, builder: reqwest::ClientBuilder) -> Self {
        self.http = Some(builder);
        self
    }

    /// An existing `reqwest::Client` for output downloads. It never
    /// receives the key, so any client will do. Default: a plain client with
    /// this builder's user agent and timeouts.
    #[must_use]
    pub fn download_client(mut self, client: reqwest::Client) -> Self {
        self.download = Some(client);
        self
    }

    /// The clock and sleeper. Default [`TokioClock`]. Tests pass a virtual
    /// clock (see [`crate::clock`]).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Store local images (files, bytes) through Segmind's `upload-asset`
    /// and send their URLs, instead of inlining them as `data:` URIs.
    /// Default `false`. Uploaded URLs can be reused across jobs.
    #[must_use]
    pub fn upload_local_images(mut self, upload: bool) -> Self {
        self.upload_local_images = upload;
        self
    }

    /// Largest output [`Output::download`] accepts. Default 50 MiB.
    #[must_use]
    pub fn max_download_bytes(mut self, max: u64) -> Self {
        self.max_download_bytes = max;
        self
    }

    /// Builds the client, checking the key and both base URLs.
    pub fn build(self) -> Result<Client> {
        let api_key = self.api_key.ok_or_else(|| {
            Error::config(
                "api_key",
                format!("required: pass one, or set {API_KEY_ENV} and use Client::from_env()"),
            )
        })?;
        if api_key.expose_secret().trim().is_empty() {
            return Err(Error::config("api_key", "is empty"));
        }
        let base_url = checked_base_url("base_url", &self.base_url)?;
        let upload_base_url = checked_base_url("upload_base_url", &self.upload_base_url)?;

        let mut key_value = HeaderValue::from_str(api_key.expose_secret()).map_err(|_| {
            Error::config(
                "api_key",
                "contains characters not allowed in an HTTP header",
            )
        })?;
        key_value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static(API_KEY_HEADER), key_value);

        let keyed = self
            .http
            .unwrap_or_default()
            .default_headers(headers)
            .user_agent(self.user_agent.clone())
            .timeout(self.request_timeout)
            .connect_timeout(self.connect_timeout)
            .redirect(same_origin_redirects())
            .build()
            .map_err(|e| Error::config("http_client_builder", e.to_string()))?;
        let download = match self.download {
            Some(c) => c,
            None => reqwest::Client::builder()
                .user_agent(self.user_agent)
                .timeout(self.request_timeout)
                .connect_timeout(self.connect_timeout)
                .build()
                .map_err(|e| Error::config("download_client", e.to_string()))?,
        };
        let api = tryon_api::Client::new_with_client(trimmed(&base_url), keyed.clone());
        let upload = tryon_api::Client::new_with_client(trimmed(&upload_base_url), keyed);
        Ok(Client {
            inner: Arc::new(Inner {
                api,
                upload,
                download,
                api_key,
                base_url,
                upload_base_url,
                poll: self.poll,
                budget: RetryBudget::new(self.retry.budget),
                retry: self.retry,
                limiter: Limiter::default(),
                clock: self.clock.unwrap_or_else(|| Arc::new(TokioClock::new())),
                upload_local_images: self.upload_local_images,
                max_download_bytes: self.max_download_bytes,
                wait_timeout: self.wait_timeout,
            }),
        })
    }
}

fn trimmed(url: &Url) -> &str {
    url.as_str().trim_end_matches('/')
}

fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if !same {
            attempt.stop()
        } else if attempt.previous().len() > 5 {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

/// Parses a base URL and enforces `https` except on loopback.
fn checked_base_url(field: &'static str, raw: &str) -> Result<Url> {
    let url = Url::parse(raw.trim())
        .map_err(|e| Error::config(field, format!("{raw:?} is not a valid URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config(field, "must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::config(field, "must not have a query or fragment"));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(Error::config(
            field,
            format!("{raw:?} uses plain http; https is required except for loopback hosts"),
        )),
        other => Err(Error::config(
            field,
            format!("scheme {other:?} not allowed, use https"),
        )),
    }
}

/// What kind of call is being made: decides what may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// A read: retried on transport errors, 429, 500, 502, 503, 504.
    Read,
    /// A billed `POST`: retried only when provably not taken.
    Submit,
    /// The storage upload: retried like a read (a duplicate upload costs
    /// nothing but storage).
    Upload,
}

/// Per-call context.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallCtx<'a> {
    pub(crate) kind: CallKind,
    pub(crate) request_id: Option<&'a str>,
    /// Clock time after which no sleep may end, and when the wait began.
    pub(crate) deadline: Option<(Duration, Duration)>,
}

enum Verdict {
    Retry {
        error: Error,
        retry_after: Option<Duration>,
        throttled: bool,
    },
    Fatal(Error),
}

impl Client {
    /// A client configured from the environment: the key from
    /// `SEGMIND_API_KEY` (required), and, when set, the base URLs from
    /// `SEGMIND_BASE_URL` and `SEGMIND_UPLOAD_URL`. Everything else default.
    pub fn from_env() -> Result<Client> {
        Self::builder_from_env()?.build()
    }

    /// Like [`from_env`](Self::from_env), but returns the builder to adjust.
    pub fn builder_from_env() -> Result<ClientBuilder> {
        let key = std::env::var(API_KEY_ENV)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .ok_or(Error::MissingApiKey {
                variable: API_KEY_ENV,
            })?;
        let mut b = Self::builder().api_key(key);
        if let Some(url) = std::env::var(BASE_URL_ENV).ok().filter(|u| !u.is_empty()) {
            b = b.base_url(url);
        }
        if let Some(url) = std::env::var(UPLOAD_URL_ENV).ok().filter(|u| !u.is_empty()) {
            b = b.upload_base_url(url);
        }
        Ok(b)
    }

    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The API base URL this client sends its key to.
    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// Submits the job, waits for it (up to the client's wait timeout) and
    /// reads its result.
    pub async fn run(&self, request: &TryOnRequest) -> Result<Output> {
        let job = self.submit(request).await?;
        job.wait().await
    }

    /// Submits the job and returns at once with its handle.
    ///
    /// Retried only when the server provably did not take it (connect
    /// error, `429`, `503`); an unknown outcome is
    /// [`Error::AmbiguousSubmit`] and is never retried.
    pub async fn submit(&self, request: &TryOnRequest) -> Result<Job> {
        let span = tracing::info_span!(
            "tryon.submit",
            garments = request.garment_count(),
            turbo = request.turbo(),
            request_id = tracing::field::Empty,
        );
        async {
            let body = self.wire_body(request).await?;
            let ctx = CallCtx {
                kind: CallKind::Submit,
                request_id: None,
                deadline: None,
            };
            let submitted = self
                .call(ctx, || {
                    let body = body.clone();
                    async move { self.inner.api.submit_try_on().body(body).send().await }
                })
                .await;
            let request_id = match submitted {
                Ok(rv) => rv.into_inner().request_id,
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
            Ok(Job::new(
                self.clone(),
                request_id,
                Some(request.expected_duration()),
                true,
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
        Job::new(self.clone(), request_id.into(), None, false)
    }

    /// Runs the job on the synchronous v1 endpoint and returns the image
    /// bytes. Same retry rules as [`submit`](Self::submit); the answer is
    /// capped at the client's download limit and must be an image.
    pub async fn run_sync(&self, request: &TryOnRequest) -> Result<Bytes> {
        let span = tracing::info_span!("tryon.run_sync", garments = request.garment_count());
        async {
            let body = self.wire_body(request).await?;
            let ctx = CallCtx {
                kind: CallKind::Submit,
                request_id: None,
                deadline: None,
            };
            let rv = self
                .call(ctx, || {
                    let body = body.clone();
                    async move { self.inner.api.run_try_on_sync().body(body).send().await }
                })
                .await
                .map_err(CallError::into_error)?;
            let max = self.inner.max_download_bytes;
            let mut stream = rv.into_inner_stream();
            let mut buf = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| Error::AmbiguousSubmit {
                    detail: "the v1 run answered 200 (billed) but its image bytes were cut off"
                        .into(),
                    source: Some(e),
                })?;
                buf.extend_from_slice(&chunk);
                if buf.len() as u64 > max {
                    return Err(Error::InvalidResponse {
                        request_id: None,
                        problem: format!("v1 image larger than {max} bytes"),
                    });
                }
            }
            if crate::image::ImageKind::sniff(&buf).is_none() {
                return Err(Error::InvalidResponse {
                    request_id: None,
                    problem: "v1 answer is not a PNG, JPEG or WebP image".into(),
                });
            }
            Ok(Bytes::from(buf))
        }
        .instrument(span)
        .await
    }

    /// Runs many jobs with at most `concurrency` in flight, yielding each
    /// `(index, result)` as it finishes (not in input order).
    ///
    /// All jobs share the client's rate limiter: a `429` seen by any of
    /// them holds every one off for the server's `Retry-After` and slows the
    /// pace until calls succeed again. `concurrency` 0 is taken as 1.
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
        futures::stream::iter(requests.into_iter().enumerate())
            .map(move |(i, req)| {
                let client = client.clone();
                async move { (i, client.run(&req).await) }
            })
            .buffer_unordered(concurrency.max(1))
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

    /// Stores `data:` URIs through the storage host.
    pub(crate) async fn upload_assets(&self, data_urls: Vec<String>) -> Result<Vec<String>> {
        let ctx = CallCtx {
            kind: CallKind::Upload,
            request_id: None,
            deadline: None,
        };
        let body = types::UploadAssetRequest { data_urls };
        let rv = self
            .call(ctx, || {
                let body = body.clone();
                async move { self.inner.upload.upload_asset().body(body).send().await }
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
    pub(crate) async fn get_status(&self, ctx: CallCtx<'_>) -> Result<StatusResponse> {
        let id = ctx.request_id.unwrap_or_default().to_string();
        self.call(ctx, || {
            let id = id.clone();
            async move { self.inner.api.get_status().request_id(id).send().await }
        })
        .await
        .map(ResponseValue::into_inner)
        .or_else(|e| payload_as_failed(e, ctx.request_id))
    }

    /// `GET /v2/requests/{id}`, on the configured origin.
    pub(crate) async fn get_result(&self, ctx: CallCtx<'_>) -> Result<ResultResponse> {
        let id = ctx.request_id.unwrap_or_default().to_string();
        self.call(ctx, || {
            let id = id.clone();
            async move { self.inner.api.get_result().request_id(id).send().await }
        })
        .await
        .map(ResponseValue::into_inner)
        .or_else(|e| payload_as_failed(e, ctx.request_id))
    }

    /// One call with the limiter, retries and the error mapping.
    async fn call<T, F, Fut>(
        &self,
        ctx: CallCtx<'_>,
        mut send: F,
    ) -> std::result::Result<ResponseValue<T>, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<ResponseValue<T>, tryon_api::Error<ErrorBody>>>,
    {
        let inner = &self.inner;
        let mut attempt: u32 = 1;
        loop {
            if let Some((deadline, _)) = ctx.deadline {
                let wait = inner.limiter.reserve(inner.clock.now());
                if inner.clock.now() + wait > deadline {
                    return Err(CallError::Error(self.timeout_error(ctx)));
                }
                if !wait.is_zero() {
                    inner.clock.sleep(wait).await;
                }
            } else {
                wait_turn(&inner.limiter, &inner.clock).await;
            }
            let sent_at = inner.clock.now();
            let verdict = match send().await {
                Ok(v) => {
                    inner.limiter.succeeded();
                    inner.budget.refund(1);
                    return Ok(v);
                }
                Err(tryon_api::Error::InvalidResponsePayload(raw, err)) => {
                    return Err(CallError::Payload(RawPayload {
                        body: raw,
                        error: err.to_string(),
                    }));
                }
                Err(e) => self.classify(e, ctx).await,
            };
            let (error, retry_after, throttled) = match verdict {
                Verdict::Fatal(e) => return Err(CallError::Error(e)),
                Verdict::Retry {
                    error,
                    retry_after,
                    throttled,
                } => (error, retry_after, throttled),
            };
            if throttled {
                inner
                    .limiter
                    .throttled(inner.clock.now(), sent_at, retry_after);
            }
            if attempt >= inner.retry.max_attempts {
                tracing::warn!(attempt, error = %error, "giving up: retry attempts exhausted");
                return Err(CallError::Error(error));
            }
            if retry_after.is_some_and(|d| d > inner.retry.max_retry_after) {
                tracing::warn!(
                    ?retry_after,
                    "giving up: Retry-After longer than the policy allows"
                );
                return Err(CallError::Error(error));
            }
            if !inner.budget.withdraw(inner.retry.retry_cost) {
                tracing::warn!(error = %error, "giving up: client retry budget exhausted");
                return Err(CallError::Error(error));
            }
            let delay = retry_after.unwrap_or_else(|| inner.retry.backoff(attempt));
            if let Some((deadline, _)) = ctx.deadline
                && inner.clock.now() + delay > deadline
            {
                {
                    tracing::info!(?delay, "not retrying: the wait would pass the deadline");
                    return Err(CallError::Error(self.timeout_error(ctx)));
                }
            }
            tracing::info!(attempt, ?delay, error = %error, "retrying");
            inner.clock.sleep(delay).await;
            attempt += 1;
        }
    }

    fn timeout_error(&self, ctx: CallCtx<'_>) -> Error {
        let (_, started) = ctx.deadline.unwrap_or_default();
        Error::Timeout {
            request_id: ctx.request_id.unwrap_or_default().to_string(),
            elapsed: self.inner.clock.now().saturating_sub(started),
        }
    }

    /// Maps a generated-client error to ours, deciding whether to retry.
    async fn classify(&self, e: tryon_api::Error<ErrorBody>, ctx: CallCtx<'_>) -> Verdict {
        let rid = ctx.request_id.map(str::to_string);
        match e {
            tryon_api::Error::CommunicationError(source) => {
                if ctx.kind == CallKind::Submit && !source.is_connect() {
                    return Verdict::Fatal(Error::AmbiguousSubmit {
                        detail: "the request was sent but no answer came back".into(),
                        source: Some(source),
                    });
                }
                Verdict::Retry {
                    error: Error::Transport {
                        request_id: rid,
                        source,
                    },
                    retry_after: None,
                    throttled: false,
                }
            }
            tryon_api::Error::ResponseBodyError(source) => {
                if ctx.kind == CallKind::Submit {
                    return Verdict::Fatal(Error::AmbiguousSubmit {
                        detail: "the answer's body was cut off".into(),
                        source: Some(source),
                    });
                }
                Verdict::Retry {
                    error: Error::Transport {
                        request_id: rid,
                        source,
                    },
                    retry_after: None,
                    throttled: false,
                }
            }
            tryon_api::Error::ErrorResponse(rv) => {
                let status = rv.status().as_u16();
                let headers = rv.headers().clone();
                let body = rv.into_inner();
                let raw = serde_json::to_string(&body).unwrap_or_default();
                self.by_status(status, &headers, &body.error, &raw, ctx)
            }
            tryon_api::Error::UnexpectedResponse(resp) => {
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let raw = read_capped(resp).await;
                if (200..300).contains(&status) {
                    return Verdict::Fatal(Error::InvalidResponse {
                        request_id: rid,
                        problem: format!("unexpected success status {status}"),
                    });
                }
                let message = serde_json::from_str::<serde_json::Value>(&raw)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                    .unwrap_or_else(|| raw.clone());
                self.by_status(status, &headers, &message, &raw, ctx)
            }
            tryon_api::Error::InvalidRequest(problem) => {
                Verdict::Fatal(Error::invalid("request_id", problem))
            }
            other => Verdict::Fatal(Error::InvalidResponse {
                request_id: rid,
                problem: other.to_string(),
            }),
        }
    }

    fn by_status(
        &self,
        status: u16,
        headers: &HeaderMap,
        message: &str,
        raw: &str,
        ctx: CallCtx<'_>,
    ) -> Verdict {
        let message = self.scrub(message);
        let rid = ctx.request_id.map(str::to_string);
        let retry_after = parse_retry_after(headers, self.inner.clock.system_time());
        let retry = |error| Verdict::Retry {
            error,
            retry_after,
            throttled: status == 429,
        };
        let api = || Error::Api {
            status,
            message: message.clone(),
            body: self.scrub(&truncate(raw)),
            request_id: rid.clone(),
        };
        match (status, ctx.kind) {
            (401, _) => Verdict::Fatal(Error::Unauthorized {
                request_id: rid,
                message,
            }),
            (403, _) => Verdict::Fatal(Error::Forbidden {
                request_id: rid,
                message,
            }),
            (406, _) => Verdict::Fatal(Error::InsufficientCredits {
                request_id: rid,
                message,
            }),
            (404, CallKind::Read) if rid.is_some() => Verdict::Fatal(Error::Expired {
                request_id: rid.unwrap_or_default(),
            }),
            (422, CallKind::Read) if rid.is_some() => Verdict::Fatal(Error::Failed {
                request_id: rid.unwrap_or_default(),
                detail: message,
            }),
            (429, _) => retry(Error::RateLimited {
                request_id: rid.clone(),
                retry_after,
                message: message.clone(),
            }),
            (503, _) | (500 | 502 | 504, CallKind::Read | CallKind::Upload) => retry(api()),
            _ => Verdict::Fatal(api()),
        }
    }

    /// Removes the key from text that came from a server, in case a server
    /// echoes it back.
    fn scrub(&self, text: &str) -> String {
        let key = self.inner.api_key.expose_secret();
        if key.len() >= 4 && text.contains(key) {
            text.replace(key, "[REDACTED]")
        } else {
            text.to_string()
        }
    }
}

/// An error from [`Client::call`], keeping an unreadable 2xx body apart so
/// the submit can still salvage the `request_id` of a billed job.
pub(crate) enum CallError {
    Error(Error),
    Payload(RawPayload),
}

pub(crate) struct RawPayload {
    body: Bytes,
    error: String,
}

impl CallError {
    fn into_error(self) -> Error {
        match self {
            CallError::Error(e) => e,
            CallError::Payload(p) => Error::InvalidResponse {
                request_id: None,
                problem: format!(
                    "{} (body: {})",
                    p.error,
                    truncate(&String::from_utf8_lossy(&p.body))
                ),
            },
        }
    }
}

/// A `200` submit whose body did not match the schema: the job is billed,
/// so keep it if the body still names its `request_id`.
fn salvage_request_id(raw: &RawPayload) -> Result<String> {
    let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(&raw.body) else {
        // The 200 body itself was lost (cut short, or not JSON at all): the
        // job is billed but its id is unknown. That is an ambiguous submit,
        // so callers who guard against paying twice see it as one.
        return Err(Error::AmbiguousSubmit {
            detail: format!(
                "submit answered 200 (the job is billed) but its body is unreadable, so its request_id is unknown: {} (body: {})",
                raw.error,
                truncate(&String::from_utf8_lossy(&raw.body))
            ),
            source: None,
        });
    };
    let id = parsed
        .get("request_id")
        .and_then(|i| i.as_str())
        .map(str::to_string);
    if let Some(id) = id.filter(|i| !i.trim().is_empty()) {
        tracing::warn!(request_id = %id, problem = %raw.error, "submit answer did not match the schema; using its request_id");
        return Ok(id);
    }
    Err(Error::InvalidResponse {
        request_id: None,
        problem: format!(
            "submit answered without a usable request_id (the job may be billed): {} (body: {})",
            raw.error,
            truncate(&String::from_utf8_lossy(&raw.body))
        ),
    })
}

/// A read whose body did not match: a FAILED body without `error` (or
/// any odd shape with `status: FAILED`) is still a failure.
fn payload_as_failed<T>(e: CallError, request_id: Option<&str>) -> Result<T> {
    match e {
        CallError::Error(e) => Err(e),
        CallError::Payload(p) => {
            let v = serde_json::from_slice::<serde_json::Value>(&p.body).ok();
            let failed = v
                .as_ref()
                .and_then(|v| v.get("status"))
                .and_then(|s| s.as_str())
                == Some("FAILED");
            if failed {
                let detail = v
                    .as_ref()
                    .and_then(|v| v.get("error"))
                    .and_then(|e| e.as_str())
                    .unwrap_or("no detail given")
                    .to_string();
                return Err(Error::Failed {
                    request_id: request_id.unwrap_or_default().to_string(),
                    detail,
                });
            }
            Err(Error::InvalidResponse {
                request_id: request_id.map(str::to_string),
                problem: format!(
                    "{} (body: {})",
                    p.error,
                    truncate(&String::from_utf8_lossy(&p.body))
                ),
            })
        }
    }
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_ERROR_BODY {
        return s.to_string();
    }
    let mut end = MAX_ERROR_BODY;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

async fn read_capped(resp: reqwest::Response) -> String {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Ok(Some(chunk)) = stream.try_next().await {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_ERROR_BODY {
            break;
        }
    }
    truncate(&String::from_utf8_lossy(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_required_except_loopback() {
        for ok in [
            "https://api.segmind.com",
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9",
            "https://proxy.example/segmind/",
        ] {
            assert!(checked_base_url("base_url", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.segmind.com",
            "ftp://x",
            "not a url",
            "https://user:pw@api.segmind.com",
            "http://10.0.0.1",
        ] {
            assert!(checked_base_url("base_url", bad).is_err(), "{bad}");
        }
    }
}
