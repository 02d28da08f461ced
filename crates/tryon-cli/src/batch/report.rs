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

/// Tally the outcomes; the exit code is the most serious one seen (see
/// [`Code::rank`]).
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
        let report = |request_id: Option<String>, reason: String| RowReport {
            row: row.id.clone(),
            request_id,
            reason,
            stopped: false,
        };
        let Some(RowResult { outcome, kept }) = result else {
            worst(Code::Network);
            summary.not_sent.push(report(None, "not run".into()));
            continue;
        };
        for kept in kept {
            let (reason, kept_code) = kept_reason(kept.outcome, &kept.request_id);
            worst(kept_code);
            summary.kept.push(report(Some(kept.request_id), reason));
        }
        match outcome {
            Outcome::Completed { earlier, .. } => {
                summary.completed += 1;
                summary.completed_earlier += usize::from(earlier);
            }
            Outcome::Failed { request_id, reason } => {
                worst(Code::JobFailed);
                summary.failed.push(report(request_id, reason));
            }
            Outcome::Pending {
                request_id,
                reason,
                code,
            } => {
                worst(code);
                summary.pending.push(report(Some(request_id), reason));
            }
            Outcome::Unsaved {
                request_id,
                output,
                reason,
            } => {
                worst(Code::Unsaved);
                let reason = format!(
                    "{reason}; fetch it with: {}",
                    recovery(&request_id, &output)
                );
                summary.unsaved.push(report(Some(request_id), reason));
            }
            Outcome::Ambiguous { reason } => {
                worst(Code::Network);
                summary.ambiguous.push(report(None, reason));
            }
            Outcome::NotSent {
                reason,
                code,
                stopped,
            } => {
                worst(code);
                summary.not_sent.push(RowReport {
                    stopped,
                    ..report(None, reason)
                });
            }
            Outcome::OutputExists { path } => {
                let reason = format!("{} exists", path.display());
                summary.output_exists.push(report(None, reason));
            }
            Outcome::Changed {
                request_id,
                changes,
                earlier_output,
                kept,
            } => {
                worst(Code::Usage);
                let reason = changed_text(
                    &request_id,
                    &changes,
                    earlier_output.as_deref(),
                    kept.as_deref(),
                );
                summary.changed.push(report(Some(request_id), reason));
            }
        }
    }
    (summary, code)
}

/// What became of an earlier image to keep, and the exit code it calls
/// for.
fn kept_reason(outcome: Outcome, request_id: &str) -> (String, Code) {
    match outcome {
        Outcome::Completed { path, .. } => (format!("kept as {}", path.display()), Code::Ok),
        Outcome::Pending { reason, code, .. } => (
            format!("not collected ({reason}); rerun to collect it"),
            code,
        ),
        Outcome::Unsaved { output, reason, .. } => (
            format!("{reason}; fetch it with: {}", recovery(request_id, &output)),
            Code::Unsaved,
        ),
        Outcome::Failed { reason, .. } => (format!("the earlier job failed: {reason}"), Code::Ok),
        other => (format!("{other:?}"), Code::Ok),
    }
}

/// At most this many row ids are listed for one reason shared by several.
const LISTED: usize = 20;

/// The summary for people. Rows that ended for the same reason are said
/// once, with their count and ids (the JSON summary lists every row).
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
    if !s.changed.is_empty() {
        let _ = write!(
            text,
            "\n  changed    {} (edited since a job that has a result: not resubmitted; --resubmit-changed sends again)",
            s.changed.len()
        );
    }
    if !s.kept.is_empty() {
        let _ = write!(
            text,
            "\n  earlier    {} (images of edited rows' earlier jobs, kept as <name>~previous-<job>.<format>)",
            s.kept.len()
        );
    }
    for (title, list) in [
        ("failed rows", &s.failed),
        ("pending rows", &s.pending),
        ("unsaved rows", &s.unsaved),
        ("ambiguous rows", &s.ambiguous),
        ("rows not sent", &s.not_sent),
        ("skipped rows", &s.output_exists),
        ("changed rows", &s.changed),
        ("earlier images", &s.kept),
    ] {
        if !list.is_empty() {
            let _ = write!(text, "\n{title}:");
            write_grouped(&mut text, list);
        }
    }
    let _ = write!(text, "\njournal: {}", s.journal.display());
    if let Some(error) = &s.journal_error {
        let _ = write!(text, " (writing it stopped: {})", term::inline(error));
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
            n if n == members.len() => {
                " (not tried: the batch had stopped submitting for this reason)".into()
            }
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
