//! The account's own records: its credit balance ([`Client::credits`]) and
//! its request history ([`Client::history`], [`Client::history_entry`]).
//!
//! None of these calls is billed. Each is an idempotent `GET` sent through
//! the client's one retry executor, exactly as a job's status read is:
//! retried on `429` (honouring `Retry-After`), `5xx` and transport errors
//! by the rules on [`RetryPolicy`](crate::RetryPolicy), and paced by the
//! same rate limiter, since every keyed call counts against the account's
//! request limit. The credit balance comes from the API host
//! ([`ClientBuilder::base_url`](crate::ClientBuilder::base_url)); the
//! history from the history host
//! ([`ClientBuilder::history_base_url`](crate::ClientBuilder::history_base_url)).

use std::collections::{HashSet, VecDeque};

use futures::Stream;
use serde::Serialize;

mod query;

pub use query::{HistoryQuery, parse_history_date};
use query::{Window, utc_day};

use crate::client::Client;
use crate::error::{Error, Result};

/// One row of the account's request history, as the history host sends
/// it (every field but `request_id` may be missing while the request's
/// record lands).
pub use tryon_api::types::HistoryEntry;
/// The state a history query can select: `PENDING`, `COMPLETED` or
/// `FAILED`.
pub use tryon_api::types::HistoryStatus;

/// The longest date window one history query may cover, in days, both
/// ends included (the service's limit).
pub const HISTORY_MAX_WINDOW_DAYS: i64 = 31;
/// The most rows the service sends in one history page.
pub const HISTORY_MAX_PER_PAGE: u32 = 100;
/// Rows a [`HistoryQuery`] reads at most unless told otherwise
/// ([`HistoryQuery::max_rows`]).
pub const HISTORY_DEFAULT_MAX_ROWS: usize = 10_000;
/// Pages a [`HistoryQuery`] reads at most, whatever its
/// [`max_rows`](HistoryQuery::max_rows), unless
/// [`max_pages`](HistoryQuery::max_pages) says otherwise.
pub const HISTORY_MAX_PAGES: u32 = 1_000;

/// The account's credit balance, in USD.
///
/// ```no_run
/// # async fn f() -> tryon_client::Result<()> {
/// let client = tryon_client::Client::from_env()?;
/// let balance = client.credits().await?;
/// println!("{:.4} USD left", balance.total());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Credits {
    /// Paid credits.
    pub credits: f64,
    /// Free credits (spent as paid ones are).
    pub free_credits: f64,
}

impl Credits {
    /// Paid and free credits together: what jobs can still spend.
    pub fn total(&self) -> f64 {
        self.credits + self.free_credits
    }
}

/// Where a history read is.
struct Pager {
    client: Client,
    query: HistoryQuery,
    /// The checked window, once checked.
    window: Option<Window>,
    /// The next page to ask for.
    page: u32,
    /// Rows read and not yet yielded.
    buffer: VecDeque<HistoryEntry>,
    /// Every request id read.
    seen: HashSet<String>,
    /// Requests yielded.
    yielded: usize,
    /// No page is to be asked for any more.
    done: bool,
}

impl Pager {
    /// The next item, and the pager to go on with.
    async fn next(mut self) -> Option<(Result<HistoryEntry>, Self)> {
        let window = match self.window {
            Some(w) => w,
            None if self.done => return None,
            None => {
                let clock = self.client.inner().caller.executor().clock();
                match self.query.window(utc_day(clock.system_time())) {
                    Ok(w) => *self.window.insert(w),
                    Err(e) => {
                        self.done = true;
                        return Some((Err(e), self));
                    }
                }
            }
        };
        loop {
            if self.yielded >= self.query.max_rows {
                return None;
            }
            if let Some(entry) = self.buffer.pop_front() {
                self.yielded += 1;
                return Some((Ok(entry), self));
            }
            if self.done {
                return None;
            }
            let bound = self.query.page_bound();
            if self.page > bound {
                self.done = true;
                let problem = format!(
                    "the request history still had full pages after {bound} pages \
                     (HistoryQuery::max_pages); stopped after {} requests",
                    self.yielded
                );
                tracing::warn!(pages = bound, "{problem}");
                return Some((
                    Err(Error::InvalidResponse {
                        request_id: None,
                        problem,
                    }),
                    self,
                ));
            }
            match self.fetch(window).await {
                Ok(page) => self.take(page),
                Err(e) => {
                    self.done = true;
                    return Some((Err(e), self));
                }
            }
        }
    }

    /// `GET /inference-request/request-history` for the next page, on the
    /// history host, through the executor.
    async fn fetch(&self, window: Window) -> Result<tryon_api::types::HistoryPage> {
        let inner = self.client.inner();
        let history = &inner.history;
        let (page, per_page, query) = (self.page, self.query.per_page, &self.query);
        tracing::debug!(page, per_page, "reading a page of the request history");
        inner
            .caller
            .account(None, move || {
                let mut b = history.list_request_history().page(page).per_page(per_page);
                if let Some(from) = window.from {
                    b = b.from_date(from.to_string());
                }
                if let Some(to) = window.to {
                    b = b.to_date(to.to_string());
                }
                if let Some(status) = query.status {
                    b = b.status(status);
                }
                if let Some(name) = &query.model_name {
                    b = b.model_name(name.clone());
                }
                b.send()
            })
            .await
    }

    /// Keeps a page's new requests, and decides whether it was the last.
    fn take(&mut self, page: tryon_api::types::HistoryPage) {
        let rows = page.data.len();
        // A server that pages by fewer rows than asked says so; a page of
        // that many rows is still full.
        let full = page
            .per_page
            .filter(|&n| n > 0)
            .map_or(self.query.per_page, |n| n.min(self.query.per_page));
        let through = u64::from(self.page).saturating_mul(u64::from(full));
        let total_reached = page.total.is_some_and(|total| through >= total);
        let full = usize::try_from(full).unwrap_or(usize::MAX);
        for entry in page.data {
            if self.seen.insert(entry.request_id.clone()) {
                self.buffer.push_back(entry);
            }
        }
        if rows < full || total_reached {
            self.done = true;
        }
        self.page = self.page.saturating_add(1);
    }
}

impl Client {
    /// The account's credit balance (`GET /v1/get-user-credits` on the API
    /// host; not billed).
    ///
    /// # Errors
    /// As any keyed read: [`Error::Unauthorized`] for a rejected key,
    /// [`Error::RateLimited`] or [`Error::Api`] once the retries are spent,
    /// [`Error::InvalidResponse`] for a balance that is not a number.
    pub async fn credits(&self) -> Result<Credits> {
        let inner = self.inner();
        let api = &inner.api;
        let answer = inner
            .caller
            .account(None, || api.get_user_credits().send())
            .await?;
        let credits = Credits {
            credits: answer.credits,
            free_credits: answer.free_credits,
        };
        if !credits.credits.is_finite() || !credits.free_credits.is_finite() {
            return Err(Error::InvalidResponse {
                request_id: None,
                problem: "the credit balance is not a finite number".into(),
            });
        }
        Ok(credits)
    }

    /// The account's requests that `query` selects, newest first, page
    /// after page (`GET /inference-request/request-history` on the history
    /// host; not billed).
    ///
    /// The query is checked first: a bad one is the stream's only item,
    /// [`Error::Invalid`], and nothing is sent. Pages are then read one at a
    /// time as the stream is polled, until a page comes short or empty, the
    /// page the service's `total` ends on, [`HistoryQuery::max_rows`]
    /// requests, or [`HistoryQuery::max_pages`] pages (then the last item
    /// is [`Error::InvalidResponse`] saying the history was cut there). A
    /// request with several outputs is listed once per output: it is
    /// yielded once, at its first row. An error ends the stream.
    ///
    /// ```no_run
    /// use futures::TryStreamExt as _;
    /// use tryon_client::{Client, HistoryQuery, HistoryStatus};
    /// # async fn f() -> tryon_client::Result<()> {
    /// let client = Client::from_env()?;
    /// let query = HistoryQuery::new().status(HistoryStatus::Completed);
    /// let spent: f64 = client
    ///     .history(&query)
    ///     .try_fold(0.0, |sum, row| async move {
    ///         Ok(sum + row.credits_deduction.unwrap_or(0.0))
    ///     })
    ///     .await?;
    /// println!("the last 7 days cost {spent:.4} USD");
    /// # Ok(())
    /// # }
    /// ```
    pub fn history(
        &self,
        query: &HistoryQuery,
    ) -> impl Stream<Item = Result<HistoryEntry>> + Send + 'static {
        let pager = Pager {
            client: self.clone(),
            query: query.clone(),
            window: None,
            page: 1,
            buffer: VecDeque::new(),
            seen: HashSet::new(),
            yielded: 0,
            done: false,
        };
        futures::stream::unfold(pager, Pager::next)
    }

    /// One of the account's requests, of any age
    /// (`GET /inference-request/request-history/{request_id}` on the
    /// history host; not billed). `None` when the history does not know it
    /// (`404`): another account's request, or one whose record has not
    /// landed yet.
    ///
    /// ```no_run
    /// # async fn f() -> tryon_client::Result<()> {
    /// let client = tryon_client::Client::from_env()?;
    /// match client.history_entry("5b9f0e62-8c51-4a64-9a3e-6ad1f2f0c9d4").await? {
    ///     Some(entry) => println!("cost {:?}", entry.credits_deduction),
    ///     None => println!("not in the history (yet)"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty id (nothing sent); otherwise as
    /// [`credits`](Self::credits).
    pub async fn history_entry(&self, request_id: &str) -> Result<Option<HistoryEntry>> {
        if request_id.trim().is_empty() {
            return Err(Error::invalid("request_id", "is empty"));
        }
        let inner = self.inner();
        let history = &inner.history;
        let read = inner
            .caller
            .account(Some(request_id), || {
                history
                    .get_request_history_entry()
                    .request_id(request_id)
                    .send()
            })
            .await;
        match read {
            Ok(entry) => Ok(Some(entry)),
            Err(Error::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Client {
    /// The output a history record names, for a job whose status the
    /// service no longer keeps (an hour after its submit) while its output
    /// file stays (assumed: 7 days): `Some` for a `COMPLETED` record with a
    /// `generation_url`, `None` for any other. The download never carries
    /// the API key, and is capped and checked as every output is
    /// ([`Output::download`](crate::Output::download)).
    ///
    /// ```no_run
    /// # async fn f() -> tryon_client::Result<()> {
    /// let client = tryon_client::Client::from_env()?;
    /// let id = "5b9f0e62-8c51-4a64-9a3e-6ad1f2f0c9d4";
    /// if let Some(entry) = client.history_entry(id).await?
    ///     && let Some(output) = client.history_output(&entry)?
    /// {
    ///     output.save("recovered.png").await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidResponse`] for a `generation_url` that is not an
    /// http(s) URL.
    pub fn history_output(&self, entry: &HistoryEntry) -> Result<Option<crate::Output>> {
        let completed = entry
            .model_status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("COMPLETED"));
        let Some(url) = entry
            .generation_url
            .as_deref()
            .filter(|u| completed && !u.trim().is_empty())
        else {
            return Ok(None);
        };
        let latency = entry
            .latency_ms
            .and_then(|ms| std::time::Duration::try_from_secs_f64(ms / 1000.0).ok());
        self.inner()
            .jobs
            .output_at(&entry.request_id, url, latency)
            .map(Some)
    }

    /// The output of a job whose status the service no longer keeps, as
    /// its history record names it ([`history_entry`](Self::history_entry),
    /// then [`history_output`](Self::history_output)): `None` when the
    /// history does not hold the job or it has no output.
    ///
    /// # Errors
    /// As [`history_entry`](Self::history_entry) and
    /// [`history_output`](Self::history_output).
    pub async fn history_output_of(&self, request_id: &str) -> Result<Option<crate::Output>> {
        match self.history_entry(request_id).await? {
            Some(entry) => self.history_output(&entry),
            None => Ok(None),
        }
    }
}
