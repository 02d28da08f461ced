//! The account's records, per key: the request history (a row for each
//! accepted job, `FAILED` ones included, landing `history_delay` after its
//! submit) and the outputs kept past the status retention. What the
//! credits endpoint reports is the key's balance in [`billing`](super::billing).
//!
//! Assumed where no public source settles it (each assumption once, here
//! and in the spec): the page envelope (`data`, `page`, `per_page`,
//! `total`), the timestamps (`created_at`, `updated_at`, RFC 3339 UTC), a
//! window beyond 31 days or a bad value answered 400, an unknown id 404,
//! and a request body kept with its inline images as `sha256:<hex>`
//! ([`tryon_api::body`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jiff::civil::Date;
use jiff::{Timestamp, tz::Offset};
use serde_json::{Map, Value};
use tryon_api::types::{
    HistoryEntry, HistoryPage, HistorySortBy, HistoryStatus, OutputFormat, SortOrder,
};
use uuid::Uuid;

use super::State;
use crate::limits::{MAX_HISTORY_ROWS, MAX_TEXT_BYTES};
use crate::render::{self, Render};
use crate::sync::lock;

/// The model every row of the mock's history names.
pub(crate) const MODEL_NAME: &str = "p-image-try-on";
/// Most days one history window spans (`from_date` to `to_date`,
/// inclusive).
pub(crate) const MAX_WINDOW_DAYS: i32 = 31;
/// The window's length when neither end is given: the last 7 days.
const DEFAULT_WINDOW_DAYS: i32 = 7;
/// Rows per page when `per_page` is not given, and its bound.
const DEFAULT_PER_PAGE: u32 = 20;
const MAX_PER_PAGE: u32 = 100;

/// How a row ends.
#[derive(Clone)]
enum Outcome {
    /// Final at `done` (virtual time): completed, or failed with the error.
    At {
        done: Duration,
        failure: Option<Box<str>>,
        inference_time: f64,
    },
    /// In flight for good (a row a test placed as `PENDING`).
    Pending,
}

/// One request of one key, as the history keeps it.
#[derive(Clone)]
pub(crate) struct Row {
    /// Its place in the history (ties in a sort keep this order).
    seq: u64,
    key: Box<str>,
    id: Uuid,
    model: Box<str>,
    /// When it was submitted and when its record lands (virtual time).
    submitted: Duration,
    lands: Duration,
    /// Its wall-clock submit time (the mock's start + `submitted`).
    created: Timestamp,
    outcome: Outcome,
    cost: f64,
    body: Option<Map<String, Value>>,
    format: OutputFormat,
    render: Option<Arc<Render>>,
}

/// Every key's rows, oldest first, at most [`MAX_HISTORY_ROWS`] (the
/// oldest go first).
#[derive(Default)]
pub(crate) struct History {
    rows: BTreeMap<u64, Row>,
    by_id: HashMap<Uuid, u64>,
    next: u64,
}

impl History {
    fn insert(&mut self, mut row: Row) {
        row.seq = self.next;
        while self.rows.len() >= MAX_HISTORY_ROWS {
            if let Some((_, old)) = self.rows.pop_first() {
                self.by_id.remove(&old.id);
            }
        }
        self.by_id.insert(row.id, self.next);
        self.rows.insert(self.next, row);
        self.next += 1;
    }

    fn get(&self, id: &Uuid) -> Option<&Row> {
        self.by_id.get(id).and_then(|seq| self.rows.get(seq))
    }
}

/// A history query, read from the query string and checked: every bad
/// value is a message naming the parameter.
pub(crate) struct HistoryQuery {
    page: u32,
    per_page: u32,
    from: Option<Date>,
    to: Option<Date>,
    model_name: Option<String>,
    status: Option<HistoryStatus>,
    sort_by: HistorySortBy,
    sort_order: SortOrder,
}

fn date(name: &str, v: &str) -> Result<Date, String> {
    let ok = v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !ok {
        return Err(format!("{name}: {v:?} given, a date YYYY-MM-DD required"));
    }
    v.parse::<Date>()
        .map_err(|_| format!("{name}: {v:?} is not a calendar date"))
}

fn number(name: &str, v: &str, min: u32, max: u32) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{name}: {v:?} given, must be from {min} to {max}")),
    }
}

fn one_of<T: std::str::FromStr>(name: &str, v: &str, allowed: &str) -> Result<T, String> {
    v.parse::<T>()
        .map_err(|_| format!("{name}: {v:?} given, one of {allowed} required"))
}

impl HistoryQuery {
    /// Reads `query` (the raw query string); unknown parameters are
    /// ignored, a repeated one is read once (its first value).
    pub(crate) fn parse(query: &str) -> Result<Self, String> {
        let mut q = Self {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
            from: None,
            to: None,
            model_name: None,
            status: None,
            sort_by: HistorySortBy::ModelCreated,
            sort_order: SortOrder::Desc,
        };
        let mut seen = std::collections::HashSet::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if !seen.insert(k.clone()) {
                continue;
            }
            match k.as_ref() {
                "page" => q.page = number("page", &v, 1, u32::MAX)?,
                "per_page" => q.per_page = number("per_page", &v, 1, MAX_PER_PAGE)?,
                "from_date" => q.from = Some(date("from_date", &v)?),
                "to_date" => q.to = Some(date("to_date", &v)?),
                "model_name" => {
                    if v.len() > MAX_TEXT_BYTES {
                        return Err(format!(
                            "model_name: {} bytes given, at most {MAX_TEXT_BYTES} allowed",
                            v.len()
                        ));
                    }
                    q.model_name = Some(v.into_owned());
                }
                "status" => {
                    q.status = Some(one_of("status", &v, "PENDING, COMPLETED, FAILED")?);
                }
                "sort_by" => {
                    q.sort_by = one_of(
                        "sort_by",
                        &v,
                        "model_created, model_name, credits_deduction",
                    )?;
                }
                "sort_order" => q.sort_order = one_of("sort_order", &v, "asc, desc")?,
                _ => {}
            }
        }
        Ok(q)
    }

    /// The window's first and last day (UTC), from what was given and
    /// `today`; refused when it runs backwards or spans more than
    /// [`MAX_WINDOW_DAYS`].
    fn window(&self, today: Date) -> Result<(Date, Date), String> {
        let before = |d: Date, days: i32| d.checked_sub(jiff::Span::new().days(days)).unwrap_or(d);
        let after = |d: Date, days: i32| d.checked_add(jiff::Span::new().days(days)).unwrap_or(d);
        let (from, to) = match (self.from, self.to) {
            (Some(f), Some(t)) => (f, t),
            (Some(f), None) => (f, today.max(f)),
            (None, Some(t)) => (before(t, DEFAULT_WINDOW_DAYS - 1), t),
            (None, None) => (before(today, DEFAULT_WINDOW_DAYS - 1), today),
        };
        if from > to {
            return Err(format!(
                "from_date: {from} is after to_date {to}; the window runs from the first day to the last"
            ));
        }
        if after(from, MAX_WINDOW_DAYS - 1) < to {
            return Err(format!(
                "from_date..to_date: {from} to {to} spans more than {MAX_WINDOW_DAYS} days, at most {MAX_WINDOW_DAYS} allowed"
            ));
        }
        Ok((from, to))
    }
}

/// What a control call places in a key's history (a row the mock did not
/// bill: another client's request, a look-alike body, a slow record).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlacedRow {
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) request_id: Option<String>,
    #[serde(default)]
    pub(crate) model_name: Option<String>,
    #[serde(default = "completed")]
    pub(crate) status: HistoryStatus,
    #[serde(default)]
    pub(crate) credits_deduction: f64,
    #[serde(default)]
    pub(crate) request_body: Option<Map<String, Value>>,
    #[serde(default)]
    pub(crate) error: Option<String>,
    /// How long before now it was created, in seconds. Default 0.
    #[serde(default)]
    pub(crate) age: f64,
    /// When it was created, RFC 3339 (instead of `age`): any time, past or
    /// future, as another client's clock would have it.
    #[serde(default)]
    pub(crate) created_at: Option<String>,
    /// How long from now until it lands, in seconds. Default 0.
    #[serde(default)]
    pub(crate) lands_in: f64,
}

/// The UTC day of `t`.
fn utc_day(t: Timestamp) -> Date {
    Offset::UTC.to_datetime(t).date()
}

fn completed() -> HistoryStatus {
    HistoryStatus::Completed
}

impl State {
    /// The mock's wall-clock time: its start plus the (virtual) elapsed
    /// time.
    fn wall_at(&self, at: Duration) -> Timestamp {
        let at = jiff::SignedDuration::try_from(at).unwrap_or(jiff::SignedDuration::MAX);
        self.wall_start.checked_add(at).unwrap_or(Timestamp::MAX)
    }

    /// Records the job `id` just accepted for `key`, with its body (inline
    /// images hashed) and what it cost.
    pub(crate) fn record_history(&self, key: &str, id: Uuid, body: Value, cost: f64) {
        let Some((submitted, done, inference_time, failure, format, render)) =
            lock(&self.jobs).map.get(&id).map(|j| {
                (
                    j.submitted,
                    j.done,
                    j.inference_time(),
                    j.failure.clone(),
                    j.format,
                    j.render.clone(),
                )
            })
        else {
            return;
        };
        let delay = lock(&self.settings).history_delay;
        let mut body = body;
        tryon_api::body::hash_inline_images(&mut body, &mut |_, _, _| {});
        let row = Row {
            seq: 0,
            key: key.into(),
            id,
            model: MODEL_NAME.into(),
            submitted,
            lands: submitted.saturating_add(delay),
            created: self.wall_at(submitted),
            outcome: Outcome::At {
                done,
                inference_time,
                failure,
            },
            cost,
            body: match body {
                Value::Object(m) => Some(m),
                _ => None,
            },
            format,
            render,
        };
        lock(&self.history).insert(row);
    }

    /// Places the rows a test describes (see [`PlacedRow`]), all or none:
    /// each is checked first, and a bad one (`[i].field: ...`) places
    /// nothing. Answers them as the history will list them once landed.
    pub(crate) fn place_history(&self, rows: Vec<PlacedRow>) -> Result<Vec<HistoryEntry>, String> {
        let mut built = Vec::with_capacity(rows.len());
        for (i, p) in rows.into_iter().enumerate() {
            built.push(self.placed(p).map_err(|e| format!("[{i}].{e}"))?);
        }
        let mut history = lock(&self.history);
        let mut ids = std::collections::HashSet::new();
        for (i, row) in built.iter().enumerate() {
            if history.get(&row.id).is_some() || !ids.insert(row.id) {
                return Err(format!(
                    "[{i}].request_id: {} is already in the history",
                    row.id
                ));
            }
        }
        let entries = built
            .iter()
            .map(|row| self.entry(row, Duration::MAX, false))
            .collect();
        for row in built {
            history.insert(row);
        }
        Ok(entries)
    }

    /// One placed row, checked.
    fn placed(&self, p: PlacedRow) -> Result<Row, String> {
        crate::checks::text("key", &p.key)?;
        if p.key.is_empty() {
            return Err("key: empty, an API key required".into());
        }
        if let Some(m) = &p.model_name {
            crate::checks::text("model_name", m)?;
        }
        if let Some(e) = &p.error {
            crate::checks::text("error", e)?;
        }
        let secs = |name: &str, v: f64| {
            crate::checks::finite(name, v, 0.0, 3.0e8)
                .and_then(|()| Duration::try_from_secs_f64(v).map_err(|e| format!("{name}: {e}")))
        };
        let age = secs("age", p.age)?;
        let lands_in = secs("lands_in", p.lands_in)?;
        crate::checks::finite("credits_deduction", p.credits_deduction, 0.0, 1.0e6)?;
        let id = match &p.request_id {
            Some(given) => super::canonical_id(given).ok_or_else(|| {
                format!("request_id: {given:?} given, a lower-case hyphenated UUID required")
            })?,
            None => Uuid::new_v4(),
        };
        let now = self.clock.now();
        let created = match &p.created_at {
            Some(text) => {
                crate::checks::text("created_at", text)?;
                text.parse::<Timestamp>()
                    .map_err(|e| format!("created_at: {text:?} is not an RFC 3339 time ({e})"))?
            }
            None => self
                .wall_at(now)
                .checked_sub(jiff::SignedDuration::try_from(age).unwrap_or_default())
                .unwrap_or(Timestamp::MIN),
        };
        let outcome = match p.status {
            HistoryStatus::Pending => Outcome::Pending,
            HistoryStatus::Completed => Outcome::At {
                done: now,
                failure: None,
                inference_time: 0.0,
            },
            HistoryStatus::Failed => Outcome::At {
                done: now,
                failure: Some(p.error.unwrap_or_else(|| "failed".into()).into()),
                inference_time: 0.0,
            },
        };
        let mut body = p.request_body.map(Value::Object);
        if let Some(b) = &mut body {
            tryon_api::body::hash_inline_images(b, &mut |_, _, _| {});
        }
        Ok(Row {
            seq: 0,
            key: p.key.into(),
            id,
            model: p.model_name.unwrap_or_else(|| MODEL_NAME.into()).into(),
            submitted: now.saturating_sub(age),
            lands: now.saturating_add(lands_in),
            created,
            outcome,
            cost: p.credits_deduction,
            body: body.and_then(|b| match b {
                Value::Object(m) => Some(m),
                _ => None,
            }),
            format: OutputFormat::Png,
            render: None,
        })
    }

    /// One row as the history shows it at `now`: `None` before it lands
    /// (unless `partial`, then only its id and time).
    fn entry(&self, row: &Row, now: Duration, partial: bool) -> HistoryEntry {
        let created = Some(row.created.to_string());
        if now < row.lands && partial {
            return HistoryEntry {
                request_id: row.id.to_string(),
                created_at: created,
                credits_deduction: None,
                error: None,
                generation_url: None,
                latency_ms: None,
                model_name: None,
                model_status: None,
                request_body: None,
                updated_at: None,
            };
        }
        let (status, error, latency, updated) = match &row.outcome {
            Outcome::At { done, .. } if now < *done => (HistoryStatus::Pending, None, None, None),
            Outcome::Pending => (HistoryStatus::Pending, None, None, None),
            Outcome::At {
                done,
                failure,
                inference_time,
            } => (
                if failure.is_some() {
                    HistoryStatus::Failed
                } else {
                    HistoryStatus::Completed
                },
                failure.as_deref().map(str::to_string),
                Some(inference_time * 1000.0),
                Some(self.wall_at(*done).to_string()),
            ),
        };
        let generation_url =
            (status == HistoryStatus::Completed && row.render.is_some()).then(|| {
                format!(
                    "{}/outputs/{}.{}",
                    self.base_url,
                    row.id,
                    render::extension(row.format)
                )
            });
        HistoryEntry {
            request_id: row.id.to_string(),
            created_at: created,
            credits_deduction: Some(row.cost),
            error,
            generation_url,
            latency_ms: latency,
            model_name: Some(row.model.to_string()),
            model_status: Some(status.to_string()),
            request_body: row.body.clone(),
            updated_at: updated.or_else(|| Some(row.created.to_string())),
        }
    }

    /// A page of `key`'s history at the mock's now.
    pub(crate) fn history_page(&self, key: &str, q: &HistoryQuery) -> Result<HistoryPage, String> {
        let now = self.clock.now();
        let today = utc_day(self.wall_at(now));
        let (from, to) = q.window(today)?;
        let partial = lock(&self.settings).history_partial;
        let history = lock(&self.history);
        let mut rows: Vec<(&Row, HistoryEntry)> = history
            .rows
            .values()
            .filter(|r| &*r.key == key && (partial || now >= r.lands))
            .filter(|r| {
                let day = utc_day(r.created);
                from <= day && day <= to
            })
            .map(|r| (r, self.entry(r, now, partial)))
            .filter(|(r, e)| {
                q.model_name
                    .as_deref()
                    .is_none_or(|m| now >= r.lands && r.model.contains(m))
                    && q.status.is_none_or(|s| {
                        now >= r.lands && e.model_status.as_deref() == Some(&s.to_string())
                    })
            })
            .collect();
        rows.sort_by(|(a, _), (b, _)| {
            let by = match q.sort_by {
                HistorySortBy::ModelCreated => a.created.cmp(&b.created),
                HistorySortBy::ModelName => a.model.cmp(&b.model),
                HistorySortBy::CreditsDeduction => a.cost.total_cmp(&b.cost),
            }
            .then(a.seq.cmp(&b.seq));
            match q.sort_order {
                SortOrder::Asc => by,
                SortOrder::Desc => by.reverse(),
            }
        });
        let total = rows.len() as u64;
        let skip = (q.page as usize - 1).saturating_mul(q.per_page as usize);
        let data = rows
            .into_iter()
            .skip(skip)
            .take(q.per_page as usize)
            .map(|(_, e)| e)
            .collect();
        Ok(HistoryPage {
            data,
            page: Some(q.page),
            per_page: Some(q.per_page),
            total: Some(total),
        })
    }

    /// One of `key`'s requests by id, of any age; `None` for an unknown id,
    /// another key's, or one not landed (unless partial rows are on).
    pub(crate) fn history_entry(&self, key: &str, id: &str) -> Option<HistoryEntry> {
        let id = super::canonical_id(id)?;
        let now = self.clock.now();
        let partial = lock(&self.settings).history_partial;
        let history = lock(&self.history);
        let row = history.get(&id).filter(|r| &*r.key == key)?;
        (partial || now >= row.lands).then(|| self.entry(row, now, partial))
    }

    /// The output of a completed job kept past the status retention, while
    /// `output_retention` has not passed.
    pub(crate) fn kept_output(&self, id: &str) -> Option<(Arc<Render>, OutputFormat)> {
        let id = super::canonical_id(id)?;
        let now = self.clock.now();
        let keep = {
            let s = lock(&self.settings);
            s.output_retention.max(s.retention)
        };
        let history = lock(&self.history);
        let row = history.get(&id)?;
        let done = match &row.outcome {
            Outcome::At {
                done,
                failure: None,
                ..
            } => *done,
            _ => return None,
        };
        (now >= done && now < row.submitted.saturating_add(keep))
            .then(|| row.render.clone().map(|r| (r, row.format)))
            .flatten()
    }

    /// Sets when rows land and whether they show with nulls before.
    pub(crate) fn set_history_landing(&self, delay: Duration, partial: bool) -> Result<(), String> {
        crate::checks::duration("delay", delay, crate::limits::MAX_DURATION_SECS)?;
        let mut s = lock(&self.settings);
        s.history_delay = delay;
        s.history_partial = partial;
        Ok(())
    }
}
