//! Which part of the history a read asks for ([`HistoryQuery`]), checked
//! before anything is sent, and the dates it takes.

use std::time::SystemTime;

use jiff::civil::Date;

use super::{
    HISTORY_DEFAULT_MAX_ROWS, HISTORY_MAX_PAGES, HISTORY_MAX_PER_PAGE, HISTORY_MAX_WINDOW_DAYS,
    HistoryStatus,
};
#[allow(unused_imports)] // the docs name them
use crate::client::Client;
use crate::error::{Error, Result};

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
    pub(super) since: Option<Date>,
    pub(super) until: Option<Date>,
    pub(super) status: Option<HistoryStatus>,
    pub(super) model_name: Option<String>,
    pub(super) per_page: u32,
    pub(super) max_rows: usize,
    pub(super) max_pages: Option<u32>,
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
pub(super) struct Window {
    pub(super) from: Option<Date>,
    pub(super) to: Option<Date>,
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
    pub(super) fn page_bound(&self) -> u32 {
        self.max_pages.unwrap_or_else(|| {
            let per_page = usize::try_from(self.per_page.max(1)).unwrap_or(usize::MAX);
            let needed = self.max_rows.div_ceil(per_page).saturating_mul(2);
            u32::try_from(needed)
                .unwrap_or(u32::MAX)
                .clamp(1, HISTORY_MAX_PAGES)
        })
    }

    /// The checked window, `today` being the client's UTC day.
    pub(super) fn window(&self, today: Date) -> Result<Window> {
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
pub(super) fn utc_day(now: SystemTime) -> Date {
    jiff::Timestamp::try_from(now)
        .map_or(Date::MIN, |ts| jiff::tz::Offset::UTC.to_datetime(ts).date())
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
