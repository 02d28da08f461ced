//! `tryon batch`: a manifest of try-ons, run with bounded concurrency,
//! resumable through the journal without ever submitting a row twice.
//!
//! The rooms: [`validate`] checks every row before anything is sent,
//! [`plan`] decides what to do with each row from the journal and the disk,
//! [`execute`] runs the plans, [`dry_run`] reports them instead, and
//! [`report`] tallies how the rows ended. [`page`] fills the report page
//! (`DIR/report.html`) from the same rules, at the end of every run (see
//! [`interrupt`] for Ctrl-C) and for `tryon report DIR` ([`report_dir`]); [`record`] keeps
//! what the journal does not say about the last run.

mod dry_run;
mod execute;
mod interrupt;
mod page;
mod plan;
mod record;
mod report;
mod report_dir;
mod validate;

pub use report_dir::report_page;

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::AtomicUsize;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{BatchArgs, Cli};
use crate::commands::session_with;
use crate::exit::{CliError, Code};
use crate::journal;
use crate::manifest;
use crate::output::emit;
use crate::term;

/// `tryon batch`.
pub async fn batch(cli: &Cli, args: &BatchArgs) -> Result<Code, CliError> {
    let rows = manifest::load(&args.manifest).map_err(|e| CliError::usage(e.to_string()))?;
    let prepared = validate::validate(&args.manifest, &rows, &args.out_dir).await?;
    if args.dry_run {
        return dry_run::dry_run(cli, args, &rows, &prepared);
    }
    let damaged = |damage: journal::Damage| CliError::usage(damage.to_string());
    if args.journal_repair
        && let Some(report) = journal::repair(&args.out_dir).map_err(damaged)?
    {
        term::err_line(&report);
    }

    let session = session_with(cli, args.mock, false, args.rate).await?;
    let (writer, events, note) = journal::open(&args.out_dir).map_err(damaged)?;
    if let Some(note) = note {
        term::err_line(&note);
    }
    let journal_path = writer.path().to_path_buf();
    let outputs: Vec<_> = prepared.iter().map(|p| p.output.clone()).collect();
    let plans = plan::plan_rows(&rows, &outputs, &events, args, journal::now_secs());
    let (thumbnails, record) = page::before_run(args, &rows, &plans, &outputs);
    let work = plans
        .iter()
        .filter(|p| {
            matches!(
                p,
                plan::Plan::Submit | plan::Plan::Attach(_) | plan::Plan::Refetch(_)
            )
        })
        .count();

    let terminal = std::io::stderr().is_terminal() && !cli.json;
    let bar = if terminal {
        ProgressBar::with_draw_target(Some(work as u64), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30.cyan/blue} {pos}/{len} done · {msg} · {per_sec} · ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if !terminal && !cli.json {
        term::err_line(&format!(
            "batch: {} rows, {work} to run (concurrency {}), journal {}",
            rows.len(),
            args.concurrency,
            journal_path.display()
        ));
    }
    let run = Arc::new(execute::Run {
        client: session.client.clone(),
        journal: writer,
        timeout: args.timeout,
        halt: OnceLock::new(),
        bar,
        lines: !terminal,
        failed: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
        thumbnails: Arc::clone(&thumbnails),
    });
    let rows = Arc::new(rows);
    let signal = OnceLock::new();
    let mut outcomes = execute::execute(
        &run,
        &rows,
        &Arc::new(prepared),
        plans,
        usize::from(args.concurrency),
        async {
            let _ = signal.set(interrupt::signalled().await);
        },
    )
    .await;
    run.bar.finish_and_clear();
    let journal_error = run.journal.failure().map(str::to_string);
    // Every record durable (the writer drains its queue) before the page
    // reads the journal.
    drop(run);
    drop(session);

    let stopped_by = signal.get().copied();
    let written = page::after_run(page::Finished {
        args,
        rows: &rows,
        outputs: &outputs,
        outcomes: &mut outcomes,
        record,
        stopped_by,
        thumbnails: &thumbnails,
    })
    .await;
    let (mut summary, code) = report::summarize(&rows, outcomes, journal_path, journal_error);
    summary.report = Some(written);
    emit(cli.json, &report::summary_text(&summary), &summary);
    Ok(stopped_by.unwrap_or(code))
}
