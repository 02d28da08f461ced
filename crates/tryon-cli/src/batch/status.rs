//! How a row stands ([`Status`]): the one list the terminal summary counts
//! rows by and the report page files them under, with the words and the
//! rerun command both use.

use std::path::Path;

/// How a row stands, as the summary counts it and the report page files
/// it: one per [`Outcome`](super::report::Outcome)
/// ([`Outcome::status`](super::report::Outcome::status)).
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
    /// Edited since a job that has a result; not resubmitted.
    Changed,
}

impl Status {
    /// Every status, in the summary's order.
    pub const ALL: [Status; 8] = [
        Status::Completed,
        Status::Failed,
        Status::Pending,
        Status::Unsaved,
        Status::Ambiguous,
        Status::NotSent,
        Status::Skipped,
        Status::Changed,
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
            Status::Changed => "changed",
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
            Status::Changed => Some(
                "edited since a job that has a result: not resubmitted; --resubmit-changed sends again",
            ),
        }
    }

    /// Whether the summary counts it when no row stands so (an edited row
    /// is rare: its line shows only when there is one).
    pub fn counted_at_zero(self) -> bool {
        self != Status::Changed
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
            Status::Changed => Some("--resubmit-changed"),
        }
    }
}

/// Why a job accepted over an hour ago and never collected is failed.
pub const EXPIRED: &str = "accepted more than an hour ago and never collected; the service no longer keeps it (rerun with --retry-failed to submit again)";

/// What is said of rows not sent because the batch had stopped submitting
/// (after an account or local write error) before their turn.
pub const NOT_TRIED: &str = "not tried: the batch had stopped submitting for this reason";

/// What the summary's `earlier` count is.
pub const EARLIER_HELP: &str =
    "images of edited rows' earlier jobs, kept as <name>~previous-<job>.<format>";

/// The command a rerun of the batch is: `tryon batch MANIFEST --out-dir
/// DIR`, with `flag` when one is given.
pub fn rerun(manifest: &Path, out_dir: &Path, flag: &str) -> String {
    let (manifest, out_dir) = (manifest.to_string_lossy(), out_dir.to_string_lossy());
    let mut words = vec!["batch", &*manifest, "--out-dir", &*out_dir];
    if !flag.is_empty() {
        words.push(flag);
    }
    crate::term::command(&words)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::batch::report::{Kept, Outcome, RowResult, summarize, summary_text};
    use crate::exit::Code;

    #[test]
    fn changed_and_earlier_are_counted_after_skipped_and_only_when_some_row_is_so() {
        let rows = crate::manifest::parse(
            Path::new("m.csv"),
            "id,person,garments\na,https://x.test/p,https://x.test/g\nb,https://x.test/p,https://x.test/g\n",
            Path::new("."),
        )
        .unwrap();
        let done = || RowResult {
            outcome: Outcome::Completed {
                path: PathBuf::from("out/b.png"),
                earlier: false,
            },
            kept: Vec::new(),
        };
        let (plain, _) = summarize(&rows, vec![Some(done()), Some(done())], "j".into(), None);
        let text = summary_text(&plain);
        assert!(
            !text.contains("changed") && !text.contains("earlier "),
            "{text}"
        );

        let changed = RowResult {
            outcome: Outcome::Changed {
                request_id: "r-0".into(),
                changes: "seed: 1 -> 2".into(),
                earlier_output: None,
                kept: None,
            },
            kept: vec![Kept {
                request_id: "r-0".into(),
                outcome: Outcome::Completed {
                    path: PathBuf::from("out/a~previous-r-0.png"),
                    earlier: true,
                },
            }],
        };
        let (summary, code) = summarize(&rows, vec![Some(changed), Some(done())], "j".into(), None);
        assert_eq!(code, Code::Usage);
        let text = summary_text(&summary);
        let counts = format!(
            "\n  skipped    0 ({})\n  changed    1 ({})\n  earlier    1 ({EARLIER_HELP})\n",
            Status::Skipped.help().unwrap(),
            Status::Changed.help().unwrap()
        );
        assert!(text.contains(&counts), "{text}");
        assert!(
            text.contains("\nchanged rows:\n  a (r-0): changed since its job r-0: seed: 1 -> 2."),
            "{text}"
        );
        assert!(
            text.contains("\nearlier images:\n  a (r-0): kept as out/a~previous-r-0.png\n"),
            "{text}"
        );
    }
}
