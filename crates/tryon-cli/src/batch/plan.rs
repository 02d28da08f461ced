//! What this run does with each row, from the journal and the disk.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::cli::BatchArgs;
use crate::journal::{self, Event, RowState};
use crate::manifest::Row;

/// What this run does with a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Never (successfully) sent: submit it.
    Submit,
    /// Accepted earlier and still within retention: wait on this id.
    Attach(String),
    /// Nothing to do: it finished in an earlier run.
    Done(PathBuf),
    /// It finished in an earlier run, but its file is gone: fetch the
    /// image again from this id (no new charge).
    Refetch(String),
    /// It failed in an earlier run (`--retry-failed` submits it again).
    Failed(String),
    /// An earlier submit's outcome is unknown (`--resubmit-ambiguous`).
    Ambiguous(String),
    /// Accepted earlier but older than the retention: its result is gone.
    Expired(String),
    /// Would be submitted, but its output file is already there though the
    /// journal does not know it (`--overwrite` submits it).
    OutputExists(PathBuf),
}

/// One plan per row, in order. `outputs[i]` is where row `i`'s image goes.
pub fn plan_rows(
    rows: &[Row],
    outputs: &[PathBuf],
    events: &[Event],
    args: &BatchArgs,
    now: u64,
) -> Vec<Plan> {
    let fingerprints: HashMap<String, String> = rows
        .iter()
        .map(|r| (r.id.clone(), r.fingerprint()))
        .collect();
    let states = journal::fold(events, &fingerprints);
    let live = |at: u64| now.saturating_sub(at) < journal::RETENTION.as_secs();
    rows.iter()
        .zip(outputs)
        .map(|(row, output)| {
            let plan = match states.get(&row.id) {
                None => Plan::Submit,
                Some(RowState::Completed {
                    output,
                    request_id,
                    at,
                }) => {
                    if std::fs::symlink_metadata(output).is_err() && live(*at) {
                        Plan::Refetch(request_id.clone())
                    } else {
                        Plan::Done(output.clone())
                    }
                }
                Some(RowState::Failed { .. }) if args.retry_failed => Plan::Submit,
                Some(RowState::Failed { reason }) => Plan::Failed(reason.clone()),
                Some(RowState::Ambiguous { .. }) if args.resubmit_ambiguous => Plan::Submit,
                Some(RowState::Ambiguous { reason }) => Plan::Ambiguous(reason.clone()),
                Some(RowState::Live { request_id, at }) => {
                    if live(*at) {
                        Plan::Attach(request_id.clone())
                    } else {
                        Plan::Expired(request_id.clone())
                    }
                }
            };
            // A file the journal does not account for may be a paid result
            // from a run whose journal was lost: never pay for it again
            // unasked. For a row with an unproven submit it is the proof
            // the submit went through, so it is no longer ambiguous.
            let exists = std::fs::symlink_metadata(output).is_ok();
            let unproven = matches!(plan, Plan::Submit | Plan::Ambiguous(_));
            if unproven && exists && !args.overwrite {
                Plan::OutputExists(output.clone())
            } else {
                plan
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser as _;

    use super::*;
    use crate::cli::Cli;
    use crate::journal::Kind;
    use crate::manifest;

    pub(crate) fn args(extra: &[&str]) -> BatchArgs {
        let mut argv = vec!["tryon", "batch", "m.csv"];
        argv.extend_from_slice(extra);
        match Cli::parse_from(argv).command {
            crate::cli::Command::Batch(b) => b,
            other => panic!("{other:?}"),
        }
    }

    fn rows() -> Vec<Row> {
        let mut csv = String::from("id,person,garments\n");
        for id in ["a", "b", "c", "d", "e", "f", "g"] {
            csv.push_str(id);
            csv.push_str(",https://x.test/p,https://x.test/g\n");
        }
        manifest::parse(Path::new("m.csv"), &csv, Path::new(".")).unwrap()
    }

    #[test]
    fn plans_follow_the_journal_and_the_disk() {
        let rows = rows();
        let dir = tempfile::tempdir().unwrap();
        let outputs: Vec<PathBuf> = rows
            .iter()
            .map(|r| dir.path().join(format!("{}.png", r.id)))
            .collect();
        std::fs::write(&outputs[5], b"an image from a lost run").unwrap();
        std::fs::write(dir.path().join("c.png"), b"saved").unwrap();
        let c_png = dir.path().join("c.png");
        let now = 10_000;
        let at = |event: Event, at: u64| Event { at, ..event };
        let event = |kind, i: usize| Event::new(kind, &rows[i].id, &rows[i].fingerprint());
        let events = vec![
            at(event(Kind::Submitted, 0).request_id("live"), now - 60),
            at(event(Kind::Submitted, 1).request_id("old"), now - 3_700),
            event(Kind::Submitted, 2).request_id("done"),
            event(Kind::Completed, 2)
                .request_id("done")
                .output(&c_png, 1),
            event(Kind::Submitted, 6).request_id("lost"),
            event(Kind::Completed, 6)
                .request_id("lost")
                .output(&dir.path().join("gone.png"), 1),
            event(Kind::Submitting, 3),
            event(Kind::Submitting, 4),
            event(Kind::Rejected, 4).reason("406"),
        ];
        let plans = plan_rows(&rows, &outputs, &events, &args(&[]), now);
        assert_eq!(plans[0], Plan::Attach("live".into()));
        assert_eq!(plans[1], Plan::Expired("old".into()));
        assert_eq!(plans[2], Plan::Done(c_png.clone()));
        assert_eq!(
            plans[6],
            Plan::Refetch("lost".into()),
            "a lost file is fetched again"
        );
        assert!(matches!(plans[3], Plan::Ambiguous(_)));
        assert_eq!(plans[4], Plan::Submit, "a refused submit is sent again");
        assert_eq!(plans[5], Plan::OutputExists(outputs[5].clone()));
        let plans = plan_rows(
            &rows,
            &outputs,
            &events,
            &args(&["--resubmit-ambiguous", "--overwrite"]),
            now,
        );
        assert_eq!(plans[3], Plan::Submit);
        assert_eq!(plans[5], Plan::Submit);
    }
}
