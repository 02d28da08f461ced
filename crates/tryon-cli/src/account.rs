//! `credits` and `history`: the account's own records (not billed reads,
//! through the same client, retries and rate budget as every command).

use std::pin::pin;

use futures::StreamExt as _;
use serde::Serialize;
use tryon_client::{HistoryEntry, HistoryQuery};

use crate::cli::{Cli, HistoryArgs};
use crate::commands::connect;
use crate::exit::{CliError, Code};
use crate::output::emit;
use crate::term;

/// An amount of USD, to four places (a job costs about a cent).
fn usd(amount: f64) -> String {
    if amount < 0.0 {
        format!("-${:.4}", -amount)
    } else {
        // `abs`: -0.0 shows as $0.0000.
        format!("${:.4}", amount.abs())
    }
}

#[derive(Serialize)]
struct CreditsLine {
    credits: f64,
    free_credits: f64,
    total: f64,
}

/// `tryon credits`.
pub async fn credits(cli: &Cli) -> Result<Code, CliError> {
    let backend = connect(cli, false, false).await?;
    let balance = backend.client.credits().await?;
    let text = format!(
        "credits: {}  free credits: {}  total: {}",
        usd(balance.credits),
        usd(balance.free_credits),
        usd(balance.total())
    );
    emit(
        cli.json,
        &text,
        &CreditsLine {
            credits: balance.credits,
            free_credits: balance.free_credits,
            total: balance.total(),
        },
    );
    Ok(Code::Ok)
}

/// One table line: id, created, status, cost, output URL (or the error).
fn table_line(id: &str, created: &str, status: &str, cost: &str, output: &str) -> String {
    format!("{id:<36}  {created:<20}  {status:<9}  {cost:>9}  {output}")
}

/// A timestamp to the second (`2026-12-04T10:15:00Z`) when it reads as
/// RFC 3339, else as sent.
fn shown_time(text: Option<&str>) -> String {
    let Some(text) = text else {
        return "-".into();
    };
    text.parse::<jiff::Timestamp>().map_or_else(
        |_| text.to_string(),
        |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

fn table_row(entry: &HistoryEntry) -> String {
    let output = match (&entry.generation_url, &entry.error) {
        (Some(url), _) if !url.is_empty() => url.clone(),
        (_, Some(error)) if !error.is_empty() => format!("error: {}", term::inline(error)),
        _ => "-".into(),
    };
    table_line(
        &term::inline(&entry.request_id),
        &term::inline(&shown_time(entry.created_at.as_deref())),
        &term::inline(entry.model_status.as_deref().unwrap_or("-")),
        &entry.credits_deduction.map_or_else(|| "-".into(), usd),
        &term::inline(&output),
    )
}

/// `tryon history`.
pub async fn history(cli: &Cli, args: &HistoryArgs) -> Result<Code, CliError> {
    let mut query = HistoryQuery::new().max_rows(args.limit);
    if let Some(day) = args.since {
        query = query.since(day);
    }
    if let Some(day) = args.until {
        query = query.until(day);
    }
    if let Some(status) = args.status {
        query = query.status(status.into());
    }
    // Refused before the key is even looked for.
    query.validate()?;
    let backend = connect(cli, false, false).await?;
    let mut rows = pin!(backend.client.history(&query));
    if !cli.json {
        term::out_line(&table_line(
            "REQUEST ID",
            "CREATED",
            "STATUS",
            "COST",
            "OUTPUT",
        ));
    }
    // The client yields each request once (a request with several outputs
    // has a row per output, each with the request's full cost).
    let (mut count, mut cost, mut without_cost) = (0usize, 0.0f64, 0usize);
    let mut failure = None;
    while let Some(row) = rows.next().await {
        let entry = match row {
            Ok(entry) => entry,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        count += 1;
        match entry.credits_deduction {
            Some(c) => cost += c,
            None => without_cost += 1,
        }
        emit(cli.json, &table_row(&entry), &entry);
        if term::stdout_closed() {
            // Nobody reads on: no more pages (each is a keyed call).
            return Ok(Code::Ok);
        }
    }
    let uncosted = if without_cost > 0 {
        format!(" ({without_cost} without a cost yet)")
    } else {
        String::new()
    };
    let total = format!(
        "total: {count} request{}, {}{uncosted}",
        if count == 1 { "" } else { "s" },
        usd(cost)
    );
    if cli.json {
        // Stdout stays one JSON object per request.
        term::err_line(&total);
    } else {
        term::out_line(&total);
    }
    if let Some(e) = failure {
        return Err(e.into());
    }
    if count == args.limit {
        term::err_line(&format!(
            "stopped at --limit {} requests; there may be more",
            args.limit
        ));
    }
    Ok(Code::Ok)
}
