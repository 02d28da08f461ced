//! `--dry-run`: what a run would do and cost; sends and writes nothing.

use serde::Serialize;

use super::plan::{Plan, plan_rows};
use super::validate::Prepared;
use crate::cli::{BatchArgs, Cli};
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
    estimated_cost_usd: f64,
    price_first_garment_usd: f64,
    price_extra_garment_usd: f64,
}

/// The estimated price of one job with `garments` garments.
pub fn estimate(garments: usize, first: f64, extra: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // garment counts are tiny
    let further = garments.saturating_sub(1) as f64;
    first + extra * further
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
    let outputs: Vec<_> = prepared.iter().map(|p| p.output.clone()).collect();
    let plans = plan_rows(rows, &outputs, &events, args, journal::now_secs());
    let to_submit: Vec<_> = plans
        .iter()
        .zip(prepared)
        .filter(|(p, _)| **p == Plan::Submit)
        .map(|(_, p)| &p.request)
        .collect();
    let garments: usize = to_submit.iter().map(|r| r.garment_count()).sum();
    // A fold from +0.0: `Sum` for floats starts at -0.0, which prints as
    // `$-0.000` when there is nothing to submit.
    let cost = to_submit
        .iter()
        .map(|r| estimate(r.garment_count(), args.price_first, args.price_extra))
        .fold(0.0, |total, price| total + price);
    let count = |wanted: fn(&Plan) -> bool| plans.iter().filter(|p| wanted(p)).count();
    let report = DryRun {
        rows: rows.len(),
        jobs_to_submit: to_submit.len(),
        garments_to_submit: garments,
        already_done: count(|p| matches!(p, Plan::Done(_))),
        to_reattach: count(|p| matches!(p, Plan::Attach(_) | Plan::Refetch(_))),
        output_exists: count(|p| matches!(p, Plan::OutputExists(_))),
        estimated_cost_usd: cost,
        price_first_garment_usd: args.price_first,
        price_extra_garment_usd: args.price_extra,
    };
    let text = format!(
        "{} rows valid; nothing sent (dry run)\n\
         jobs to submit: {}  garments: {}  (already done: {}, to re-attach: {}, output exists: {})\n\
         estimated cost: ${:.3}  (estimate at ${} for a job's first garment and ${} for each further one; \
         Segmind bills in its own credits, which may differ)",
        report.rows,
        report.jobs_to_submit,
        report.garments_to_submit,
        report.already_done,
        report.to_reattach,
        report.output_exists,
        report.estimated_cost_usd,
        args.price_first,
        args.price_extra,
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
