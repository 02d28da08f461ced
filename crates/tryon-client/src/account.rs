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
use std::time::SystemTime;

use futures::Stream;
use jiff::civil::Date;
use serde::Serialize;

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

/// Which part of the account's request history [`Client::history`] reads,
/// and how much of it at most. Every value is checked before anything is
/// sent; a bad one is [`Error::Invalid`] naming the setting and the limit.
///
/// - Dates are UTC days, both ends included, at most
///   [`HISTORY_MAX_WINDOW_DAYS`] apart (counting both ends). Neither set:
///   the service's default window (the last 7 days). Only `since`: up to
///   today. Only `until`: the 7 days ending then.
/// - [`per_page`](Self::per_page): rows asked for per page, 1 to
///   [`HISTORY_MAX_PER_PAGE`] (default 100).
/// - [`max_rows`](Self::max_rows): requests read at most (default
///   [`HISTORY_DEFAULT_MAX_ROWS`]); [`max_pages`](Self::max_pages): pages
///   read at most, against a server that never stops answering full pages
///   (default: twice the pages `max_rows` needs, leaving room for requests
///   listed once per output, and at most [`HISTORY_MAX_PAGES`]).
///
/// ```
/// use tryon_client::{HistoryQuery, HistoryStatus};
/// let query = HistoryQuery::new()
///     .since(jiff::civil::date(2026, 3, 1))
///     .until(jiff::civil::date(2026, 3, 31))
///     .status(HistoryStatus::Completed)
///     .max_rows(500);
/// assert!(query.validate().is_ok());
/// // 32 days is one too many: refused before anything is sent.
/// let long = query.clone().since(jiff::civil::date(2026, 2, 28));
/// assert!(long.validate().unwrap_err().to_string().contains("31 days"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    since: Option<Date>,
    until: Option<Date>,
    status: Option<HistoryStatus>,
    model_name: Option<String>,
    per_page: u32,
    max_rows: usize,
    max_pages: Option<u32>,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        Self {
            since: None,
            until: None,
            status: None,
            model_name: None,
            per_page: HISTORY_MAX_PER_PAGE,
            max_rows: HISTORY_DEFAULT_MAX_ROWS,
            max_pages: None,
        }
    }
}

/// The dates a query sends, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    from: Option<Date>,
    to: Option<Date>,
}

impl HistoryQuery {
    /// The service's default window, every state, 100 rows a page, at most
    /// [`HISTORY_DEFAULT_MAX_ROWS`] requests.
    pub fn new() -> Self {
        Self::default()
    }

    /// The first day of the window (UTC, included).
    #[must_use]
    pub fn since(mut self, day: Date) -> Self {
        self.since = Some(day);
        self
    }

    /// The last day of the window (UTC, included).
    #[must_use]
    pub fn until(mut self, day: Date) -> Self {
        self.until = Some(day);
        self
    }

    /// Only requests in this state.
    #[must_use]
    pub fn status(mut self, status: HistoryStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only models whose name contains this text.
    #[must_use]
    pub fn model_name(mut self, name: impl Into<String>) -> Self {
        self.model_name = Some(name.into());
        self
    }

    /// Rows asked for per page, 1 to [`HISTORY_MAX_PER_PAGE`]. Default 100.
    #[must_use]
    pub fn per_page(mut self, rows: u32) -> Self {
        self.per_page = rows;
        self
    }

    /// Requests read at most (after de-duplication), at least 1. Default
    /// [`HISTORY_DEFAULT_MAX_ROWS`].
    #[must_use]
    pub fn max_rows(mut self, rows: usize) -> Self {
        self.max_rows = rows;
        self
    }

    /// Pages read at most, at least 1. Default: twice the pages
    /// [`max_rows`](Self::max_rows) needs at [`per_page`](Self::per_page),
    /// at most [`HISTORY_MAX_PAGES`].
    #[must_use]
    pub fn max_pages(mut self, pages: u32) -> Self {
        self.max_pages = Some(pages);
        self
    }

    /// Checks every setting as [`Client::history`] does before sending
    /// (a window given by `since` alone ends today, by the machine's UTC
    /// date).
    pub fn validate(&self) -> Result<()> {
        self.window(utc_day(SystemTime::now())).map(drop)
    }

    /// The page bound in force.
    fn page_bound(&self) -> u32 {
        self.max_pages.unwrap_or_else(|| {
            let per_page = usize::try_from(self.per_page.max(1)).unwrap_or(usize::MAX);
            let needed = self.max_rows.div_ceil(per_page).saturating_mul(2);
            u32::try_from(needed)
                .unwrap_or(u32::MAX)
                .clamp(1, HISTORY_MAX_PAGES)
        })
    }

    /// The checked window, `today` being the client's UTC day.
    fn window(&self, today: Date) -> Result<Window> {
        if !(1..=HISTORY_MAX_PER_PAGE).contains(&self.per_page) {
            return Err(Error::invalid(
                "per_page",
                format!(
                    "{} given, must be 1 to {HISTORY_MAX_PER_PAGE}",
                    self.per_page
                ),
            ));
        }
        if self.max_rows == 0 {
            return Err(Error::invalid("max_rows", "0 given, must be at least 1"));
        }
        if self.max_pages == Some(0) {
            return Err(Error::invalid("max_pages", "0 given, must be at least 1"));
        }
        if let Some(name) = &self.model_name
            && name.trim().is_empty()
        {
            return Err(Error::invalid("model_name", "is empty"));
        }
        for (field, day) in [("since", self.since), ("until", self.until)] {
            if let Some(day) = day
                && day.year() < 0
            {
                return Err(Error::invalid(
                    field,
                    format!("{day} is not a YYYY-MM-DD date"),
                ));
            }
        }
        let (from, to) = match (self.since, self.until) {
            (None, None) => {
                return Ok(Window {
                    from: None,
                    to: None,
                });
            }
            (Some(from), Some(to)) => (from, to),
            (Some(from), None) => (from, today),
            (None, Some(to)) => (to.saturating_sub(jiff::Span::new().days(6)), to),
        };
        if from > to {
            let until = if self.until.is_some() {
                to.to_string()
            } else {
                format!("today, {to}")
            };
            return Err(Error::invalid(
                "since",
                format!("{from} is after until ({until})"),
            ));
        }
        let days = to.duration_since(from).as_secs() / 86_400 + 1;
        if days > HISTORY_MAX_WINDOW_DAYS {
            let field = if self.until.is_some() {
                "until"
            } else {
                "since"
            };
            return Err(Error::invalid(
                field,
                format!(
                    "{from} to {to} is {days} days; the history window is at most \
                     {HISTORY_MAX_WINDOW_DAYS} days, both ends included"
                ),
            ));
        }
        Ok(Window {
            from: Some(from),
            to: Some(to),
        })
    }
}

/// Parses a history date, strictly `YYYY-MM-DD` (a real day of the
/// calendar); an error names `field`.
///
/// ```
/// let day = tryon_client::parse_history_date("since", "2026-03-01")?;
/// assert_eq!(day, jiff::civil::date(2026, 3, 1));
/// assert!(tryon_client::parse_history_date("since", "2026-02-30").is_err());
/// assert!(tryon_client::parse_history_date("since", "20260301").is_err());
/// # Ok::<(), tryon_client::Error>(())
/// ```
pub fn parse_history_date(field: &str, text: &str) -> Result<Date> {
    let shape = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    let bad =
        |why: &str| Error::invalid(field, format!("{text:?} is not a YYYY-MM-DD date ({why})"));
    if !shape {
        return Err(bad("the form is YYYY-MM-DD"));
    }
    text.parse::<Date>().map_err(|e| bad(&e.to_string()))
}

/// The UTC day at `now`.
fn utc_day(now: SystemTime) -> Date {
    jiff::Timestamp::try_from(now)
        .map_or(Date::MIN, |ts| jiff::tz::Offset::UTC.to_datetime(ts).date())
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn invalid_field(q: &HistoryQuery, today: Date) -> String {
        match q.window(today) {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn windows_resolve_and_are_bounded() {
        let today = date(2026, 3, 31);
        let q = HistoryQuery::new();
        assert_eq!(
            q.window(today).ok(),
            Some(Window {
                from: None,
                to: None
            })
        );
        let w = q.clone().since(date(2026, 3, 1)).window(today).ok();
        assert_eq!(
            w,
            Some(Window {
                from: Some(date(2026, 3, 1)),
                to: Some(today)
            })
        );
        let w = q.clone().until(date(2026, 3, 10)).window(today).ok();
        assert_eq!(w.and_then(|w| w.from), Some(date(2026, 3, 4)));
        assert_eq!(
            invalid_field(&q.clone().since(date(2026, 2, 28)), today),
            "since"
        );
        assert_eq!(
            invalid_field(
                &q.clone().since(date(2026, 1, 1)).until(date(2026, 2, 1)),
                today
            ),
            "until"
        );
        assert_eq!(
            invalid_field(
                &q.clone().since(date(2026, 3, 2)).until(date(2026, 3, 1)),
                today
            ),
            "since"
        );
        assert_eq!(invalid_field(&q.clone().per_page(0), today), "per_page");
        assert_eq!(invalid_field(&q.clone().per_page(101), today), "per_page");
        assert_eq!(invalid_field(&q.clone().max_rows(0), today), "max_rows");
    }

    #[test]
    fn the_page_bound_follows_max_rows() {
        assert_eq!(HistoryQuery::new().page_bound(), 200);
        assert_eq!(HistoryQuery::new().max_rows(1).page_bound(), 2);
        assert_eq!(
            HistoryQuery::new().max_rows(usize::MAX).page_bound(),
            HISTORY_MAX_PAGES
        );
        assert_eq!(HistoryQuery::new().max_pages(3).page_bound(), 3);
    }

    #[test]
    fn dates_are_strict() {
        assert!(parse_history_date("since", "2026-03-01").is_ok());
        for bad in ["2026-3-01", "2026-02-30", "20260301", "2026-03-01T00", ""] {
            let e = parse_history_date("since", bad).unwrap_err();
            assert!(e.to_string().starts_with("since: "), "{e}");
        }
    }
}
