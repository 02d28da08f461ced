//! A batch's report page, filled from the rules the terminal summary uses:
//! each row's [`Outcome`] (this run's, or for a row it did not act on the
//! one its [`Plan`] calls for), its [`Status`], the [`recovery`] and
//! [`rerun`] commands and the [`estimate`] of its cost. Written at the end
//! of every run ([`after_run`]) and by `tryon report DIR` ([`report`]) from
//! the journal and the files alone.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::dry_run::estimate;
use super::interrupt;
use super::plan::{Plan, plan_rows};
use super::record::RunRecord;
use super::report::{Outcome, ReportPage, Status, recovery, rerun};
use crate::cli::BatchArgs;
use crate::exit::Code;
use crate::input;
use crate::journal::{self, Event, Kind};
use crate::manifest::Row;
use crate::names;
use crate::report::{self, Page, Picture, Tally, Thumbnailer};
use crate::term;

/// What a page is made of.
pub(super) struct Sources<'a> {
    pub(super) out_dir: &'a Path,
    pub(super) manifest: &'a Path,
    pub(super) rows: &'a [Row],
    pub(super) outputs: &'a [PathBuf],
    pub(super) outcomes: &'a [&'a Outcome],
    pub(super) events: &'a [Event],
    pub(super) record: Option<&'a RunRecord>,
    pub(super) prices: (f64, f64),
    pub(super) notes: Vec<String>,
}

/// What the journal says of one row's jobs (records with its current
/// fingerprint only, as the plan reads them).
#[derive(Debug, Default)]
struct Jobs<'a> {
    /// Each job the service accepted, by id, in order.
    ids: Vec<&'a str>,
    /// When the last one was accepted.
    accepted: Option<u64>,
    /// When it ended (completed or failed).
    ended: Option<u64>,
}

/// Where a row's image goes (the rule `validate` applies).
pub(super) fn output_of(out_dir: &Path, row: &Row) -> PathBuf {
    let format = row.fields().ok().and_then(|f| f.format).unwrap_or_default();
    out_dir.join(names::file_name(&row.id, format.extension()))
}

/// A manifest value as the page shows it: a local file, or a URL (a
/// `data:` URI is not shown).
fn picture_of(value: &str) -> Picture {
    if !input::is_url(value) {
        return Picture::File(PathBuf::from(value));
    }
    let value = value.trim();
    if value
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("data:"))
    {
        Picture::Absent("given inline (a data: URI)".to_string())
    } else {
        Picture::Url(value.to_string())
    }
}

/// `Sat, 28 Nov 2026 10:00:00 GMT`.
fn date(secs: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// `42 s`, `3 m 05 s`, `2 h 07 m`.
fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} m {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} m", secs / 3600, secs % 3600 / 60),
    }
}

fn dollars(usd: f64) -> String {
    format!("${usd:.3}")
}

/// The label of the command a row in `status` gets on the page.
fn command_label(status: Status) -> &'static str {
    match status {
        Status::Completed => "",
        Status::Unsaved => "paid for: fetch its image (no new charge)",
        Status::Pending => "fetch its image once done (no new charge; a rerun re-attaches too)",
        Status::Ambiguous => {
            "submit it again (it may be billed twice: the first submit may have been accepted)"
        }
        Status::Failed => "try it again (billed as a new job)",
        Status::NotSent => "submit it",
        Status::Skipped => "submit it anyway, replacing the file (billed)",
    }
}

/// The page of a batch.
#[allow(clippy::too_many_lines)] // one fact after another
pub(super) fn build(s: &Sources<'_>) -> Page {
    let (first, extra) = s.prices;
    let fingerprints: HashMap<&str, String> = s
        .rows
        .iter()
        .map(|r| (r.id.as_str(), r.fingerprint()))
        .collect();
    let mut jobs: HashMap<&str, Jobs<'_>> = HashMap::new();
    let mut others: HashSet<&str> = HashSet::new();
    for event in s.events {
        let current = fingerprints.get(event.row.as_str()) == Some(&event.fingerprint);
        let id = event.request_id.as_deref();
        if !current {
            others.extend(id);
            continue;
        }
        let row = jobs.entry(event.row.as_str()).or_default();
        if let Some(id) = id
            && !row.ids.contains(&id)
        {
            row.ids.push(id);
        }
        match event.kind {
            Kind::Submitted => (row.accepted, row.ended) = (Some(event.at), None),
            Kind::Completed | Kind::Failed if id.is_some() => row.ended = Some(event.at),
            _ => {}
        }
    }
    // Fetch commands want paths that work from anywhere.
    let absolute = std::path::absolute(s.out_dir).unwrap_or_else(|_| s.out_dir.to_path_buf());
    let manifest = std::path::absolute(s.manifest).unwrap_or_else(|_| s.manifest.to_path_buf());
    let mut counts: HashMap<Status, usize> = HashMap::new();
    let (mut spent, mut accepted, mut garments) = (0.0, 0usize, 0usize);
    let (mut unknown, mut unknown_max) = (0usize, 0.0);
    let mut rows = Vec::with_capacity(s.rows.len());
    for ((row, outcome), output) in s.rows.iter().zip(s.outcomes).zip(s.outputs) {
        let status = outcome.status();
        *counts.entry(status).or_default() += 1;
        let empty = Jobs::default();
        let journal = jobs.get(row.id.as_str()).unwrap_or(&empty);
        let mut ids = journal.ids.clone();
        // A job whose id the journal could not record is paid for too.
        if let Some(id) = outcome.request_id()
            && !ids.contains(&id)
        {
            ids.push(id);
        }
        let price = estimate(row.garments.len(), first, extra);
        #[allow(clippy::cast_precision_loss)] // a handful of jobs
        let cost = price * ids.len() as f64;
        spent += cost;
        accepted += ids.len();
        garments += row.garments.len() * ids.len();
        let mut facts = Vec::new();
        if let Some(id) = ids.last() {
            facts.push(format!("request {id}"));
        }
        match (journal.accepted, journal.ended) {
            (Some(start), Some(end)) if end >= start => {
                facts.push(format!("job {}", duration(end - start)));
            }
            (Some(start), _) => facts.push(format!("accepted {}", date(start))),
            _ => {}
        }
        match ids.len() {
            0 if status == Status::Ambiguous => {
                unknown += 1;
                unknown_max += price;
                facts.push(format!(
                    "up to {} (estimate), if it was accepted",
                    dollars(price)
                ));
            }
            0 => {}
            1 => facts.push(format!("{} (estimate)", dollars(cost))),
            n => facts.push(format!("{n} jobs, {} (estimate)", dollars(cost))),
        }
        let result = match outcome {
            Outcome::Completed { .. } | Outcome::OutputExists { .. } => {
                Picture::File(output.clone())
            }
            Outcome::Failed { .. } => Picture::Absent("FAILED: no image".into()),
            Outcome::Pending { .. } => Picture::Absent("not collected yet".into()),
            Outcome::Unsaved { .. } => Picture::Absent("paid for, not saved".into()),
            Outcome::Ambiguous { .. } => Picture::Absent("submit outcome unknown".into()),
            Outcome::NotSent { .. } => Picture::Absent("not sent".into()),
        };
        let output = absolute.join(output.file_name().unwrap_or_default());
        let command = match (status, outcome.request_id()) {
            (Status::Unsaved | Status::Pending, Some(id)) => Some(recovery(id, &output)),
            _ => status
                .rerun_flag()
                .map(|flag| rerun(&manifest, &absolute, flag)),
        };
        rows.push(report::Row {
            id: row.id.clone(),
            status: key(status),
            person: picture_of(&row.person),
            garments: row.garments.iter().map(|g| picture_of(g)).collect(),
            pose: row.reference_pose.as_deref().map(picture_of),
            result,
            facts,
            prompt: row.prompt.clone(),
            // An unsaved row's reason ends with its fetch command, which
            // the page shows on its own line.
            message: match outcome {
                Outcome::Unsaved { reason, .. } => Some(reason.clone()),
                other => other.reason(),
            },
            command: command.map(|c| (command_label(status).to_string(), c)),
        });
    }
    let mut facts = vec![
        ("manifest".to_string(), s.manifest.display().to_string()),
        ("folder".to_string(), s.out_dir.display().to_string()),
    ];
    if let Some(record) = s.record {
        let ran = match (record.finished, &record.stopped_by) {
            (Some(end), Some(signal)) => format!(
                "started {}, stopped by {signal} after {}",
                date(record.started),
                duration(end.saturating_sub(record.started))
            ),
            (Some(end), None) => format!(
                "started {}, took {}",
                date(record.started),
                duration(end.saturating_sub(record.started))
            ),
            (None, _) => format!("started {}, not finished", date(record.started)),
        };
        facts.push(("last run".to_string(), ran));
    }
    if let (Some(a), Some(b)) = (s.events.first(), s.events.last()) {
        facts.push((
            "journal".to_string(),
            format!(
                "{} records, {} to {}",
                s.events.len(),
                date(a.at),
                date(b.at)
            ),
        ));
    }
    facts.push((
        "spend (estimate)".to_string(),
        format!(
            "{} for {accepted} jobs the service accepted ({garments} garments), at {} for a job's first \
             garment and {} for each further one; Segmind bills in its own credits, which may differ",
            dollars(spent),
            dollars(first),
            dollars(extra)
        ),
    ));
    if unknown > 0 {
        facts.push((
            "ambiguous submits".to_string(),
            format!(
                "up to {} more, if the {unknown} submits whose outcome is unknown were accepted",
                dollars(unknown_max)
            ),
        ));
    }
    if !others.is_empty() {
        facts.push((
            "other jobs".to_string(),
            format!(
                "{} jobs in the journal of rows since edited or removed from the manifest (not priced here)",
                others.len()
            ),
        ));
    }
    facts.push((
        "spend (actual)".to_string(),
        "not known to tryon: the account's request history on Segmind lists what each job was billed"
            .to_string(),
    ));
    facts.push(("written".to_string(), date(journal::now_secs())));
    let title = format!(
        "tryon batch: {}",
        s.manifest.file_name().map_or_else(
            || s.manifest.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        )
    );
    Page {
        title,
        facts,
        notes: s.notes.clone(),
        tallies: Status::ALL
            .iter()
            .map(|&status| Tally {
                key: key(status),
                name: status.name().to_string(),
                count: counts.get(&status).copied().unwrap_or(0),
                help: status.help().map(str::to_string),
            })
            .collect(),
        rows,
    }
}

/// A status's key on the page (`not-sent`).
fn key(status: Status) -> String {
    status.name().replace(' ', "-")
}

/// Fill the outcome of each row `outcomes` lacks (the run was interrupted
/// before it finished them) from the journal as it is now, the way a rerun
/// would read it.
pub(super) fn settle(
    outcomes: &mut [Option<Outcome>],
    rows: &[Row],
    outputs: &[PathBuf],
    events: &[Event],
    args: &BatchArgs,
) {
    if outcomes.iter().all(Option::is_some) {
        return;
    }
    let plans = plan_rows(rows, outputs, events, args, journal::now_secs());
    for ((slot, plan), output) in outcomes.iter_mut().zip(plans).zip(outputs) {
        if slot.is_none() {
            *slot = Some(Outcome::of_plan(plan, output));
        }
    }
}

/// A batch that has ended (or was stopped), for its report.
pub struct Finished<'a> {
    /// Its arguments.
    pub args: &'a BatchArgs,
    /// The manifest's rows.
    pub rows: &'a [Row],
    /// Where each row's image goes.
    pub outputs: &'a [PathBuf],
    /// Each row's outcome; `None` for a row the run did not finish.
    pub outcomes: &'a mut [Option<Outcome>],
    /// The record written when it started.
    pub record: Option<RunRecord>,
    /// The signal's code, when one stopped it.
    pub stopped_by: Option<Code>,
    /// The thumbnailer the run fed.
    pub thumbnails: &'a Thumbnailer,
}

/// Before a run: start the thumbnailer (one at a time, beside the run)
/// on what the page will show, and write the run's record. Neither may
/// stop the run: a record that cannot be written is left out.
pub fn before_run(
    args: &BatchArgs,
    rows: &[Row],
    plans: &[Plan],
    outputs: &[PathBuf],
) -> (Arc<Thumbnailer>, Option<RunRecord>) {
    let thumbnails = Arc::new(Thumbnailer::start(&args.out_dir, 1));
    prefetch(&thumbnails, rows, plans, outputs);
    let record = RunRecord {
        manifest: std::path::absolute(&args.manifest).unwrap_or_else(|_| args.manifest.clone()),
        started: journal::now_secs(),
        finished: None,
        stopped_by: None,
        price_first: args.price_first,
        price_extra: args.price_extra,
    };
    let record = record.write(&args.out_dir).map(|()| record).ok();
    (thumbnails, record)
}

/// After a run (the journal's writer gone, every record durable): settle
/// the rows it did not finish from the journal, record its end, and write
/// the page. A signal while thumbnails are still being made stops making
/// them (the page shows the ones already made). Returns where the page
/// went, or why it did not (said on stderr too: the exit code stays the
/// run's, since the journal is untouched and `tryon report DIR` writes the
/// page again).
pub async fn after_run(run: Finished<'_>) -> ReportPage {
    match write_after(run).await {
        Ok(path) => ReportPage::Written(path),
        Err(error) => {
            term::err_line(&format!(
                "warning: the report page was not written: {error}"
            ));
            ReportPage::Failed { error }
        }
    }
}

async fn write_after(run: Finished<'_>) -> Result<PathBuf, String> {
    let dir = &run.args.out_dir;
    let mut notes = Vec::new();
    let events = journal::read(dir).unwrap_or_else(|damage| {
        notes.push(format!(
            "the journal could not be read for this page: {damage}"
        ));
        Vec::new()
    });
    settle(run.outcomes, run.rows, run.outputs, &events, run.args);
    let record = run.record.map(|mut record| {
        record.finished = Some(journal::now_secs());
        record.stopped_by = run.stopped_by.map(|code| {
            if code == Code::Terminated {
                "SIGTERM"
            } else {
                "SIGINT"
            }
            .to_string()
        });
        if let Err(why) = record.write(dir) {
            notes.push(format!("the run's record was not written: {why}"));
        }
        record
    });
    if run.stopped_by.is_some() {
        run.thumbnails.stop();
        notes.push(
            "This run was interrupted: rows it had in flight stand as the journal left them \
             (pending, or ambiguous for a submit whose answer never came). Rerun the batch to go on."
                .to_string(),
        );
    }
    let not_run = Outcome::not_run();
    let outcomes: Vec<&Outcome> = run
        .outcomes
        .iter()
        .map(|o| o.as_ref().unwrap_or(&not_run))
        .collect();
    let page = build(&Sources {
        out_dir: dir,
        manifest: &run.args.manifest,
        rows: run.rows,
        outputs: run.outputs,
        outcomes: &outcomes,
        events: &events,
        record: record.as_ref(),
        prices: (run.args.price_first, run.args.price_extra),
        notes,
    });
    let write = report::write(dir, &page, run.thumbnails);
    tokio::pin!(write);
    tokio::select! {
        written = &mut write => return written,
        _ = interrupt::signalled() => run.thumbnails.stop(),
    }
    write.await
}

/// Queue for `thumbnails` what a run knows it will show before it starts:
/// every local input, and the outputs of rows done in earlier runs.
fn prefetch(thumbnails: &Thumbnailer, rows: &[Row], plans: &[Plan], outputs: &[PathBuf]) {
    for ((row, plan), output) in rows.iter().zip(plans).zip(outputs) {
        let inputs = std::iter::once(&row.person)
            .chain(&row.garments)
            .chain(&row.reference_pose);
        for value in inputs {
            if let Picture::File(path) = picture_of(value) {
                thumbnails.add(&path);
            }
        }
        if matches!(plan, Plan::Done(_) | Plan::OutputExists(_)) {
            thumbnails.add(output);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_pictures_read_as_people_expect() {
        assert_eq!(duration(42), "42 s");
        assert_eq!(duration(185), "3 m 05 s");
        assert_eq!(duration(7_620), "2 h 07 m");
        assert_eq!(date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(picture_of("/a/p.png"), Picture::File("/a/p.png".into()));
        assert_eq!(
            picture_of(" https://x.test/p.jpg "),
            Picture::Url("https://x.test/p.jpg".into())
        );
        assert!(matches!(
            picture_of("DATA:image/png;base64,AA"),
            Picture::Absent(_)
        ));
    }
}
