//! How each row ended, and the summary a batch prints.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::plan::Plan;
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
    },
    /// Not submitted: its output file exists though the journal does not
    /// know it (`--overwrite` submits it).
    OutputExists { path: PathBuf },
}

/// How a row stands, as the summary counts it and the report page files
/// it: one per [`Outcome`] ([`Outcome::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Its image is saved.
    Completed,
    /// The job failed (FAILED, blocked, expired).
    Failed,
    /// Accepted, not collected.
    Pending,
    /// Paid for, not saved.
    Unsaved,
    /// The submit's outcome is unknown.
    Ambiguous,
    /// Not accepted.
    NotSent,
    /// Its output file exists though the journal does not know it.
    Skipped,
}

impl Status {
    /// Every status, in the summary's order.
    pub const ALL: [Status; 7] = [
        Status::Completed,
        Status::Failed,
        Status::Pending,
        Status::Unsaved,
        Status::Ambiguous,
        Status::NotSent,
        Status::Skipped,
    ];

    /// Its name, as the summary prints it.
    pub fn name(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Pending => "pending",
            Status::Unsaved => "unsaved",
            Status::Ambiguous => "ambiguous",
            Status::NotSent => "not sent",
            Status::Skipped => "skipped",
        }
    }

    /// What it means and what to do, as the summary explains it.
    pub fn help(self) -> Option<&'static str> {
        match self {
            Status::Completed | Status::Failed => None,
            Status::Pending => Some("accepted, not collected: rerun to re-attach"),
            Status::Unsaved => Some("paid for, not saved: fetch each with the command shown"),
            Status::Ambiguous => {
                Some("submit outcome unknown: not resubmitted; --resubmit-ambiguous sends again")
            }
            Status::NotSent => Some("rerun to submit"),
            Status::Skipped => Some(
                "output file exists, not in the journal: not resubmitted; --overwrite sends again",
            ),
        }
    }

    /// The flag a rerun needs to act on a row in this status (`Some("")`
    /// when a plain rerun does; `None` when there is nothing to do).
    pub fn rerun_flag(self) -> Option<&'static str> {
        match self {
            Status::Completed | Status::Unsaved => None,
            Status::Pending | Status::NotSent => Some(""),
            Status::Failed => Some("--retry-failed"),
            Status::Ambiguous => Some("--resubmit-ambiguous"),
            Status::Skipped => Some("--overwrite"),
        }
    }
}

impl Outcome {
    /// A row the run never got to.
    pub fn not_run() -> Outcome {
        Outcome::NotSent {
            reason: "not run".into(),
            code: Code::Network,
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
        }
    }

    /// The job's id, when one is known.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Outcome::Failed { request_id, .. } => request_id.as_deref(),
            Outcome::Pending { request_id, .. } | Outcome::Unsaved { request_id, .. } => {
                Some(request_id)
            }
            _ => None,
        }
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
        }
    }
}

/// Why a job accepted over an hour ago and never collected is failed.
pub const EXPIRED: &str = "accepted more than an hour ago and never collected; the service no longer keeps it (rerun with --retry-failed to submit again)";

/// The command a rerun of the batch is: `tryon batch MANIFEST --out-dir
/// DIR`, with `flag` when one is given.
pub fn rerun(manifest: &Path, out_dir: &Path, flag: &str) -> String {
    let mut command = format!(
        "tryon batch {} --out-dir {}",
        manifest.display(),
        out_dir.display()
    );
    if !flag.is_empty() {
        command.push(' ');
        command.push_str(flag);
    }
    command
}

/// The command that fetches an accepted job's image, at no charge: `wait`,
/// not `result`, because a job whose id the journal could not record may
/// still be queued (`wait` returns at once for a finished one).
pub fn recovery(request_id: &str, output: &Path) -> String {
    format!(
        "tryon wait {} -o {}",
        term::inline(request_id),
        output.display()
    )
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
    journal: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    journal_error: Option<String>,
    /// The report page (`DIR/report.html`), or why it was not written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportPage>,
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
}

/// Tally the outcomes; the exit code is the most serious one seen (see
/// [`Code::rank`]). A row with no outcome was not run.
pub fn summarize(
    rows: &[Row],
    outcomes: Vec<Option<Outcome>>,
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
    for (row, outcome) in rows.iter().zip(outcomes) {
        let outcome = outcome.unwrap_or_else(Outcome::not_run);
        if outcome.code().rank() > code.rank() {
            code = outcome.code();
        }
        let report = RowReport {
            row: row.id.clone(),
            request_id: outcome.request_id().map(str::to_string),
            reason: outcome.reason().unwrap_or_default(),
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
        };
        list.push(report);
    }
    (summary, code)
}

/// The summary for people.
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
    ];
    for (status, _, list) in lists {
        let _ = write!(text, "\n  {:<10} {}", status.name(), list.len());
        if let Some(help) = status.help() {
            let _ = write!(text, " ({help})");
        }
    }
    for (_, title, list) in lists {
        if list.is_empty() {
            continue;
        }
        let _ = write!(text, "\n{title}:");
        for r in list {
            let _ = write!(text, "\n  {}", term::inline(&r.row));
            if let Some(id) = &r.request_id {
                let _ = write!(text, " ({})", term::inline(id));
            }
            let _ = write!(text, ": {}", term::inline(&r.reason));
        }
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
                "\nreport: not written ({}); `tryon report {}` writes it from the journal",
                term::inline(error),
                s.journal
                    .parent()
                    .unwrap_or_else(|| Path::new("."))
                    .display()
            );
        }
        None => {}
    }
    text
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
        let outcomes = vec![
            Some(Outcome::Unsaved {
                request_id: "r-1".into(),
                output: PathBuf::from("out/a.png"),
                reason: "disk full".into(),
            }),
            Some(Outcome::of_plan(
                Plan::Attach("r-2".into()),
                Path::new("out/b.png"),
            )),
            None,
        ];
        assert_eq!(
            outcomes[0].as_ref().map(Outcome::status),
            Some(Status::Unsaved)
        );
        assert_eq!(
            outcomes[1].as_ref().map(Outcome::status),
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
