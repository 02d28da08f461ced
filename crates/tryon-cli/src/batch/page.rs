//! A batch's report page, filled from the rules the terminal summary uses:
//! each row's [`Outcome`] (this run's, or for a row it did not act on the
//! one its [`Plan`] calls for) and the earlier images it kept ([`Kept`]),
//! its [`Status`], the [`recovery`] and [`rerun`] commands and the
//! [`estimate`] of its cost; which journal records are the row as it is
//! now is the plan's rule ([`current`]). Written at the end of every run
//! ([`after_run`]) and by `tryon report DIR` ([`report`]) from the journal
//! and the files alone.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use super::dry_run::estimate;
use super::interrupt;
use super::plan::{Plan, RowPlan, current, histories, on_disk, plan_rows};
use super::record::RunRecord;
use super::report::{Kept, Outcome, ReportPage, RowResult, recovery};
use super::status::{EARLIER_HELP, NOT_TRIED, Status, rerun};
use super::validate::Prepared;
use crate::cli::BatchArgs;
use crate::exit::Code;
use crate::input;
use crate::journal::{self, Event, History, Kind, RowState};
use crate::manifest::Row;
use crate::report::{self, Earlier, Page, Picture, Tally, Thumbnailer};
use crate::term;

/// What a page is made of.
pub(super) struct Sources<'a> {
    pub(super) out_dir: &'a Path,
    pub(super) manifest: &'a Path,
    pub(super) rows: &'a [Row],
    pub(super) prepared: &'a [Prepared],
    pub(super) results: &'a [&'a RowResult],
    pub(super) events: &'a [Event],
    pub(super) record: Option<&'a RunRecord>,
    pub(super) prices: (f64, f64),
    pub(super) notes: Vec<String>,
}

/// What the journal says of one row's jobs (the records of the row as it
/// is now only, as the plan reads them).
#[derive(Debug, Default)]
struct Jobs<'a> {
    /// Each job the service accepted, by id, in order.
    ids: Vec<&'a str>,
    /// When the last one was accepted.
    accepted: Option<u64>,
    /// When it ended (completed or failed).
    ended: Option<u64>,
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
        Status::Changed => {
            "submit the new inputs (billed as a new job; the earlier image is kept under its previous name)"
        }
    }
}

/// The images of a row's earlier jobs: those this run kept (or tried to),
/// then those the journal says earlier runs kept that are still there, in
/// the summary's words ([`Kept::reason`]). An earlier image still at the
/// row's own output path is its result, not listed.
fn earlier_images(result: &RowResult, history: Option<&History>, output: &Path) -> Vec<Earlier> {
    let recorded = history.into_iter().flat_map(|history| {
        history
            .earlier
            .iter()
            .filter_map(|version| match &version.state {
                Some(RowState::Completed {
                    output: kept,
                    request_id,
                    ..
                }) if kept != output
                    && history.owns(kept, &version.fingerprint)
                    && on_disk(kept) =>
                {
                    Some(Kept {
                        request_id: request_id.clone(),
                        outcome: Outcome::Completed {
                            path: kept.clone(),
                            earlier: true,
                        },
                    })
                }
                _ => None,
            })
    });
    let recorded: Vec<Kept> = recorded
        .filter(|k| result.kept.iter().all(|r| r.request_id != k.request_id))
        .collect();
    result
        .kept
        .iter()
        .chain(&recorded)
        .map(|kept| Earlier {
            picture: kept.path().map_or_else(
                || Picture::Absent("not kept".to_string()),
                |path| Picture::File(path.to_path_buf()),
            ),
            note: format!("earlier job {}: {}", kept.request_id, kept.reason().0),
        })
        .collect()
}

/// The page of a batch.
#[allow(clippy::too_many_lines)] // one fact after another
pub(super) fn build(s: &Sources<'_>) -> Page {
    let (first, extra) = s.prices;
    let mut is_current = current(s.rows, s.prepared);
    let mut jobs: HashMap<&str, Jobs<'_>> = HashMap::new();
    let mut others: HashSet<&str> = HashSet::new();
    for event in s.events {
        let id = event.request_id.as_deref();
        if !is_current(&event.row, &event.fingerprint) {
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
    let histories = histories(s.rows, s.prepared, s.events, s.out_dir);
    let mut counts: HashMap<Status, usize> = HashMap::new();
    let (mut spent, mut accepted, mut garments) = (0.0, 0usize, 0usize);
    let (mut unknown, mut unknown_max, mut kept) = (0usize, 0.0, 0usize);
    let mut rows = Vec::with_capacity(s.rows.len());
    for ((row, result), prepared) in s.rows.iter().zip(s.results).zip(s.prepared) {
        let (outcome, output) = (&result.outcome, &prepared.output);
        let status = outcome.status();
        *counts.entry(status).or_default() += 1;
        let empty = Jobs::default();
        let journal = jobs.get(row.id.as_str()).unwrap_or(&empty);
        let mut ids = journal.ids.clone();
        // A job whose id the journal could not record is paid for too (an
        // edited row's id is its earlier version's job, not this one's).
        if let Some(id) = outcome.request_id()
            && status != Status::Changed
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
        let picture = match outcome {
            Outcome::Completed { .. } | Outcome::OutputExists { .. } => {
                Picture::File(output.clone())
            }
            Outcome::Failed { .. } => Picture::Absent("FAILED: no image".into()),
            Outcome::Pending { .. } => Picture::Absent("not collected yet".into()),
            Outcome::Unsaved { .. } => Picture::Absent("paid for, not saved".into()),
            Outcome::Ambiguous { .. } => Picture::Absent("submit outcome unknown".into()),
            Outcome::NotSent { .. } => Picture::Absent("not sent".into()),
            Outcome::Changed {
                earlier_output: Some(earlier),
                ..
            } => Picture::File(earlier.clone()),
            Outcome::Changed { .. } => {
                Picture::Absent("edited since its job: not resubmitted".into())
            }
        };
        let earlier = earlier_images(result, histories.get(&row.id), output);
        kept += earlier.len();
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
            result: picture,
            facts,
            prompt: row.prompt.clone(),
            // An unsaved row's reason ends with its fetch command, which
            // the page shows on its own line.
            message: match outcome {
                Outcome::Unsaved { reason, .. } => Some(reason.clone()),
                Outcome::NotSent {
                    reason,
                    stopped: true,
                    ..
                } => Some(format!("{reason} ({NOT_TRIED})")),
                other => other.reason(),
            },
            command: command.map(|c| (command_label(status).to_string(), c)),
            earlier,
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
    if kept > 0 {
        facts.push((
            "earlier images".to_string(),
            format!("{kept} ({EARLIER_HELP})"),
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

/// Fill the result of each row `results` lacks (the run was interrupted
/// before it finished them) from the journal as it is now, the way a rerun
/// would read it: the plan's outcome, and the earlier images it would
/// still fetch.
pub(super) fn settle(
    results: &mut [Option<RowResult>],
    rows: &[Row],
    prepared: &[Prepared],
    events: &[Event],
    args: &BatchArgs,
) {
    if results.iter().all(Option::is_some) {
        return;
    }
    let plans = plan_rows(rows, prepared, events, args, journal::now_secs());
    for ((slot, plan), prepared) in results.iter_mut().zip(plans).zip(prepared) {
        if slot.is_some() {
            continue;
        }
        let kept = plan
            .keep
            .iter()
            .filter(|keep| keep.from.is_none())
            .map(|keep| Kept {
                request_id: keep.request_id.clone(),
                outcome: Outcome::of_plan(Plan::Attach(keep.request_id.clone()), &keep.to),
            })
            .collect();
        *slot = Some(RowResult {
            outcome: Outcome::of_plan(plan.plan, &prepared.output),
            kept,
        });
    }
}

/// A batch that has ended (or was stopped), for its report.
pub struct Finished<'a> {
    /// Its arguments.
    pub args: &'a BatchArgs,
    /// The manifest's rows.
    pub rows: &'a [Row],
    /// Each row validated: where its image goes, what it sends.
    pub prepared: &'a [Prepared],
    /// Each row's result; `None` for a row the run did not finish.
    pub results: &'a mut [Option<RowResult>],
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
    prepared: &[Prepared],
    plans: &[RowPlan],
) -> (Arc<Thumbnailer>, Option<RunRecord>) {
    let thumbnails = Arc::new(Thumbnailer::start(&args.out_dir, 1));
    prefetch(&thumbnails, rows, prepared, plans);
    let record = RunRecord {
        manifest: std::path::absolute(&args.manifest).unwrap_or_else(|_| args.manifest.clone()),
        started: journal::now_secs(),
        finished: None,
        stopped_by: None,
        price_first: args.price_first,
        price_extra: args.price_extra,
        global_flags: crate::term::global_flags(),
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
    settle(run.results, run.rows, run.prepared, &events, run.args);
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
    let not_run = RowResult::not_run();
    let results: Vec<&RowResult> = run
        .results
        .iter()
        .map(|r| r.as_ref().unwrap_or(&not_run))
        .collect();
    let page = build(&Sources {
        out_dir: dir,
        manifest: &run.args.manifest,
        rows: run.rows,
        prepared: run.prepared,
        results: &results,
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
/// every local input, and the outputs of rows done in earlier runs (or
/// edited since, their earlier image still there).
fn prefetch(thumbnails: &Thumbnailer, rows: &[Row], prepared: &[Prepared], plans: &[RowPlan]) {
    for ((row, plan), prepared) in rows.iter().zip(plans).zip(prepared) {
        let inputs = std::iter::once(&row.person)
            .chain(&row.garments)
            .chain(&row.reference_pose);
        for value in inputs {
            if let Picture::File(path) = picture_of(value) {
                thumbnails.add(&path);
            }
        }
        match &plan.plan {
            Plan::Done(_) | Plan::OutputExists(_) => thumbnails.add(&prepared.output),
            Plan::Changed(changed) => {
                if let Some(earlier) = &changed.earlier_output {
                    thumbnails.add(earlier);
                }
            }
            _ => {}
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
