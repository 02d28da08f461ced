//! How each row ended, and the summary a batch prints.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

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
}

#[derive(Debug, Serialize)]
struct RowReport {
    row: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    reason: String,
}

/// Tally the outcomes; the exit code is the most serious one seen (see
/// [`Code::rank`]).
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
    let mut worst = |c: Code| {
        if c.rank() > code.rank() {
            code = c;
        }
    };
    for (row, outcome) in rows.iter().zip(outcomes) {
        let report = |request_id: Option<String>, reason: String| RowReport {
            row: row.id.clone(),
            request_id,
            reason,
        };
        match outcome {
            Some(Outcome::Completed { earlier, .. }) => {
                summary.completed += 1;
                summary.completed_earlier += usize::from(earlier);
            }
            Some(Outcome::Failed { request_id, reason }) => {
                worst(Code::JobFailed);
                summary.failed.push(report(request_id, reason));
            }
            Some(Outcome::Pending {
                request_id,
                reason,
                code,
            }) => {
                worst(code);
                summary.pending.push(report(Some(request_id), reason));
            }
            Some(Outcome::Unsaved {
                request_id,
                output,
                reason,
            }) => {
                worst(Code::Unsaved);
                let reason = format!(
                    "{reason}; fetch it with: {}",
                    recovery(&request_id, &output)
                );
                summary.unsaved.push(report(Some(request_id), reason));
            }
            Some(Outcome::Ambiguous { reason }) => {
                worst(Code::Network);
                summary.ambiguous.push(report(None, reason));
            }
            Some(Outcome::NotSent { reason, code }) => {
                worst(code);
                summary.not_sent.push(report(None, reason));
            }
            Some(Outcome::OutputExists { path }) => {
                let reason = format!("{} exists", path.display());
                summary.output_exists.push(report(None, reason));
            }
            None => {
                worst(Code::Network);
                summary.not_sent.push(report(None, "not run".into()));
            }
        }
    }
    (summary, code)
}

/// The summary for people.
pub fn summary_text(s: &Summary) -> String {
    let mut text = format!(
        "batch: {} rows\n  completed  {} ({} this run, {} earlier)\n  failed     {}\n  pending    {} (accepted, not collected: rerun to re-attach)\n  unsaved    {} (paid for, not saved: fetch each with the command shown)\n  ambiguous  {} (submit outcome unknown: not resubmitted; --resubmit-ambiguous sends again)\n  not sent   {} (rerun to submit)\n  skipped    {} (output file exists, not in the journal: not resubmitted; --overwrite sends again)",
        s.rows,
        s.completed,
        s.completed - s.completed_earlier,
        s.completed_earlier,
        s.failed.len(),
        s.pending.len(),
        s.unsaved.len(),
        s.ambiguous.len(),
        s.not_sent.len(),
        s.output_exists.len(),
    );
    for (title, list) in [
        ("failed rows", &s.failed),
        ("pending rows", &s.pending),
        ("unsaved rows", &s.unsaved),
        ("ambiguous rows", &s.ambiguous),
        ("rows not sent", &s.not_sent),
        ("skipped rows", &s.output_exists),
    ] {
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
    text
}
