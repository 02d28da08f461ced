//! Configuring a [`Client`]: the builder, the environment, the defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

use crate::client::{Client, Inner};
use crate::clock::{Clock, SharedClock, TokioClock};
use crate::error::{Error, Result};
use crate::job::JobReader;
use crate::limits::DEFAULT_MAX_DOWNLOAD_BYTES;
use crate::output::Downloader;
use crate::poll::{ModelAwarePolling, PollPolicy};
use crate::retry::{
    ApiCaller, Executor, Limiter, RateLimit, RateLimiter, RetryPolicy, SharedBudget, Sharer,
};

/// The environment variable [`Client::from_env`] reads the key from.
pub const API_KEY_ENV: &str = "SEGMIND_API_KEY";
/// The environment variable [`Client::from_env`] reads an optional API base
/// URL from (to point at a mock or a proxy).
pub const BASE_URL_ENV: &str = "SEGMIND_BASE_URL";
/// The environment variable [`Client::from_env`] reads an optional storage
/// (upload-asset) base URL from.
pub const UPLOAD_URL_ENV: &str = "SEGMIND_UPLOAD_URL";
/// The environment variable [`Client::from_env`] reads an optional request
/// history base URL from.
pub const HISTORY_URL_ENV: &str = "SEGMIND_HISTORY_URL";
/// Segmind's inference API.
pub const DEFAULT_BASE_URL: &str = "https://api.segmind.com";
/// Segmind's asset storage host, which serves `POST /upload-asset`.
pub const DEFAULT_UPLOAD_BASE_URL: &str = "https://workflows-api.segmind.com";
/// Segmind's request history host, which serves the account's request
/// history ([`Client::history`], [`Client::history_entry`]).
pub const DEFAULT_HISTORY_BASE_URL: &str = "https://api.spotprod.segmind.com";

const API_KEY_HEADER: &str = "x-api-key";

/// Configures a [`Client`]. Every setting has a documented default.
pub struct ClientBuilder {
    api_key: Option<SecretString>,
    base_url: String,
    upload_base_url: String,
    history_base_url: String,
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
    rate_limit: Option<RateLimit>,
    shared_budget: Option<SharedBudget>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("base_url", &self.base_url)
            .field("upload_base_url", &self.upload_base_url)
            .field("history_base_url", &self.history_base_url)
            .field("user_agent", &self.user_agent)
            .field("request_timeout", &self.request_timeout)
            .field("rate_limit", &self.rate_limit)
            .field("shared_budget", &self.shared_budget)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            api_key: None,
            base_url: DEFAULT_BASE_URL.to_string(),
            upload_base_url: DEFAULT_UPLOAD_BASE_URL.to_string(),
            history_base_url: DEFAULT_HISTORY_BASE_URL.to_string(),
            user_agent: format!("tryon-client/{} (rust)", env!("CARGO_PKG_VERSION")),
            request_timeout: Duration::from_mins(2),
            connect_timeout: Duration::from_secs(10),
            poll: Arc::new(ModelAwarePolling::default()),
            retry: RetryPolicy::default(),
            http: None,
            download: None,
            clock: None,
            upload_local_images: false,
            max_download_bytes: DEFAULT_MAX_DOWNLOAD_BYTES,
            wait_timeout: Duration::from_mins(10),
            rate_limit: None,
            shared_budget: None,
        }
    }
}

impl ClientBuilder {
    /// The API key (required). Accepts `&str`, `String` or a
    /// [`SecretString`]; it is kept as a `SecretString`, never printed, and
    /// sent only to the API, storage and history base URLs.
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

    /// The request history host's base URL, where
    /// [`Client::history`] and [`Client::history_entry`] go (Segmind serves
    /// them from another host than the API). Default
    /// [`DEFAULT_HISTORY_BASE_URL`]; a test against a mock sets it to the
    /// mock's URL. Takes a [`Url`], a `&str` or a `String`. The API key is
    /// sent there (the history is the account's), so set this only to a
    /// host you trust with the key. Same `https` rule as `base_url`.
    ///
    /// [`Url`]: url::Url
    #[must_use]
    pub fn history_base_url(mut self, url: impl Into<String>) -> Self {
        self.history_base_url = url.into();
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

    /// How failed calls are retried (the rules are on [`RetryPolicy`]).
    /// Default [`RetryPolicy::default`].
    #[must_use]
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How long [`Client::run`] and [`Job::wait`] wait at most. Default
    /// 600 s (as the official SDK). [`Job::wait_with`] takes its own.
    ///
    /// [`Job::wait`]: crate::Job::wait
    /// [`Job::wait_with`]: crate::Job::wait_with
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
    /// clock (`test_util::VirtualClock`, with the `test-util` feature).
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

    /// Largest output [`Output::download`](crate::Output::download)
    /// accepts. Default 50 MiB.
    #[must_use]
    pub fn max_download_bytes(mut self, max: u64) -> Self {
        self.max_download_bytes = max;
        self
    }

    /// The account's request budget, when known (Segmind publishes 500
    /// requests per minute for this API): every API call (submit, status,
    /// result, upload) is then spaced to stay within it from the first
    /// call, and it is never exceeded. Without it the client learns the
    /// budget from the server's `429`s. Clones of the client (and every job
    /// of [`Client::run_many`](crate::Client::run_many)) share it; what a
    /// `429` does is in the rules on [`RetryPolicy`].
    #[must_use]
    pub fn rate_limit(mut self, budget: RateLimit) -> Self {
        self.rate_limit = Some(budget);
        self
    }

    /// Share the request budget with every other client (in this process,
    /// other processes, other machines) that uses the same API key and the
    /// same [`SharedBudget`] (URL and name). Default: none; the client's
    /// budget is its own.
    ///
    /// The told budget ([`rate_limit`](Self::rate_limit)) and what is
    /// learned from `429`s are then one for all of them: the sum of their
    /// calls keeps to a told budget; one `429` anywhere cuts the learned
    /// rate once for everybody; a `Retry-After` holds everybody off. Sharers
    /// that all have work get about equal turns, whatever their
    /// concurrency, and one that stops or dies leaves its turns to the
    /// others at once. Each API call costs one round trip to the store
    /// first (a `429`, one more).
    ///
    /// The client joins at its first API call, or at once with
    /// [`Client::join_shared_budget`] (which returns the error if the store
    /// cannot be reached). When the store is lost (at any point, the first
    /// call included) the client goes on alone, at the told (or learned)
    /// budget divided by the number of sharers it saw last, logs a warning
    /// once, and asks the store again every second: a lost store never
    /// fails a call, and never makes one be sent twice.
    #[must_use]
    pub fn shared_budget(mut self, budget: SharedBudget) -> Self {
        self.shared_budget = Some(budget);
        self
    }

    /// Builds the client, checking the key and the base URLs.
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
        let history_base_url = checked_base_url("history_base_url", &self.history_base_url)?;

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
        let upload = tryon_api::Client::new_with_client(trimmed(&upload_base_url), keyed.clone());
        let history = tryon_api::Client::new_with_client(trimmed(&history_base_url), keyed);
        let clock: SharedClock = self.clock.unwrap_or_else(|| Arc::new(TokioClock::new()));
        let limiter = match &self.shared_budget {
            Some(budget) => {
                let sharer = Sharer::new(budget, &api_key, self.rate_limit, clock.clone())?;
                Limiter::Shared(sharer)
            }
            None => Limiter::Local(RateLimiter::new(self.rate_limit)),
        };
        let executor = Arc::new(Executor::new(self.retry, limiter, clock));
        let caller = Arc::new(ApiCaller::new(executor.clone(), &api_key));
        let downloader = Downloader::new(download, executor, self.max_download_bytes);
        let jobs = JobReader::new(
            api.clone(),
            caller.clone(),
            self.poll,
            self.wait_timeout,
            downloader,
        );
        Ok(Client::from_inner(Inner {
            api,
            upload,
            history,
            caller,
            jobs: Arc::new(jobs),
            base_url,
            upload_base_url,
            history_base_url,
            upload_local_images: self.upload_local_images,
            max_download_bytes: self.max_download_bytes,
        }))
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
/// A URL as an error message may show it: its credentials taken out
/// ([`tryon_api::redact`]).
fn shown(raw: &str) -> String {
    tryon_api::redact::Secrets::default().redact(raw)
}

fn checked_base_url(field: &'static str, raw: &str) -> Result<Url> {
    let url = Url::parse(raw.trim())
        .map_err(|e| Error::config(field, format!("{:?} is not a valid URL ({e})", shown(raw))))?;
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
            format!(
                "{:?} uses plain http; https is required except for loopback hosts",
                shown(raw)
            ),
        )),
        other => Err(Error::config(
            field,
            format!("scheme {other:?} not allowed, use https"),
        )),
    }
}

impl Client {
    /// A client configured from the environment: the key from
    /// `SEGMIND_API_KEY` (required), and, when set, the base URLs from
    /// `SEGMIND_BASE_URL`, `SEGMIND_UPLOAD_URL` and `SEGMIND_HISTORY_URL`.
    /// Everything else default.
    pub fn from_env() -> Result<Client> {
        Self::builder_from_env()?.build()
    }

    /// Like [`from_env`](Self::from_env), but returns the builder to adjust.
    pub fn builder_from_env() -> Result<ClientBuilder> {
        Self::builder_from_lookup(|name| std::env::var(name).ok())
    }

    /// [`builder_from_env`](Self::builder_from_env) reading variables
    /// through `lookup`, so tests do not depend on the machine's
    /// environment.
    fn builder_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<ClientBuilder> {
        let key =
            lookup(API_KEY_ENV)
                .filter(|k| !k.trim().is_empty())
                .ok_or(Error::MissingApiKey {
                    variable: API_KEY_ENV,
                })?;
        let mut b = Self::builder().api_key(key);
        if let Some(url) = lookup(BASE_URL_ENV).filter(|u| !u.is_empty()) {
            b = b.base_url(url);
        }
        if let Some(url) = lookup(UPLOAD_URL_ENV).filter(|u| !u.is_empty()) {
            b = b.upload_base_url(url);
        }
        if let Some(url) = lookup(HISTORY_URL_ENV).filter(|u| !u.is_empty()) {
            b = b.history_base_url(url);
        }
        Ok(b)
    }

    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }
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

    #[test]
    fn from_env_names_the_variable_whatever_the_machine_has_set() {
        let Err(err) = Client::builder_from_lookup(|_| None) else {
            panic!("no key must be an error");
        };
        assert!(matches!(
            err,
            Error::MissingApiKey {
                variable: "SEGMIND_API_KEY"
            }
        ));
        assert!(err.to_string().starts_with("SEGMIND_API_KEY is not set"));
        // A blank key is no key.
        let blank = Client::builder_from_lookup(|name| (name == API_KEY_ENV).then(|| " ".into()));
        assert!(matches!(blank, Err(Error::MissingApiKey { .. })));
        // The base URLs come from their variables.
        let client = Client::builder_from_lookup(|name| match name {
            API_KEY_ENV => Some("sk-test".into()),
            BASE_URL_ENV => Some("http://127.0.0.1:9".into()),
            _ => None,
        })
        .and_then(ClientBuilder::build)
        .map_err(|e| e.to_string());
        assert_eq!(
            client.map(|c| c.base_url().to_string()),
            Ok("http://127.0.0.1:9/".to_string())
        );
    }
}
