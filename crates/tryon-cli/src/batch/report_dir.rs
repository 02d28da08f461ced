//! `tryon report DIR`: a batch's report page again, from its journal and
//! its files alone. No client is built (no network, no key). The rows are
//! checked as a run checks them (local images read and hashed: a row's
//! journal records are found by what it sends). The journal
//! is read without a lock, so a running batch is never in its way: records
//! are whole lines appended one at a time (a torn last one is left out),
//! so the read is a consistent snapshot, and the page says a batch is
//! running.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::page::{Sources, build, settle};
use super::record::RunRecord;
use super::report::RowResult;
use super::status::Status;
use crate::cli::{BatchArgs, Cli, Command, ReportArgs};
use crate::exit::{CliError, Code};
use crate::journal;
use crate::manifest;
use crate::output::emit;
use crate::report::{self, Thumbnailer};
use crate::term;

/// The arguments of a plain rerun, `tryon batch MANIFEST --out-dir DIR`:
/// what the report's plans assume (and the defaults it prices with).
fn rerun_args(manifest: &Path, dir: &Path) -> Result<BatchArgs, CliError> {
    let mut out_dir = OsString::from("--out-dir=");
    out_dir.push(dir);
    let words: [OsString; 5] = [
        "tryon".into(),
        "batch".into(),
        out_dir,
        "--".into(),
        manifest.into(),
    ];
    match clap::Parser::try_parse_from(words) {
        Ok(Cli {
            command: Command::Batch(args),
            ..
        }) => Ok(args),
        Ok(_) => Err(CliError::usage("not a batch")),
        Err(e) => Err(CliError::usage(e.to_string())),
    }
}

#[derive(Debug, Serialize)]
struct Written<'a> {
    report: &'a Path,
    rows: usize,
    statuses: HashMap<&'static str, usize>,
}

/// What the folder holds for a report: the last run's record (and notes
/// on what is odd), the manifest it ran, and the journal's records.
struct Found {
    record: Option<RunRecord>,
    manifest: PathBuf,
    events: Vec<journal::Event>,
    notes: Vec<String>,
}

fn find(args: &ReportArgs) -> Result<Found, CliError> {
    let dir = &args.dir;
    let journal = journal::path_in(dir);
    if !journal.exists() {
        return Err(CliError::usage(format!(
            "{}: no batch journal ({} is missing); give the folder a `tryon batch` wrote to (its --out-dir)",
            dir.display(),
            journal::FILE_NAME
        )));
    }
    let mut notes = Vec::new();
    let record = RunRecord::read(dir).unwrap_or_else(|why| {
        notes.push(format!("the last run's record is unreadable: {why}"));
        None
    });
    let manifest = match (&args.manifest, &record) {
        (Some(path), _) => path.clone(),
        (None, Some(record)) => record.manifest.clone(),
        (None, None) => {
            return Err(CliError::usage(format!(
                "{}: no run record says which manifest this batch ran; give it with --manifest FILE",
                dir.display()
            )));
        }
    };
    let events = journal::read(dir)
        .map_err(|damage| CliError::usage(format!("cannot write the report: {damage}")))?;
    if journal::in_use(dir) {
        notes.push(
            "A `tryon batch` is running in this folder: this page is a snapshot of its journal, \
             and rows in flight show as pending or ambiguous. Its own page replaces this one when it ends."
                .to_string(),
        );
    } else if record.as_ref().is_some_and(|r| r.finished.is_none()) {
        notes.push(
            "The last run never finished (it was killed, or the machine stopped): rows it had in \
             flight stand as the journal left them. Rerun the batch to go on."
                .to_string(),
        );
    }
    Ok(Found {
        record,
        manifest,
        events,
        notes,
    })
}

/// `tryon report DIR` (see the module docs).
pub async fn report_page(cli: &Cli, args: &ReportArgs) -> Result<Code, CliError> {
    let dir = &args.dir;
    let found = find(args)?;
    // The manifest's path may come from the folder's run record: `load`
    // reads only a regular file, bounded.
    let rows = manifest::load(&found.manifest).map_err(|e| CliError::usage(e.to_string()))?;
    let defaults = rerun_args(&found.manifest, dir)?;
    let recorded = found.record.as_ref();
    // The page's commands name the service the batch ran against, unless
    // this command was told another.
    if let Some(record) = recorded
        && term::global_flags().is_empty()
    {
        term::use_global_flags(record.global_flags.clone());
    }
    let prices = (
        args.price_first
            .or(recorded.map(|r| r.price_first))
            .unwrap_or(defaults.price_first),
        args.price_extra
            .or(recorded.map(|r| r.price_extra))
            .unwrap_or(defaults.price_extra),
    );
    let terminal = std::io::stderr().is_terminal() && !cli.json;
    let prepared = super::check(cli, &defaults, &rows, terminal).await?;
    let mut results: Vec<Option<RowResult>> = rows.iter().map(|_| None).collect();
    settle(&mut results, &rows, &prepared, &found.events, &defaults);
    let not_run = RowResult::not_run();
    let results: Vec<&RowResult> = results
        .iter()
        .map(|r| r.as_ref().unwrap_or(&not_run))
        .collect();
    let page = build(&Sources {
        out_dir: dir,
        manifest: &found.manifest,
        rows: &rows,
        prepared: &prepared,
        results: &results,
        events: &found.events,
        record: recorded,
        prices,
        notes: found.notes.clone(),
    });
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let thumbnails = Thumbnailer::start(dir, workers);
    let path = report::write(dir, &page, &thumbnails)
        .await
        .map_err(|why| CliError::new(Code::Unsaved, format!("cannot write the report: {why}")))?;
    let mut statuses = HashMap::new();
    for result in &results {
        *statuses.entry(result.outcome.status().name()).or_default() += 1;
    }
    let counts: Vec<String> = Status::ALL
        .iter()
        .filter_map(|s| statuses.get(s.name()).map(|n| format!("{n} {}", s.name())))
        .collect();
    emit(
        cli.json,
        &format!(
            "report: {} ({} rows: {})",
            path.display(),
            rows.len(),
            counts.join(", ")
        ),
        &Written {
            report: &path,
            rows: rows.len(),
            statuses,
        },
    );
    Ok(Code::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_rerun_parses_odd_paths_as_paths() {
        let args = rerun_args(Path::new("-m.csv"), Path::new("-out dir")).unwrap();
        assert_eq!(args.manifest, Path::new("-m.csv"));
        assert_eq!(args.out_dir, Path::new("-out dir"));
        assert!(!args.retry_failed && !args.resubmit_ambiguous && !args.overwrite);
    }
}
