//! How each row ended, and the summary a batch prints.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::plan::Plan;
use super::status::{EARLIER_HELP, EXPIRED, NOT_TRIED, Status};
use crate::exit::Code;
use crate::manifest::Row;
use crate::term;

/// How a row ended in this run.
#[derive(Debug)]
pub enum Outcome {
    /// Its image is saved (now, or in an earlier run).
    Completed {
        path: PathBuf,
        /// Whether an earlier run saved it.
        earlier: bool,
    },
    /// The job failed (or failed in an earlier run).
    Failed {
        /// The job's id, when known.
        request_id: Option<String>,
        reason: String,
    },
    /// Accepted but not collected (timeout, network): a rerun re-attaches.
    Pending {
        /// The job's id.
        request_id: String,
        /// Why it was not collected.
        reason: String,
        /// The exit code this calls for.
        code: Code,
    },
    /// Accepted and paid for, but a local write failed (the image, or the
    /// journal record of its id): `tryon wait ID -o PATH` fetches it.
    Unsaved {
        /// The job's id.
        request_id: String,
        /// Where the image belongs.
        output: PathBuf,
        reason: String,
    },
    /// The POST's outcome is unknown; not resubmitted.
    Ambiguous { reason: String },
    /// Not accepted (refused, or the run stopped submitting after an
    /// account or journal error); a rerun submits it.
    NotSent {
        reason: String,
        /// The exit code this calls for.
        code: Code,
        /// Not tried: the batch had stopped submitting, for `reason`.
        stopped: bool,
    },
    /// Not submitted: its output file exists though the journal does not
    /// know it (`--overwrite` submits it).
    OutputExists { path: PathBuf },
    /// Edited since its earlier job, which has a result; not resubmitted
    /// (`--resubmit-changed` submits it).
    Changed {
        /// The earlier job.
        request_id: String,
        /// What changed.
        changes: String,
        /// The earlier image at the row's output path.
        earlier_output: Option<PathBuf>,
        /// Where this run kept the earlier image, if it fetched it.
        kept: Option<PathBuf>,
    },
}

/// An earlier version's image this run kept (or tried to).
#[derive(Debug)]
pub struct Kept {
    /// The earlier job.
    pub request_id: String,
    /// `Completed` with where it is kept, or why it is not.
    pub outcome: Outcome,
}

/// What a row came to: its outcome, and the earlier images it kept.
#[derive(Debug)]
pub struct RowResult {
    pub outcome: Outcome,
    pub kept: Vec<Kept>,
}

impl RowResult {
    /// A row the run never got to.
    pub fn not_run() -> RowResult {
        RowResult {
            outcome: Outcome::not_run(),
            kept: Vec::new(),
        }
    }
}

impl Kept {
    /// What became of the earlier image, for people, and the exit code it
    /// calls for.
    pub fn reason(&self) -> (String, Code) {
        match &self.outcome {
            Outcome::Completed { path, .. } => (format!("kept as {}", path.display()), Code::Ok),
            Outcome::Pending { reason, code, .. } => (
                format!("not collected ({reason}); rerun to collect it"),
                *code,
            ),
            Outcome::Unsaved { output, reason, .. } => (
                format!(
                    "{reason}; fetch it with: {}",
                    recovery(&self.request_id, output)
                ),
                Code::Unsaved,
            ),
            Outcome::Failed { reason, .. } => {
                (format!("the earlier job failed: {reason}"), Code::Ok)
            }
            other => (format!("{other:?}"), Code::Ok),
        }
    }

    /// Where the earlier image is, when it is kept.
    pub fn path(&self) -> Option<&Path> {
        match &self.outcome {
            Outcome::Completed { path, .. } => Some(path),
            _ => None,
        }
    }
}

impl Outcome {
    /// A row the run never got to.
    pub fn not_run() -> Outcome {
        Outcome::NotSent {
            reason: "not run".into(),
            code: Code::Network,
            stopped: false,
        }
    }

    /// How the row stands.
    pub fn status(&self) -> Status {
        match self {
            Outcome::Completed { .. } => Status::Completed,
            Outcome::Failed { .. } => Status::Failed,
            Outcome::Pending { .. } => Status::Pending,
            Outcome::Unsaved { .. } => Status::Unsaved,
            Outcome::Ambiguous { .. } => Status::Ambiguous,
            Outcome::NotSent { .. } => Status::NotSent,
            Outcome::OutputExists { .. } => Status::Skipped,
            Outcome::Changed { .. } => Status::Changed,
        }
    }

    /// The exit code it calls for.
    pub fn code(&self) -> Code {
        match self {
            Outcome::Completed { .. } | Outcome::OutputExists { .. } => Code::Ok,
            Outcome::Failed { .. } => Code::JobFailed,
            Outcome::Pending { code, .. } | Outcome::NotSent { code, .. } => *code,
            Outcome::Unsaved { .. } => Code::Unsaved,
            Outcome::Ambiguous { .. } => Code::Network,
            Outcome::Changed { .. } => Code::Usage,
        }
    }

    /// The job's id, when one is known.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Outcome::Failed { request_id, .. } => request_id.as_deref(),
            Outcome::Pending { request_id, .. }
            | Outcome::Unsaved { request_id, .. }
            | Outcome::Changed { request_id, .. } => Some(request_id),
            _ => None,
        }
    }

    /// Whether it was not tried: the batch had stopped submitting (its
    /// reason says why).
    pub fn stopped(&self) -> bool {
        matches!(self, Outcome::NotSent { stopped: true, .. })
    }

    /// Why the row stands so, for people (`None` for a completed row);
    /// for an unsaved row with the command that fetches its image.
    pub fn reason(&self) -> Option<String> {
        match self {
            Outcome::Completed { .. } => None,
            Outcome::Failed { reason, .. }
            | Outcome::Pending { reason, .. }
            | Outcome::Ambiguous { reason }
            | Outcome::NotSent { reason, .. } => Some(reason.clone()),
            Outcome::Unsaved {
                request_id,
                output,
                reason,
            } => Some(format!(
                "{reason}; fetch it with: {}",
                recovery(request_id, output)
            )),
            Outcome::OutputExists { path } => Some(format!("{} exists", path.display())),
            Outcome::Changed {
                request_id,
                changes,
                earlier_output,
                kept,
            } => Some(changed_text(
                request_id,
                changes,
                earlier_output.as_deref(),
                kept.as_deref(),
            )),
        }
    }

    /// What a row this run did not act on (or not to the end: the run was
    /// interrupted) stands as, from its plan: what a rerun would find.
    /// `output` is where its image goes.
    pub fn of_plan(plan: Plan, output: &Path) -> Outcome {
        match plan {
            Plan::Submit => Outcome::NotSent {
                reason: "not submitted yet".to_string(),
                code: Code::Network,
                stopped: false,
            },
            Plan::Attach(request_id) => Outcome::Pending {
                request_id,
                reason: "accepted, not collected yet".to_string(),
                code: Code::Timeout,
            },
            Plan::Refetch(request_id) => Outcome::Unsaved {
                request_id,
                output: output.to_path_buf(),
                reason: "the journal says it was saved, but the file is gone".to_string(),
            },
            Plan::Done(path) => Outcome::Completed {
                path,
                earlier: true,
            },
            Plan::Failed(reason) => Outcome::Failed {
                request_id: None,
                reason,
            },
            Plan::Ambiguous(reason) => Outcome::Ambiguous { reason },
            Plan::Expired(request_id) => Outcome::Failed {
                request_id: Some(request_id),
                reason: EXPIRED.to_string(),
            },
            Plan::OutputExists(path) => Outcome::OutputExists { path },
            Plan::Recover { request_id, .. } => Outcome::Pending {
                request_id,
                reason: "expired; its output is to be fetched from the account's history"
                    .to_string(),
                code: Code::Timeout,
            },
            Plan::Changed(changed) => Outcome::Changed {
                request_id: changed.request_id,
                changes: changed.changes,
                earlier_output: changed.earlier_output,
                kept: None,
            },
        }
    }
}

/// The command that fetches an accepted job's image, at no charge: `wait`,
/// not `result`, because a job whose id the journal could not record may
/// still be queued (`wait` returns at once for a finished one).
pub fn recovery(request_id: &str, output: &Path) -> String {
    term::command(&["wait", request_id, "-o", &output.to_string_lossy()])
}

/// The line for an edited row that was not resubmitted.
pub fn changed_text(
    request_id: &str,
    changes: &str,
    earlier_output: Option<&Path>,
    kept: Option<&Path>,
) -> String {
    let id = term::inline(request_id);
    let changes = term::inline(changes);
    let mut text = match earlier_output {
        Some(output) => format!(
            "{} is the image of this row's earlier inputs (job {id}); the journal knows them, and the row \
             changed since: {changes}",
            output.display()
        ),
        None => format!("changed since its job {id}: {changes}"),
    };
    if let Some(kept) = kept {
        let _ = write!(text, "; that job's image is kept as {}", kept.display());
    }
    text.push_str(
        ". Not resubmitted: --resubmit-changed sends the new inputs (a new charge), \
         keeping the earlier image",
    );
    text
}

/// What a batch prints at the end (text or JSON).
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    rows: usize,
    completed: usize,
    completed_earlier: usize,
    failed: Vec<RowReport>,
    pending: Vec<RowReport>,
    unsaved: Vec<RowReport>,
    ambiguous: Vec<RowReport>,
    not_sent: Vec<RowReport>,
    output_exists: Vec<RowReport>,
    changed: Vec<RowReport>,
    /// Earlier versions' images kept under their previous names.
    kept: Vec<RowReport>,
    journal: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    journal_error: Option<String>,
    /// The report page (`DIR/report.html`), or why it was not written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportPage>,
    /// What this run's submits cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spend: Option<super::spend::SpendReport>,
}

/// Where the report page went: `"report": PATH`, or `"report": {"error":
/// WHY}`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ReportPage {
    /// Written here.
    Written(PathBuf),
    /// Not written, for this reason.
    Failed {
        /// Why.
        error: String,
    },
}

#[derive(Debug, Serialize)]
struct RowReport {
    row: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    reason: String,
    /// Not tried: the batch had stopped submitting (`reason` says why).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stopped: bool,
}

/// Tally the results; the exit code is the most serious one seen (see
/// [`Code::rank`]). A row with no result was not run.
pub fn summarize(
    rows: &[Row],
    results: Vec<Option<RowResult>>,
    journal: PathBuf,
    journal_error: Option<String>,
) -> (Summary, Code) {
    let mut code = if journal_error.is_some() {
        Code::Unsaved
    } else {
        Code::Ok
    };
    let mut summary = Summary {
        rows: rows.len(),
        journal,
        journal_error,
        ..Summary::default()
    };
    let mut worst = |c: Code| {
        if c.rank() > code.rank() {
            code = c;
        }
    };
    for (row, result) in rows.iter().zip(results) {
        let RowResult { outcome, kept } = result.unwrap_or_else(RowResult::not_run);
        for kept in kept {
            let (reason, kept_code) = kept.reason();
            worst(kept_code);
            summary.kept.push(RowReport {
                row: row.id.clone(),
                request_id: Some(kept.request_id),
                reason,
                stopped: false,
            });
        }
        worst(outcome.code());
        let report = RowReport {
            row: row.id.clone(),
            request_id: outcome.request_id().map(str::to_string),
            reason: outcome.reason().unwrap_or_default(),
            stopped: outcome.stopped(),
        };
        let list = match outcome.status() {
            Status::Completed => {
                summary.completed += 1;
                if let Outcome::Completed { earlier: true, .. } = outcome {
                    summary.completed_earlier += 1;
                }
                continue;
            }
            Status::Failed => &mut summary.failed,
            Status::Pending => &mut summary.pending,
            Status::Unsaved => &mut summary.unsaved,
            // No id: the submit's answer never came.
            Status::Ambiguous => &mut summary.ambiguous,
            Status::NotSent => &mut summary.not_sent,
            Status::Skipped => &mut summary.output_exists,
            Status::Changed => &mut summary.changed,
        };
        list.push(report);
    }
    (summary, code)
}

/// At most this many row ids are listed for one reason shared by several.
const LISTED: usize = 20;

/// The summary for people. Rows that ended for the same reason are said
/// once, with their count and ids (the JSON summary lists every row).
pub fn summary_text(s: &Summary) -> String {
    let mut text = format!(
        "batch: {} rows\n  completed  {} ({} this run, {} earlier)",
        s.rows,
        s.completed,
        s.completed - s.completed_earlier,
        s.completed_earlier,
    );
    let lists = [
        (Status::Failed, "failed rows", &s.failed),
        (Status::Pending, "pending rows", &s.pending),
        (Status::Unsaved, "unsaved rows", &s.unsaved),
        (Status::Ambiguous, "ambiguous rows", &s.ambiguous),
        (Status::NotSent, "rows not sent", &s.not_sent),
        (Status::Skipped, "skipped rows", &s.output_exists),
        (Status::Changed, "changed rows", &s.changed),
    ];
    for (status, _, list) in lists {
        if list.is_empty() && !status.counted_at_zero() {
            continue;
        }
        let _ = write!(text, "\n  {:<10} {}", status.name(), list.len());
        if let Some(help) = status.help() {
            let _ = write!(text, " ({help})");
        }
    }
    if !s.kept.is_empty() {
        let _ = write!(text, "\n  earlier    {} ({EARLIER_HELP})", s.kept.len());
    }
    let titled = lists
        .iter()
        .map(|(_, title, list)| (*title, *list))
        .chain([("earlier images", &s.kept)]);
    for (title, list) in titled {
        if !list.is_empty() {
            let _ = write!(text, "\n{title}:");
            write_grouped(&mut text, list);
        }
    }
    if let Some(spend) = &s.spend {
        let _ = write!(text, "\n{}", spend.line());
    }
    let _ = write!(text, "\njournal: {}", s.journal.display());
    if let Some(error) = &s.journal_error {
        let _ = write!(text, " (writing it stopped: {})", term::inline(error));
    }
    match &s.report {
        Some(ReportPage::Written(path)) => {
            let _ = write!(text, "\nreport: {}", path.display());
        }
        Some(ReportPage::Failed { error }) => {
            let _ = write!(
                text,
                "\nreport: not written ({}); `{}` writes it from the journal",
                term::inline(error),
                term::command(&[
                    "report",
                    &s.journal
                        .parent()
                        .unwrap_or_else(|| Path::new("."))
                        .to_string_lossy()
                ])
            );
        }
        None => {}
    }
    text
}

/// Each reason once: alone with its row, or with the count and ids of
/// every row that shares it.
fn write_grouped(text: &mut String, list: &[RowReport]) {
    let mut groups: Vec<(&str, Vec<&RowReport>)> = Vec::new();
    for report in list {
        match groups.iter_mut().find(|(r, _)| *r == report.reason) {
            Some((_, members)) => members.push(report),
            None => groups.push((&report.reason, vec![report])),
        }
    }
    let name = |r: &RowReport| match &r.request_id {
        Some(id) => format!("{} ({})", term::inline(&r.row), term::inline(id)),
        None => term::inline(&r.row).into_owned(),
    };
    for (reason, members) in groups {
        let stopped = members.iter().filter(|r| r.stopped).count();
        let note = match stopped {
            0 => String::new(),
            n if n == members.len() => format!(" ({NOT_TRIED})"),
            n => format!(" ({n} of them not tried: the batch stopped submitting after it)"),
        };
        if let [only] = members.as_slice() {
            let _ = write!(text, "\n  {}: {}{note}", name(only), term::inline(reason));
            continue;
        }
        let _ = write!(
            text,
            "\n  {} rows: {}{note}\n    ",
            members.len(),
            term::inline(reason)
        );
        let shown: Vec<String> = members.iter().take(LISTED).map(|r| name(r)).collect();
        text.push_str(&shown.join(", "));
        if members.len() > LISTED {
            let _ = write!(
                text,
                " and {} more (--json lists every row)",
                members.len() - LISTED
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_one_status_and_the_summary_lists_it_there() {
        let rows: Vec<Row> = crate::manifest::parse(
            Path::new("m.csv"),
            "id,person,garments\na,https://x.test/p,https://x.test/g\nb,https://x.test/p,https://x.test/g\nc,https://x.test/p,https://x.test/g\n",
            Path::new("."),
        )
        .unwrap();
        let result = |outcome| {
            Some(RowResult {
                outcome,
                kept: Vec::new(),
            })
        };
        let outcomes = vec![
            result(Outcome::Unsaved {
                request_id: "r-1".into(),
                output: PathBuf::from("out/a.png"),
                reason: "disk full".into(),
            }),
            result(Outcome::of_plan(
                Plan::Attach("r-2".into()),
                Path::new("out/b.png"),
            )),
            None,
        ];
        assert_eq!(
            outcomes[0].as_ref().map(|r| r.outcome.status()),
            Some(Status::Unsaved)
        );
        assert_eq!(
            outcomes[1].as_ref().map(|r| r.outcome.status()),
            Some(Status::Pending)
        );
        let (summary, code) = summarize(&rows, outcomes, PathBuf::from("out/j"), None);
        assert_eq!(code, Code::Unsaved, "the most serious");
        let text = summary_text(&summary);
        assert!(
            text.contains(
                "unsaved rows:\n  a (r-1): disk full; fetch it with: tryon wait r-1 -o out/a.png"
            ),
            "{text}"
        );
        assert!(
            text.contains("pending rows:\n  b (r-2): accepted"),
            "{text}"
        );
        assert!(text.contains("rows not sent:\n  c: not run"), "{text}");
        assert!(
            text.contains("\n  not sent   1 (rerun to submit)\n  skipped    0 (output file exists"),
            "{text}"
        );
    }
}
