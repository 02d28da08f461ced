//! `--dry-run`: what a run would do and cost; sends and writes nothing.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::plan::{Plan, RowPlan, plan_rows};
use super::validate::Prepared;
use crate::cli::{BatchArgs, Cli, show_duration};
use crate::exit::{CliError, Code};
use crate::journal;
use crate::manifest::Row;
use crate::output::emit;

#[derive(Debug, Serialize)]
struct DryRun {
    rows: usize,
    jobs_to_submit: usize,
    garments_to_submit: usize,
    already_done: usize,
    to_reattach: usize,
    output_exists: usize,
    /// Edited rows not resubmitted (`--resubmit-changed`).
    changed: usize,
    /// Earlier jobs of edited rows whose images are fetched (no charge).
    earlier_to_fetch: usize,
    estimated_cost_usd: f64,
    price_first_garment_usd: f64,
    price_extra_garment_usd: f64,
}

/// The estimate of every row the plans submit, in USD.
pub fn cost_to_submit(plans: &[RowPlan], prepared: &[Prepared], args: &BatchArgs) -> f64 {
    // A fold from +0.0: `Sum` for floats starts at -0.0, which prints as
    // `$-0.000` when there is nothing to submit.
    plans
        .iter()
        .zip(prepared)
        .filter(|(p, _)| p.plan == Plan::Submit)
        .map(|(_, p)| {
            estimate(
                p.request.garment_count(),
                args.price_first,
                args.price_extra,
            )
        })
        .fold(0.0, |total, price| total + price)
}

/// The estimated price of one job with `garments` garments.
pub fn estimate(garments: usize, first: f64, extra: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // garment counts are tiny
    let further = garments.saturating_sub(1) as f64;
    first + extra * further
}

/// How many rows a run of `plans` works on (submits or waits on a job).
pub fn to_run(plans: &[RowPlan]) -> usize {
    plans
        .iter()
        .filter(|p| {
            matches!(
                p.plan,
                Plan::Submit | Plan::Attach(_) | Plan::Refetch(_) | Plan::Recover { .. }
            ) || !p.keep.is_empty()
        })
        .count()
}

/// API calls a row needs at the least: its submit, a status read and the
/// result read (the image comes from the output host, not paced).
const CALLS_PER_ROW: u32 = 3;

/// What `--rate` means for this run, said before it waits: how far apart
/// the calls are and how long `rows` rows take at the least; and a warning
/// when one call's spacing is longer than `--timeout`, so every wait would
/// give up before its first status call.
pub fn pacing(args: &BatchArgs, rows: usize) -> Vec<String> {
    let Some(rate) = args.rate else {
        return Vec::new();
    };
    let spacing = Duration::from_secs_f64(60.0 / rate.requests_per_minute().max(1e-9));
    if rows == 0 || spacing < Duration::from_secs(1) {
        return Vec::new();
    }
    let calls = u32::try_from(rows)
        .unwrap_or(u32::MAX)
        .saturating_mul(CALLS_PER_ROW);
    let mut lines = vec![format!(
        "batch: --rate {} spaces API calls {} apart: {rows} rows make at least {calls} calls \
         (submit, status, result), about {} (progress shows while it waits)",
        rate,
        show_duration(spacing),
        show_duration(spacing.saturating_mul(calls))
    )];
    if spacing > args.timeout {
        lines.push(format!(
            "warning: at --rate {} one call comes every {}, longer than --timeout {}: each row's \
             wait would give up before its first status call (raise --timeout, or rerun later to \
             re-attach)",
            rate,
            show_duration(spacing),
            show_duration(args.timeout)
        ));
    }
    lines
}

/// Report what a run of these validated rows would do and cost.
pub fn dry_run(
    cli: &Cli,
    args: &BatchArgs,
    rows: &[Row],
    prepared: &[Prepared],
) -> Result<Code, CliError> {
    let events =
        journal::read(&args.out_dir).map_err(|damage| CliError::usage(damage.to_string()))?;
    let plans = plan_rows(rows, prepared, &events, args, journal::now_secs());
    let to_submit: Vec<_> = plans
        .iter()
        .zip(prepared)
        .filter(|(p, _)| p.plan == Plan::Submit)
        .map(|(_, p)| &p.request)
        .collect();
    let garments: usize = to_submit.iter().map(|r| r.garment_count()).sum();
    let cost = cost_to_submit(&plans, prepared, args);
    let count = |wanted: fn(&Plan) -> bool| plans.iter().filter(|p| wanted(&p.plan)).count();
    let report = DryRun {
        rows: rows.len(),
        jobs_to_submit: to_submit.len(),
        garments_to_submit: garments,
        already_done: count(|p| matches!(p, Plan::Done(_))),
        to_reattach: count(|p| matches!(p, Plan::Attach(_) | Plan::Refetch(_))),
        output_exists: count(|p| matches!(p, Plan::OutputExists(_))),
        changed: count(|p| matches!(p, Plan::Changed(_))),
        earlier_to_fetch: plans
            .iter()
            .flat_map(|p| &p.keep)
            .filter(|k| k.from.is_none())
            .count(),
        estimated_cost_usd: cost,
        price_first_garment_usd: args.price_first,
        price_extra_garment_usd: args.price_extra,
    };
    let mut text = format!(
        "{} rows valid; nothing sent (dry run)\n\
         jobs to submit: {}  garments: {}  (already done: {}, to re-attach: {}, output exists: {})\n",
        report.rows,
        report.jobs_to_submit,
        report.garments_to_submit,
        report.already_done,
        report.to_reattach,
        report.output_exists,
    );
    if report.changed + report.earlier_to_fetch > 0 {
        let _ = writeln!(
            text,
            "edited since their job: {} not resubmitted (--resubmit-changed sends them); \
             earlier jobs whose images are fetched (no charge): {}",
            report.changed, report.earlier_to_fetch
        );
    }
    for line in pacing(args, to_run(&plans)) {
        text.push_str(&line);
        text.push('\n');
    }
    let _ = write!(
        text,
        "estimated cost: ${:.3}  (estimate at ${} for a job's first garment and ${} for each further one; \
         Segmind bills in its own credits, which may differ)",
        report.estimated_cost_usd, args.price_first, args.price_extra,
    );
    emit(cli.json, &text, &report);
    Ok(Code::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_estimate_uses_first_and_further_prices() {
        assert!((estimate(1, 0.015, 0.008) - 0.015).abs() < 1e-12);
        assert!((estimate(3, 0.015, 0.008) - 0.031).abs() < 1e-12);
    }
}
