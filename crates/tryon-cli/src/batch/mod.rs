//! `tryon batch`: a manifest of try-ons, run with bounded concurrency,
//! resumable through the journal without ever submitting a row twice.
//!
//! The rooms: [`validate`] checks every row before anything is sent,
//! [`plan`] decides what to do with each row from the journal and the disk,
//! [`execute`] runs the plans (saying what it does through [`lines`]),
//! [`dry_run`] reports them instead, and [`report`] tallies how the rows
//! ended, by [`status`]. [`page`] fills the report page
//! (`DIR/report.html`) from the same rules, at the end of every run (see
//! [`interrupt`] for Ctrl-C) and for `tryon report DIR` ([`report_dir`]);
//! [`record`] keeps what the journal does not say about the last run.

mod dry_run;
mod execute;
mod interrupt;
mod lines;
mod page;
mod plan;
mod record;
mod report;
mod report_dir;
mod settle;
mod spend;
mod status;
mod validate;

pub use report_dir::report_page;

use std::io::IsTerminal as _;
use std::sync::{Arc, OnceLock};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{BatchArgs, Cli};
use crate::commands::connect_with;
use crate::exit::{CliError, Code};
use crate::journal;
use crate::manifest;
use crate::output::{Throttle, emit};
use crate::term;

/// In lines mode, how often checking a long manifest says how far it got.
const CHECKING_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// `tryon batch`.
pub async fn batch(cli: &Cli, args: &BatchArgs) -> Result<Code, CliError> {
    let rows = manifest::load(&args.manifest).map_err(|e| CliError::usage(e.to_string()))?;
    let terminal = std::io::stderr().is_terminal() && !cli.json;
    let prepared = check(cli, args, &rows, terminal).await?;
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
    let plans = plan_and_settle(&backend.client, &writer, args, &rows, &prepared, &events).await?;
    let work = dry_run::to_run(&plans);
    let (thumbnails, record) = page::before_run(args, &rows, &prepared, &plans);

    let bar = progress_bar(
        terminal,
        work,
        "{bar:30.cyan/blue} {pos}/{len} done · {msg} · {per_sec} · ETA {eta}",
    );
    if !cli.json {
        if !terminal {
            term::err_line(&format!(
                "batch: {} rows, {work} to run (concurrency {}), journal {}",
                rows.len(),
                args.concurrency,
                journal_path.display()
            ));
        }
        for line in dry_run::pacing(args, work) {
            term::err_line(&line);
        }
    }
    let run = Arc::new(execute::Run::new(
        backend.client.clone(),
        writer,
        args.timeout,
        bar,
        !terminal,
        Arc::clone(&thumbnails),
        spend::Spend::new(args.max_spend, (args.price_first, args.price_extra)),
    ));
    let rows = Arc::new(rows);
    let prepared = Arc::new(prepared);
    let signal = OnceLock::new();
    let mut results = execute::execute(
        &run,
        &rows,
        &prepared,
        plans,
        usize::from(args.concurrency),
        async {
            let _ = signal.set(interrupt::signalled().await);
        },
    )
    .await;
    run.bar.finish_and_clear();
    let journal_error = run.journal.failure().map(str::to_string);
    let spend = spend::spent(&run.client, &run.spend, args).await;
    // Every record durable (the writer drains its queue) before the page
    // reads the journal.
    drop(run);
    drop(backend);

    let stopped_by = signal.get().copied();
    let written = page::after_run(page::Finished {
        args,
        rows: &rows,
        prepared: &prepared,
        results: &mut results,
        record,
        stopped_by,
        thumbnails: &thumbnails,
    })
    .await;
    let (mut summary, code) = report::summarize(&rows, results, journal_path, journal_error);
    summary.report = Some(written);
    summary.spend = spend;
    emit(cli.json, &report::summary_text(&summary), &summary);
    Ok(stopped_by.unwrap_or(code))
}

/// The run's `started` record, each row's plan, what the account's
/// history settles of them, and the balance check before anything is
/// sent.
async fn plan_and_settle(
    client: &tryon_client::Client,
    writer: &journal::Writer,
    args: &BatchArgs,
    rows: &[manifest::Row],
    prepared: &[validate::Prepared],
    events: &[journal::Event],
) -> Result<Vec<plan::RowPlan>, CliError> {
    writer
        .append(journal::Event::new(journal::Kind::Started, "", ""))
        .await
        .map_err(|e| CliError::new(crate::exit::Code::Unsaved, e))?;
    let now = journal::now_secs();
    let mut plans = plan::plan_rows(rows, prepared, events, args, now);
    let batch = settle::Batch {
        client,
        journal: writer,
        rows,
        prepared,
        events,
        args,
        now,
    };
    for line in batch.settle(&mut plans).await {
        term::err_line(&line);
    }
    balance(client, args, &plans, prepared).await?;
    Ok(plans)
}

/// Before the first submit: the estimate of the rows to send (at most
/// `--max-spend`) against the account's balance, credits and free credits
/// together. Short: refused before anything is sent (exit 3), naming both
/// figures, unless `--ignore-balance`. A balance that cannot be read is
/// said, and the batch goes on (the service refuses a job it cannot bill
/// with 406, which stops new submits).
async fn balance(
    client: &tryon_client::Client,
    args: &BatchArgs,
    plans: &[plan::RowPlan],
    prepared: &[validate::Prepared],
) -> Result<(), CliError> {
    let estimate = dry_run::cost_to_submit(plans, prepared, args);
    let needed = args.max_spend.map_or(estimate, |cap| cap.min(estimate));
    if needed <= 0.0 || args.ignore_balance || !spend::advisory_reads(client) {
        return Ok(());
    }
    match client.credits().await {
        Ok(credits) if credits.total() + 1e-9 < needed => Err(CliError::new(
            crate::exit::Code::Auth,
            format!(
                "the account's balance is ${:.4} (credits ${:.4} + free credits ${:.4}), below the ${needed:.4} \
             estimate of the rows to send{}; nothing was sent (--ignore-balance sends anyway)",
                credits.total(),
                credits.credits,
                credits.free_credits,
                if needed < estimate {
                    format!(" (the --max-spend cap; all of them: ${estimate:.4})")
                } else {
                    String::new()
                }
            ),
        )),
        Ok(_) => Ok(()),
        // A refused key is said once, by the first submit's answer.
        Err(e) if crate::exit::code_of(&e) == crate::exit::Code::Auth => Ok(()),
        Err(e) => {
            term::err_line(&format!(
                "batch: the account's balance could not be read ({e}); going on"
            ));
            Ok(())
        }
    }
}

/// A bar of `len` steps drawn on stderr with `template` on a terminal;
/// hidden otherwise.
fn progress_bar(terminal: bool, len: usize, template: &str) -> ProgressBar {
    let bar = if terminal {
        ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Validate every row, showing how far it got: a bar on a terminal, else
/// a line every [`CHECKING_EVERY`] (100 000 rows with local images take
/// over a minute: each image is read, checked and hashed).
async fn check(
    cli: &Cli,
    args: &BatchArgs,
    rows: &[manifest::Row],
    terminal: bool,
) -> Result<Vec<validate::Prepared>, CliError> {
    let total = rows.len();
    let bar = progress_bar(
        terminal,
        total,
        "checking rows {bar:30.cyan/blue} {pos}/{len} (local images read and checked before anything is sent) · ETA {eta}",
    );
    let every = Throttle::new(CHECKING_EVERY);
    let quiet = cli.json || terminal;
    let progress = |n: usize| {
        bar.set_position(n as u64);
        if !quiet && every.due() {
            term::err_line(&format!(
                "batch: checked {n} of {total} rows (local images are read and checked before anything is sent)"
            ));
        }
    };
    let prepared = validate::validate(&args.manifest, rows, &args.out_dir, &progress).await;
    bar.finish_and_clear();
    prepared
}
