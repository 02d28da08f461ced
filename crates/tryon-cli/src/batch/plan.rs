//! What this run does with each row, from the journal and the disk.
//!
//! A row's records are folded per fingerprint ([`journal::fold`]). Those of
//! the row as it is now (its fingerprint, or the form an older tryon wrote
//! for the same row) decide its [`Plan`] as the journal's table says.
//! Records under another fingerprint are of an earlier version: the row was
//! edited since. Such a version's paid job is never dropped:
//!
//! - its image is kept ([`Keep`]): fetched again, at no charge, into
//!   `<name>~previous-<job>.<format>` ([`names::previous`]) while the
//!   service still holds the job, when it is not on disk already;
//! - if it has a result (an image on disk, or a job still held), the edited
//!   row is not resubmitted unless `--resubmit-changed` ([`Plan::Changed`]
//!   says what changed); with the flag the earlier image at the row's
//!   output path moves to its previous name first, so the new one never
//!   replaces it;
//! - if it ended without one (failed, refused, expired, unknown outcome),
//!   the edited row is submitted with its new inputs, with a line saying
//!   what changed.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::validate::Prepared;
use crate::cli::BatchArgs;
use crate::fingerprint;
use crate::journal::{self, Event, History, RowState, Version};
use crate::manifest::Row;
use crate::names;
use crate::term;

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
    /// Accepted earlier, its status gone, its output still at the URL the
    /// account's history names: fetch it from there (no new charge).
    Recover {
        /// The job.
        request_id: String,
        /// The history's `generation_url`.
        url: String,
    },
    /// Would be submitted, but its output file is already there though the
    /// journal does not know it (`--overwrite` submits it).
    OutputExists(PathBuf),
    /// Edited since its earlier job, which has a result: not resubmitted
    /// (`--resubmit-changed` submits it).
    Changed(Changed),
}

/// An edited row not resubmitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// What changed, field by field.
    pub changes: String,
    /// The earlier job.
    pub request_id: String,
    /// The earlier image at the row's output path, if it is there.
    pub earlier_output: Option<PathBuf>,
}

/// An earlier version's image to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keep {
    /// The earlier version's fingerprint: its records are written under it.
    pub fingerprint: String,
    /// Its job.
    pub request_id: String,
    /// Where the image is kept (its previous name).
    pub to: PathBuf,
    /// The file that holds it now (the row's output path), to move; `None`:
    /// fetch it from the service.
    pub from: Option<PathBuf>,
}

/// A row's plan, the earlier images to keep first, and a line to say
/// before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowPlan {
    /// What to do with the row as it is now.
    pub plan: Plan,
    /// Earlier versions' images to keep, before the plan runs.
    pub keep: Vec<Keep>,
    /// Said before it runs (an edited row that is resubmitted).
    pub note: Option<String>,
}

/// One plan per row, in order. Outputs the journal records are looked
/// for in `args.out_dir`, the journal's folder, by their file names.
pub fn plan_rows(
    rows: &[Row],
    prepared: &[Prepared],
    events: &[Event],
    args: &BatchArgs,
    now: u64,
) -> Vec<RowPlan> {
    let histories = histories(rows, prepared, events, &args.out_dir);
    let live = |at: u64| now.saturating_sub(at) < journal::RETENTION.as_secs();
    let empty = History::default();
    rows.iter()
        .zip(prepared)
        .map(|(row, prepared)| {
            let history = histories.get(&row.id).unwrap_or(&empty);
            plan_row(row, prepared, history, args, &live)
        })
        .collect()
}

/// Each row id's [`History`], its records folded as the plan reads them:
/// those of the row as it is now ([`current`]) apart from earlier
/// versions', every recorded output looked for in `out_dir`, the
/// journal's folder, by its file name.
pub fn histories(
    rows: &[Row],
    prepared: &[Prepared],
    events: &[Event],
    out_dir: &Path,
) -> HashMap<String, History> {
    // Outputs are recorded as the run that wrote them typed --out-dir
    // (`out/r1.png`, `sub/out/r1.png`, ...); every one is in the journal's
    // folder, so it is found there by its name, whatever the spelling.
    let rebased: Vec<Event> = events
        .iter()
        .map(|event| {
            let mut event = event.clone();
            if let Some(name) = event.output.as_deref().and_then(Path::file_name) {
                event.output = Some(out_dir.join(name));
            }
            event
        })
        .collect();
    journal::fold(&rebased, current(rows, prepared))
}

/// Whether a record's `(row, fingerprint)` is of the row as it is now:
/// its fingerprint, or a form an older tryon wrote for the same row
/// ([`fingerprint::legacy_forms`]). Any other fingerprint of a row is an
/// earlier version's; a row id the manifest lacks is never current.
pub fn current<'a>(
    rows: &'a [Row],
    prepared: &'a [Prepared],
) -> impl FnMut(&str, &str) -> bool + 'a {
    let index: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let mut legacy: HashMap<usize, BTreeSet<String>> = HashMap::new();
    move |row, fingerprint| {
        let Some(&i) = index.get(row) else {
            return false;
        };
        fingerprint == prepared[i].fingerprint
            || (fingerprint.len() == 16
                && legacy
                    .entry(i)
                    .or_insert_with(|| fingerprint::legacy_forms(&rows[i]))
                    .contains(fingerprint))
    }
}

/// Whether anything (a file, a folder, a link) is at `path`.
pub fn on_disk(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// An earlier version that has a result.
struct Held<'a> {
    version: &'a Version,
    request_id: &'a str,
    /// Its image at the row's output path (to move before resubmitting).
    at_output: Option<&'a Path>,
}

fn plan_row(
    row: &Row,
    prepared: &Prepared,
    history: &History,
    args: &BatchArgs,
    live: &dyn Fn(u64) -> bool,
) -> RowPlan {
    let mut keep = Vec::new();
    let mut held: Option<Held<'_>> = None;
    for version in &history.earlier {
        let (request_id, at, output) = match &version.state {
            Some(RowState::Live { request_id, at }) => (request_id, *at, None),
            Some(RowState::Completed {
                output,
                request_id,
                at,
            }) => (request_id, *at, Some(output.as_path())),
            _ => continue,
        };
        let to = previous_path(prepared, version, request_id);
        // Its image is at its recorded output while that file is its (a
        // later version may have written there since), else at its
        // previous name (kept by an earlier run).
        let at_output = output.filter(|o| history.owns(o, &version.fingerprint) && on_disk(o));
        if at_output.is_none() && !on_disk(&to) {
            if !live(at) {
                continue; // gone: the service no longer holds it
            }
            keep.push(Keep {
                fingerprint: version.fingerprint.clone(),
                request_id: request_id.clone(),
                to,
                from: None,
            });
        }
        held = Some(Held {
            version,
            request_id,
            at_output: at_output.filter(|o| *o == prepared.output),
        });
    }
    let mut note = None;
    let plan = match (&history.current, history.earlier.last()) {
        (Some(state), _) => plan_of(state, args, live),
        (None, None) => Plan::Submit,
        (None, Some(last)) => {
            let id = term::inline(&row.id);
            match held {
                None => {
                    let changes =
                        fingerprint::describe_changes(last.inputs.as_ref(), &prepared.inputs);
                    note = Some(format!(
                        "row {id}: changed since its earlier job, which {} ({}): submitting the new inputs",
                        ended(last.state.as_ref()),
                        term::inline(&changes)
                    ));
                    Plan::Submit
                }
                Some(held) if args.resubmit_changed => {
                    let changes = fingerprint::describe_changes(
                        held.version.inputs.as_ref(),
                        &prepared.inputs,
                    );
                    let to = previous_path(prepared, held.version, held.request_id);
                    if let Some(from) = held.at_output {
                        keep.push(Keep {
                            fingerprint: held.version.fingerprint.clone(),
                            request_id: held.request_id.to_string(),
                            to: to.clone(),
                            from: Some(from.to_path_buf()),
                        });
                    }
                    note = Some(format!(
                        "row {id}: changed since its job {} ({}): submitting the new inputs (--resubmit-changed); \
                         the earlier image is kept as {}",
                        term::inline(held.request_id),
                        term::inline(&changes),
                        to.display()
                    ));
                    Plan::Submit
                }
                Some(held) => Plan::Changed(Changed {
                    changes: fingerprint::describe_changes(
                        held.version.inputs.as_ref(),
                        &prepared.inputs,
                    ),
                    request_id: held.request_id.to_string(),
                    earlier_output: held.at_output.map(Path::to_path_buf),
                }),
            }
        }
    };
    // A file the journal does not account for may be a paid result from a
    // run whose journal was lost: never pay for it again unasked. For a row
    // with an unproven submit it is the proof the submit went through, so
    // it is no longer ambiguous. (An earlier version's image about to be
    // moved away is accounted for.)
    let output = &prepared.output;
    let moving = keep.iter().any(|k| k.from.as_ref() == Some(output));
    let unproven = matches!(plan, Plan::Submit | Plan::Ambiguous(_));
    let plan = if unproven && on_disk(output) && !moving && !args.overwrite {
        Plan::OutputExists(output.clone())
    } else {
        plan
    };
    RowPlan { plan, keep, note }
}

/// How an earlier version that left no result ended, for a message.
fn ended(state: Option<&RowState>) -> &'static str {
    match state {
        None => "the service refused",
        Some(RowState::Failed { .. }) => "failed",
        Some(RowState::Ambiguous { .. }) => {
            "has an unknown outcome (it may have been billed; nothing can be fetched)"
        }
        Some(RowState::Live { .. } | RowState::Completed { .. }) => {
            "the service no longer holds (accepted over an hour ago)"
        }
    }
}

/// The plan for a row's current state (see the journal's table).
fn plan_of(state: &RowState, args: &BatchArgs, live: &dyn Fn(u64) -> bool) -> Plan {
    match state {
        RowState::Completed {
            output,
            request_id,
            at,
        } => {
            if !on_disk(output) && live(*at) {
                Plan::Refetch(request_id.clone())
            } else {
                Plan::Done(output.clone())
            }
        }
        RowState::Failed { .. } if args.retry_failed => Plan::Submit,
        RowState::Failed { reason } => Plan::Failed(reason.clone()),
        RowState::Ambiguous { .. } if args.resubmit_ambiguous => Plan::Submit,
        RowState::Ambiguous { reason } => Plan::Ambiguous(reason.clone()),
        RowState::Live { request_id, at } => {
            if live(*at) {
                Plan::Attach(request_id.clone())
            } else {
                Plan::Expired(request_id.clone())
            }
        }
    }
}

/// Where an earlier version's image is kept: beside the row's output,
/// under [`names::previous`], with the earlier format's extension.
fn previous_path(prepared: &Prepared, version: &Version, request_id: &str) -> PathBuf {
    let output = &prepared.output;
    let name = output
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let earlier_format = version
        .inputs
        .as_ref()
        .and_then(|i| i.get("format"))
        .and_then(|f| f.as_str())
        .and_then(|f| f.parse::<tryon_client::Format>().ok());
    let name = match (earlier_format, name.rsplit_once('.')) {
        (Some(format), Some((stem, _))) => format!("{stem}.{}", format.extension()),
        _ => name,
    };
    output.with_file_name(names::previous(&name, request_id))
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
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

    /// Rows `a`..`g` (URL images, seed `seed`) prepared to write in `dir`.
    async fn rows(dir: &Path, seed: u64) -> (Vec<Row>, Vec<Prepared>) {
        let mut csv = String::from("id,person,garments,seed\n");
        for id in ["a", "b", "c", "d", "e", "f", "g"] {
            let _ = writeln!(csv, "{id},https://x.test/p,https://x.test/g,{seed}");
        }
        let rows = manifest::parse(Path::new("m.csv"), &csv, Path::new(".")).unwrap();
        let mut prepared = Vec::new();
        for row in &rows {
            let request = row.fields().unwrap().build().unwrap();
            let checked = request.preflight().await.unwrap();
            let output = dir.join(format!("{}.png", row.id));
            prepared.push(Prepared::new(row, request, &checked, output));
        }
        (rows, prepared)
    }

    /// Batch arguments writing to the folder of `prepared`'s outputs.
    fn args_for(prepared: &[Prepared], extra: &[&str]) -> BatchArgs {
        let dir = prepared[0].output.parent().unwrap().display().to_string();
        let mut all = vec!["--out-dir", dir.as_str()];
        all.extend_from_slice(extra);
        args(&all)
    }

    fn plans(
        rows: &[Row],
        prepared: &[Prepared],
        events: &[Event],
        extra: &[&str],
        now: u64,
    ) -> Vec<Plan> {
        plan_rows(rows, prepared, events, &args_for(prepared, extra), now)
            .into_iter()
            .map(|p| p.plan)
            .collect()
    }

    #[tokio::test]
    async fn plans_follow_the_journal_and_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (rows, prepared) = rows(dir.path(), 1).await;
        let outputs: Vec<PathBuf> = prepared.iter().map(|p| p.output.clone()).collect();
        std::fs::write(&outputs[5], b"an image from a lost run").unwrap();
        std::fs::write(dir.path().join("c.png"), b"saved").unwrap();
        let c_png = dir.path().join("c.png");
        let now = 10_000;
        let at = |event: Event, at: u64| Event { at, ..event };
        let event = |kind, i: usize| Event::new(kind, &rows[i].id, &prepared[i].fingerprint);
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
        let plans_now = plans(&rows, &prepared, &events, &[], now);
        assert_eq!(plans_now[0], Plan::Attach("live".into()));
        assert_eq!(plans_now[1], Plan::Expired("old".into()));
        assert_eq!(plans_now[2], Plan::Done(c_png.clone()));
        assert_eq!(
            plans_now[6],
            Plan::Refetch("lost".into()),
            "a lost file is fetched again"
        );
        assert!(matches!(plans_now[3], Plan::Ambiguous(_)));
        assert_eq!(plans_now[4], Plan::Submit, "a refused submit is sent again");
        assert_eq!(plans_now[5], Plan::OutputExists(outputs[5].clone()));
        let asked = plans(
            &rows,
            &prepared,
            &events,
            &["--resubmit-ambiguous", "--overwrite"],
            now,
        );
        assert_eq!(asked[3], Plan::Submit);
        assert_eq!(asked[5], Plan::Submit);
    }

    #[tokio::test]
    async fn an_edited_row_keeps_its_earlier_job_and_is_resubmitted_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let (rows, before) = rows(dir.path(), 1).await;
        let (_, after) = rows_again(dir.path()).await;
        let now = 10_000;
        let a_png = dir.path().join("a.png");
        std::fs::write(&a_png, b"the image of seed 1").unwrap();
        let event = |kind, i: usize| Event::new(kind, &rows[i].id, &before[i].fingerprint);
        let events = vec![
            // a: completed with seed 1; b: accepted, not collected; c:
            // failed; d: accepted over an hour ago.
            event(Kind::Submitting, 0).inputs(before[0].inputs.to_value()),
            event(Kind::Submitted, 0).request_id("11111111-a"),
            event(Kind::Completed, 0)
                .request_id("11111111-a")
                .output(&a_png, 19),
            event(Kind::Submitted, 1).request_id("22222222-b"),
            event(Kind::Failed, 2).reason("no person"),
            Event {
                at: now - 3_700,
                ..event(Kind::Submitted, 3).request_id("33333333-d")
            },
        ];
        let plans = plan_rows(&rows, &after, &events, &args_for(&after, &[]), now);
        let Plan::Changed(changed) = &plans[0].plan else {
            panic!("{:?}", plans[0])
        };
        assert_eq!(changed.changes, "seed: 1 -> 2");
        assert_eq!(changed.earlier_output.as_deref(), Some(a_png.as_path()));
        assert!(plans[0].keep.is_empty(), "its image is on disk");
        assert!(matches!(plans[1].plan, Plan::Changed(_)), "{:?}", plans[1]);
        assert_eq!(
            plans[1].keep,
            [Keep {
                fingerprint: before[1].fingerprint.clone(),
                request_id: "22222222-b".into(),
                to: dir.path().join("b~previous-22222222.png"),
                from: None,
            }],
            "the earlier job is fetched, at no charge"
        );
        assert_eq!(
            plans[2].plan,
            Plan::Submit,
            "a failed job has nothing to keep"
        );
        assert!(
            plans[2]
                .note
                .as_deref()
                .unwrap_or_default()
                .contains("which failed")
        );
        assert_eq!(plans[3].plan, Plan::Submit, "nor does an expired one");

        let asked = plan_rows(
            &rows,
            &after,
            &events,
            &args_for(&after, &["--resubmit-changed"]),
            now,
        );
        assert_eq!(asked[0].plan, Plan::Submit, "not taken for an unknown file");
        assert_eq!(
            asked[0].keep,
            [Keep {
                fingerprint: before[0].fingerprint.clone(),
                request_id: "11111111-a".into(),
                to: dir.path().join("a~previous-11111111.png"),
                from: Some(a_png.clone()),
            }],
            "the earlier image moves out of the way first"
        );
        assert_eq!(asked[1].plan, Plan::Submit);
    }

    async fn rows_again(dir: &Path) -> (Vec<Row>, Vec<Prepared>) {
        rows(dir, 2).await
    }
}
