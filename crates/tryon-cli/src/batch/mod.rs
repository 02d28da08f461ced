//! `tryon batch`: a manifest of try-ons, run with bounded concurrency,
//! resumable through the journal without ever submitting a row twice.
//!
//! The rooms: [`validate`] checks every row before anything is sent,
//! [`plan`] decides what to do with each row from the journal and the disk,
//! [`execute`] runs the plans, [`dry_run`] reports them instead, and
//! [`report`] tallies how the rows ended.

mod dry_run;
mod execute;
mod plan;
mod report;
mod validate;

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::AtomicUsize;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{BatchArgs, Cli};
use crate::commands::connect_with;
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

    let backend = connect_with(cli, args.mock, false, args.rate, Some(&args.budget)).await?;
    let (writer, events, note) = journal::open(&args.out_dir).map_err(damaged)?;
    if let Some(note) = note {
        term::err_line(&note);
    }
    let journal_path = writer.path().to_path_buf();
    let outputs: Vec<_> = prepared.iter().map(|p| p.output.clone()).collect();
    let plans = plan::plan_rows(&rows, &outputs, &events, args, journal::now_secs());
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
        client: backend.client.clone(),
        journal: writer,
        timeout: args.timeout,
        halt: OnceLock::new(),
        bar,
        lines: !terminal,
        failed: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
    });
    let rows = Arc::new(rows);
    let outcomes = execute::execute(
        &run,
        &rows,
        &Arc::new(prepared),
        plans,
        usize::from(args.concurrency),
    )
    .await;
    run.bar.finish_and_clear();
    let journal_error = run.journal.failure().map(str::to_string);
    drop(run);
    drop(backend);

    let (summary, code) = report::summarize(&rows, outcomes, journal_path, journal_error);
    emit(cli.json, &report::summary_text(&summary), &summary);
    Ok(code)
}
