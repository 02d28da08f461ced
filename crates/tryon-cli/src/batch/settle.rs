//! Settling what the journal cannot say with the account's own records
//! (its request history), before anything is sent.
//!
//! - **An unknown outcome** (a row whose intent is journaled and whose
//!   POST's answer never came): the history is read around the intent and
//!   its rows are matched against the row's body by the workspace's one
//!   body rule ([`tryon_client::tryon_api::body`], on [`Inputs::wire_form`](crate::fingerprint::Inputs::wire_form) and
//!   [`fingerprint::history_form`]), one to one: a history row no journal
//!   record names settles at most one row, and identical rows settle in
//!   the order of their intents.
//!   - *Found*: journaled `submitted` with that id (at the request's own
//!     time), then followed as any accepted row.
//!   - *Provably absent*: journaled `unbilled` with the proof, and
//!     submitted. The proof needs three things: the run that wrote the
//!     intent is known to have stopped (its `ambiguous` record, or its last
//!     record plus [`ALIVE_EVERY`], the most a run goes without one);
//!     the history has landed past that ([`MARGIN`] later: a request of the
//!     account made after then is listed, or `--landing-bound` has passed
//!     since); and no request of the account in the intent's span
//!     (`MARGIN` either side) is unaccounted for. A request there whose
//!     body differs is not taken as the row's, and not taken as proof
//!     either: the row stays unknown and the summary says what differs.
//!   - Otherwise it stays unknown, and the summary says when to rerun.
//! - **An expired job** (accepted over an hour ago, its status gone): its
//!   history record's `generation_url` is downloaded (never with the key)
//!   and the row completes; nothing is resubmitted.
//!
//! The history read is bounded (the date window of the oldest row to
//! settle, at most 31 days, and [`MAX_ROWS`] requests); a history cut
//! there proves nothing absent.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;
use tryon_client::{Client, HistoryEntry, HistoryQuery};

use super::plan::{self, Plan, RowPlan};
use super::validate::Prepared;
use crate::cli::BatchArgs;
use crate::fingerprint;
use crate::journal::{ALIVE_EVERY, Event, Kind, RETENTION, Writer};
use crate::manifest::Row;
use crate::term;

/// The clock difference allowed between this machine and the service, on
/// either side of a span, and the time a POST takes to arrive: 5 minutes.
pub const MARGIN: Duration = Duration::from_mins(5);
/// Most history requests one settling reads.
pub const MAX_ROWS: usize = 10_000;
/// Most expired jobs looked up one by one (those the listed window does
/// not hold).
const MAX_LOOKUPS: usize = 20;

/// A row whose submit's outcome is unknown, and what the journal says of
/// it.
struct Open {
    index: usize,
    /// Unix seconds of its intent.
    intent: u64,
    /// Unix seconds by which its POST had certainly arrived, if known.
    ended: Option<u64>,
}

/// One listed request, read once.
struct Listed {
    entry: HistoryEntry,
    created: Option<u64>,
    /// Some journal record names it, or a row settled here took it.
    claimed: bool,
}

fn secs_of(text: Option<&str>) -> Option<u64> {
    let t: Timestamp = text?.parse().ok()?;
    u64::try_from(t.as_second()).ok()
}

fn utc_day(secs: u64) -> jiff::civil::Date {
    let t = Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    jiff::tz::Offset::UTC.to_datetime(t).date()
}

fn shown_time(secs: u64) -> String {
    Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX)).map_or_else(
        |_| secs.to_string(),
        |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Whether a listed request may be a try-on: its model names one, or is
/// not known yet, or its body has a try-on's fields (whatever the model's
/// name is spelled as).
fn try_on(entry: &HistoryEntry) -> bool {
    let named = entry.model_name.as_deref().is_none_or(|m| {
        let m = m.to_ascii_lowercase();
        m.contains("try-on") || m.contains("try_on") || m.contains("tryon")
    });
    named
        || entry
            .request_body
            .as_ref()
            .is_some_and(|b| b.contains_key("garment_images") || b.contains_key("person_image"))
}

/// The rows to settle: each with an unknown outcome, its last intent, and
/// when its run had certainly stopped.
fn open_rows(
    rows: &[Row],
    prepared: &[Prepared],
    events: &[Event],
    plans: &[RowPlan],
) -> Vec<Open> {
    let mut is_current = plan::current(rows, prepared);
    let mut out = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if !matches!(plans[i].plan, Plan::Ambiguous(_)) {
            continue;
        }
        let Some(p) = events.iter().rposition(|e| {
            e.kind == Kind::Submitting && e.row == row.id && is_current(&e.row, &e.fingerprint)
        }) else {
            continue;
        };
        let intent = &events[p];
        let after = &events[p + 1..];
        let answered = after.iter().find(|e| {
            e.kind == Kind::Ambiguous && e.row == row.id && e.fingerprint == intent.fingerprint
        });
        // The run that wrote the intent keeps `alive` records only if it
        // began with a `started` one.
        let alive_kept = events[..p].iter().any(|e| e.kind == Kind::Started);
        let ended = match answered {
            Some(e) => Some(e.at),
            None if alive_kept => {
                let run_end = after
                    .iter()
                    .take_while(|e| e.kind != Kind::Started)
                    .map(|e| e.at)
                    .max()
                    .unwrap_or(intent.at)
                    .max(intent.at);
                Some(run_end + ALIVE_EVERY.as_secs())
            }
            None => None,
        };
        out.push(Open {
            index: i,
            intent: intent.at,
            ended,
        });
    }
    out.sort_by_key(|o| o.intent);
    out
}

/// What a settling works from: the batch as planned, and where to read
/// and write.
pub struct Batch<'a> {
    /// The client, for the account's records.
    pub client: &'a Client,
    /// The journal, for what settling proves.
    pub journal: &'a Writer,
    /// The manifest's rows.
    pub rows: &'a [Row],
    /// Each row as checked.
    pub prepared: &'a [Prepared],
    /// The journal's records, as read before this run.
    pub events: &'a [Event],
    /// The batch's flags.
    pub args: &'a BatchArgs,
    /// Unix seconds now.
    pub now: u64,
}

/// The account's history around the rows to settle, read once.
struct Read {
    listed: Vec<Listed>,
    /// Why it could not be read (to the end).
    error: Option<String>,
    /// More than [`MAX_ROWS`] requests: not read to the end.
    cut: bool,
    /// Unix seconds the read window starts at (its first UTC day).
    since: u64,
}

impl Batch<'_> {
    /// Settles the plans the journal alone leaves open (see the module's
    /// doc), writing what it proves to the journal. Returns a line per
    /// row settled, to say before the run.
    pub async fn settle(&self, plans: &mut [RowPlan]) -> Vec<String> {
        let mut lines = Vec::new();
        let open = if self.args.resubmit_ambiguous {
            Vec::new()
        } else {
            open_rows(self.rows, self.prepared, self.events, plans)
        };
        let expired: Vec<(usize, String)> = plans
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match &p.plan {
                Plan::Expired(id) => Some((i, id.clone())),
                _ => None,
            })
            .collect();
        if open.is_empty() && expired.is_empty() {
            return lines;
        }
        let mut read = self.read(&open, &expired).await;
        let mut not_found = Vec::new();
        for o in &open {
            match self.settle_row(o, &mut read, false).await {
                Some((plan, line)) => {
                    plans[o.index].plan = plan;
                    lines.extend(line);
                }
                None => not_found.push(o),
            }
        }
        for o in not_found {
            if let Some((plan, line)) = self.settle_row(o, &mut read, true).await {
                plans[o.index].plan = plan;
                lines.extend(line);
            }
        }
        self.recover_expired(&expired, &read, plans, &mut lines)
            .await;
        lines
    }

    /// Reads the history from the oldest row to settle (less the margin)
    /// to today, at most 31 days, marking the requests the journal names.
    async fn read(&self, open: &[Open], expired: &[(usize, String)]) -> Read {
        let expired_at = expired.iter().filter_map(|(_, id)| {
            self.events
                .iter()
                .find(|e| e.kind == Kind::Submitted && e.request_id.as_deref() == Some(id))
                .map(|e| e.at)
        });
        let oldest = open
            .iter()
            .map(|o| o.intent)
            .chain(expired_at)
            .min()
            .unwrap_or(self.now)
            .saturating_sub(MARGIN.as_secs());
        let today = utc_day(self.now);
        let since = utc_day(oldest).max(
            today
                .checked_sub(jiff::Span::new().days(30))
                .unwrap_or(today),
        );
        let query = HistoryQuery::new()
            .since(since)
            .until(today.max(since))
            .max_rows(MAX_ROWS);
        let named: HashSet<&str> = self
            .events
            .iter()
            .filter_map(|e| e.request_id.as_deref())
            .collect();
        let since_secs = jiff::tz::Offset::UTC
            .to_timestamp(since.to_datetime(jiff::civil::Time::midnight()))
            .ok()
            .and_then(|t| u64::try_from(t.as_second()).ok())
            .unwrap_or(u64::MAX);
        let mut read = Read {
            listed: Vec::new(),
            error: None,
            cut: false,
            since: since_secs,
        };
        let mut stream = std::pin::pin!(self.client.history(&query));
        while let Some(item) = stream.next().await {
            match item {
                Ok(entry) => read.listed.push(Listed {
                    created: secs_of(entry.created_at.as_deref()),
                    claimed: named.contains(entry.request_id.as_str()),
                    entry,
                }),
                Err(e) => {
                    read.error = Some(e.to_string());
                    break;
                }
            }
        }
        read.cut = read.listed.len() >= MAX_ROWS;
        read
    }

    /// One row with an unknown outcome: its new plan and a line to say.
    /// The first pass (`prove` false) only finds rows in the history
    /// (`None`: not found), so that every request a row claims is claimed
    /// before any row's absence is judged; the second judges the rest.
    async fn settle_row(
        &self,
        o: &Open,
        read: &mut Read,
        prove: bool,
    ) -> Option<(Plan, Option<String>)> {
        let row = &self.rows[o.index];
        let fingerprint = &self.prepared[o.index].fingerprint;
        let id = term::inline(&row.id);
        if let Some(e) = &read.error {
            let reason = format!(
                "the account's history could not be read ({e}); rerun later, or \
                 --resubmit-ambiguous (it may be charged twice)"
            );
            return Some((unknown(reason), None));
        }
        let ours = self.prepared[o.index].inputs.wire_form();
        let margin = MARGIN.as_secs();
        let from = o.intent.saturating_sub(margin);
        let to = o.ended.map_or(u64::MAX, |e| e.saturating_add(margin));
        let in_span = |l: &Listed| l.created.is_none_or(|c| from <= c && c <= to);
        let differences = |l: &Listed| {
            l.entry.request_body.as_ref().map(|b| {
                tryon_client::tryon_api::body::differences(&ours, &fingerprint::history_form(b))
            })
        };
        let candidate = |l: &Listed| !l.claimed && try_on(&l.entry) && in_span(l);
        if let Some(found) = read
            .listed
            .iter_mut()
            .find(|l| candidate(l) && differences(l).is_some_and(|d| d.is_empty()))
        {
            found.claimed = true;
            let request_id = found.entry.request_id.clone();
            let at = found.created.unwrap_or(o.intent);
            let event = Event {
                at,
                ..Event::new(Kind::Submitted, &row.id, fingerprint)
                    .request_id(&request_id)
                    .reason("found in the account's request history (its body matches)")
            };
            if let Err(reason) = self.journal.append(event).await {
                return Some((
                    unknown(format!(
                        "found in the account's history as {request_id}, but {reason}"
                    )),
                    None,
                ));
            }
            let line = format!(
                "row {id}: its unknown submit is {} in the account's history: following it (no new charge)",
                term::inline(&request_id)
            );
            let plan = if self.now.saturating_sub(at) < RETENTION.as_secs() {
                Plan::Attach(request_id)
            } else {
                recovered(self.client, &found.entry).unwrap_or(Plan::Expired(request_id))
            };
            return Some((plan, Some(line)));
        }
        if !prove {
            return None;
        }
        // Not found: is it provably absent?
        let differing: Vec<&Listed> = read.listed.iter().filter(|l| candidate(l)).collect();
        let Some(ended) = o.ended else {
            return Some((
                unknown(
                    "its run kept no record of when it stopped (an older tryon wrote it), so the \
                     account's history cannot prove it unbilled"
                        .to_string(),
                ),
                None,
            ));
        };
        if let Some(first) = differing.first() {
            let what = differences(first).map_or_else(
                || "its record has not landed".to_string(),
                |d| d.into_iter().take(3).collect::<Vec<_>>().join("; "),
            );
            let reason = format!(
                "{} request(s) of the account made around its submit are not in the journal and do not \
                 match it ({}: {}); not taken as its own, nor as proof it was unbilled",
                differing.len(),
                term::inline(&first.entry.request_id),
                term::inline(&what)
            );
            return Some((unknown(reason), None));
        }
        if read.cut {
            let reason = format!(
                "the account's history has more than {MAX_ROWS} requests since its submit; not read to the end"
            );
            return Some((unknown(reason), None));
        }
        if from < read.since {
            let reason = "its submit is older than the 31 days one history read covers, so the \
                          history cannot prove it unbilled";
            return Some((unknown(reason), None));
        }
        Some(self.prove_absent(o, ended, read).await)
    }

    /// A row not found in the history: unbilled if the history has
    /// landed past its run's end (the caller has checked that nothing in
    /// its span is unaccounted for), else still unknown.
    async fn prove_absent(&self, o: &Open, ended: u64, read: &Read) -> (Plan, Option<String>) {
        let row = &self.rows[o.index];
        let fingerprint = &self.prepared[o.index].fingerprint;
        let id = term::inline(&row.id);
        let margin = MARGIN.as_secs();
        let past = ended.saturating_add(margin);
        let landed_later = read
            .listed
            .iter()
            .any(|l| l.created.is_some_and(|c| c > past));
        let bound_passed = self
            .args
            .landing_bound
            .is_some_and(|b| self.now >= past.saturating_add(b.as_secs()));
        let proof = if landed_later {
            format!(
                "the account's history lists requests made after {} and none is this row's",
                shown_time(past)
            )
        } else if bound_passed {
            format!(
                "--landing-bound has passed since {} and the history holds no request of this row",
                shown_time(past)
            )
        } else {
            let reason = format!(
                "not in the account's history yet; rerun once it lists a request made after {} \
                 (or pass --landing-bound)",
                shown_time(past)
            );
            return (unknown(reason), None);
        };
        let event = Event::new(Kind::Unbilled, &row.id, fingerprint).reason(&proof);
        match self.journal.append(event).await {
            Ok(()) => (
                Plan::Submit,
                Some(format!(
                    "row {id}: its unknown submit was not billed ({proof}): submitting it"
                )),
            ),
            Err(reason) => (unknown(format!("proven unbilled, but {reason}")), None),
        }
    }

    /// Expired jobs whose history record names their output: fetched
    /// from there. Looked up in the listed window first, then one by one
    /// (at most [`MAX_LOOKUPS`]).
    async fn recover_expired(
        &self,
        expired: &[(usize, String)],
        read: &Read,
        plans: &mut [RowPlan],
        lines: &mut Vec<String>,
    ) {
        let mut lookups = 0;
        for (i, request_id) in expired {
            let listed = read
                .listed
                .iter()
                .find(|l| &l.entry.request_id == request_id)
                .map(|l| l.entry.clone());
            let entry = match listed {
                Some(e) => Some(e),
                None if lookups < MAX_LOOKUPS => {
                    lookups += 1;
                    self.client.history_entry(request_id).await.ok().flatten()
                }
                None => None,
            };
            if let Some(plan) = entry.and_then(|e| recovered(self.client, &e)) {
                lines.push(format!(
                    "row {}: its job {} expired; fetching its output from the account's history (no new charge)",
                    term::inline(&self.rows[*i].id),
                    term::inline(request_id)
                ));
                plans[*i].plan = plan;
            }
        }
    }
}

/// A row whose submit's outcome stays unknown, and why.
fn unknown(reason: impl std::fmt::Display) -> Plan {
    Plan::Ambiguous(format!(
        "its submit's outcome is unknown (it may have been billed): {reason}"
    ))
}

/// The plan that fetches a completed request's output from its history
/// record, if it has one.
fn recovered(client: &Client, entry: &HistoryEntry) -> Option<Plan> {
    let output = client.history_output(entry).ok().flatten()?;
    Some(Plan::Recover {
        request_id: entry.request_id.clone(),
        url: output.url().to_string(),
    })
}
