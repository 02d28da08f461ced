//! `tryon history`'s arguments (kept apart from `cli.rs` so that it stays
//! one readable page).

use clap::{Args, ValueEnum};

/// A history state, as `tryon history --status` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryStatusArg {
    /// Not finished.
    Pending,
    /// Finished with an output.
    Completed,
    /// Failed.
    Failed,
}

impl From<HistoryStatusArg> for tryon_client::HistoryStatus {
    fn from(s: HistoryStatusArg) -> Self {
        match s {
            HistoryStatusArg::Pending => Self::Pending,
            HistoryStatusArg::Completed => Self::Completed,
            HistoryStatusArg::Failed => Self::Failed,
        }
    }
}

/// `tryon history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// First day (UTC, included), YYYY-MM-DD. Default: the service's
    /// window, the last 7 days; the window is at most 31 days.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_since)]
    pub since: Option<jiff::civil::Date>,
    /// Last day (UTC, included), YYYY-MM-DD. Default: today with
    /// `--since`; alone, the window is the 7 days ending then.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_until)]
    pub until: Option<jiff::civil::Date>,
    /// Only requests in this state.
    #[arg(long, value_enum)]
    pub status: Option<HistoryStatusArg>,
    /// List at most this many requests.
    #[arg(
        long,
        value_name = "N",
        default_value_t = tryon_client::HISTORY_DEFAULT_MAX_ROWS,
        value_parser = parse_limit
    )]
    pub limit: usize,
}

fn parse_since(text: &str) -> Result<jiff::civil::Date, String> {
    tryon_client::parse_history_date("since", text).map_err(|e| e.to_string())
}

fn parse_until(text: &str) -> Result<jiff::civil::Date, String> {
    tryon_client::parse_history_date("until", text).map_err(|e| e.to_string())
}

fn parse_limit(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}`: the limit is a whole number, 1 or more")),
    }
}
