//! The command line, as clap sees it.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::history_args::HistoryArgs;
use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the job failed (FAILED, blocked, expired) or a batch had failed rows
  2  usage or validation error (bad arguments, bad manifest, bad image), or a batch row
     edited since its paid job and not resubmitted (see `tryon batch --resubmit-changed`)
  3  authentication or credits (401, 403, 406)
  4  timed out waiting; the request id is printed so `tryon wait ID` can re-attach
  5  network or server error (including an ambiguous submit)
  6  a local write failed (the output file or the batch journal): submitting stopped,
     and each job already paid for is printed with the command that fetches its
     image without paying for a new job (`tryon result ID -o PATH`, or for a batch
     row that may still be queued `tryon wait ID -o PATH`); for `tryon mock --record`,
     the recording lost exchanges (it is marked incomplete and a replay refuses it)
  7  `tryon parity`: the target differs from the spec, the job lifecycle or the mock
     (the report lists each difference)
  130, 143  a batch stopped by Ctrl-C (SIGINT) or SIGTERM: it printed its summary and
     wrote its report; rows in flight stand as a kill would leave them (rerun to go on)";

const PARITY_HELP: &str = "\
Steps: submit_1, submit_3 (the only billed ones), result_early (the result URL before
completion), poll_1, poll_3, result_1, output_1, result_3, output_3, unknown_id,
garments_12, missing_key, malformed_body. Each answer goes
through a validating proxy (checked against the API spec, tryon-api's
openapi/segmind-tryon.yaml, and the job lifecycle) and is compared with the in-process mock's answer to the same step.

Live: SEGMIND_API_KEY=... tryon parity --target https://api.segmind.com --live --report parity.txt
(prints the estimated cost and asks for a typed yes; --yes skips the question).

Exit codes:
  0  no difference
  7  differences (one `DIFF` line each; `differences` in the JSON report)
  2  refused before sending anything billable (no --live, no terminal to confirm on,
     not confirmed) or bad arguments
  3  --live without a key in the environment
  5  the target answered no step
  6  the report could not be written";

/// Run Segmind P-Image Try-On jobs: dress a person photo in garment photos.
#[derive(Debug, Parser)]
#[command(name = "tryon", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log what happens (tracing) to stderr; repeat for more (-vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// API base URL (default: `https://api.segmind.com`).
    #[arg(long, global = true, value_name = "URL")]
    pub base_url: Option<String>,
    /// Base URL of the upload-asset storage host used by `--upload`
    /// (default: `https://workflows-api.segmind.com`).
    #[arg(long, global = true, value_name = "URL")]
    pub upload_base_url: Option<String>,
    /// Base URL of the request history host used by `tryon history`
    /// (default: the `--base-url` when one other than Segmind's API is
    /// given, as a mock serves both; else
    /// `https://api.spotprod.segmind.com`).
    #[arg(long, global = true, value_name = "URL", env = "SEGMIND_HISTORY_URL")]
    pub history_url: Option<String>,
    /// Name of the environment variable that holds the API key.
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        default_value = "SEGMIND_API_KEY"
    )]
    pub api_key_env: String,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Submit a try-on, wait for it and save the image.
    Run(RunArgs),
    /// Submit a try-on and print its request id without waiting.
    Submit(SubmitArgs),
    /// Print a job's current status.
    Status(IdArgs),
    /// Wait for a job to finish (re-attach after a timeout or a restart).
    Wait(WaitArgs),
    /// Fetch a finished job's result and optionally save the image (after the
    /// status has expired, from the output the account's history names).
    Result(ResultArgs),
    /// Run a CSV or JSONL manifest of try-ons, resumably; writes
    /// DIR/report.html at the end.
    Batch(BatchArgs),
    /// Write a batch's report page (DIR/report.html) again from its journal
    /// and files alone: no network, no key.
    Report(ReportArgs),
    /// Print the account's credit balance (not billed).
    Credits,
    /// List the account's requests: id, created, status, cost and output
    /// URL, with the total cost (not billed).
    History(HistoryArgs),
    /// Serve the mock API for tests and demos.
    Mock(MockArgs),
    /// Run a fixed scenario against a target (a mock, a proxy, or with
    /// --live the real service) and report how it differs from the spec and
    /// from the mock.
    #[command(after_help = PARITY_HELP)]
    Parity(ParityArgs),
}

/// Output format of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Lossless PNG.
    Png,
    /// JPEG.
    Jpg,
    /// WebP.
    Webp,
}

/// The inputs of one try-on.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The person photo: a URL or a local file.
    #[arg(long, value_name = "URL|FILE")]
    pub person: String,
    /// A garment photo: a URL or a local file; repeat for up to 11.
    #[arg(long = "garment", value_name = "URL|FILE", required = true)]
    pub garments: Vec<String>,
    /// Text that says which garment to take from a busy image.
    #[arg(long)]
    pub prompt: Option<String>,
    /// A pose image (URL or file) to move the person into (experimental).
    #[arg(long, value_name = "URL|FILE")]
    pub reference_pose: Option<String>,
    /// Fixed seed, for repeatable output.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Faster generation; not advised for more than four garments.
    #[arg(long)]
    pub turbo: bool,
    /// Output image format.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Output quality for jpg/webp, 0 to 100.
    #[arg(long)]
    pub quality: Option<u8>,
    /// Output at the person photo's own resolution.
    #[arg(long)]
    pub preserve_input_size: bool,
    /// Send local images through Segmind's upload-asset storage instead of
    /// inline data URIs.
    #[arg(long)]
    pub upload: bool,
}

/// A request budget shared with other processes and machines.
#[derive(Debug, Args)]
pub struct BudgetArgs {
    /// Share the request budget with every process using the same key and
    /// URL: `redis://host:port/db` (many machines) or `file:PATH` (many
    /// processes on one machine). One 429 anywhere slows everybody once;
    /// `--rate` is then the budget of all of them together.
    #[arg(long, value_name = "URL", env = "TRYON_SHARED_BUDGET", value_parser = parse_shared_budget)]
    pub shared_budget: Option<tryon_client::SharedBudget>,
    /// With --shared-budget: the budget's name, for one key with several
    /// budgets (default `default`).
    #[arg(
        long,
        value_name = "NAME",
        env = "TRYON_BUDGET_NAME",
        requires = "shared_budget"
    )]
    pub budget_name: Option<String>,
}

impl BudgetArgs {
    /// The shared budget asked for, named.
    pub fn budget(&self) -> Result<Option<tryon_client::SharedBudget>, tryon_client::Error> {
        match (&self.shared_budget, &self.budget_name) {
            (Some(b), Some(name)) => b.clone().named(name).map(Some),
            (b, _) => Ok(b.clone()),
        }
    }
}

/// `tryon run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The try-on.
    #[command(flatten)]
    pub job: JobArgs,
    /// A shared request budget.
    #[command(flatten)]
    pub budget: BudgetArgs,
    /// Where to write the image.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Run against an embedded mock server (no key, no network).
    #[arg(long)]
    pub mock: bool,
    /// Give up waiting after this long (e.g. 90s, 10m).
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub timeout: Duration,
}

/// `tryon submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The try-on.
    #[command(flatten)]
    pub job: JobArgs,
}

/// A job id.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The request id printed by `submit` (or a timed-out `run`).
    pub request_id: String,
}

/// `tryon wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The request id.
    pub request_id: String,
    /// Also save the image here once it is done.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Give up waiting after this long.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub timeout: Duration,
}

/// `tryon result`.
#[derive(Debug, Args)]
pub struct ResultArgs {
    /// The request id.
    pub request_id: String,
    /// Save the image here.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `tryon batch`.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // each is a command-line flag
pub struct BatchArgs {
    /// The manifest: CSV (header: person,garments,... with garments split by
    /// `|`) or JSONL (one object per line).
    pub manifest: PathBuf,
    /// How many jobs to have in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// The account's request budget, e.g. `500/min` (also `N/s`, `N/h`):
    /// every API call is spaced to stay within it. Without it the budget is
    /// learned from the server's 429 answers.
    #[arg(long, value_name = "N/min", value_parser = parse_rate)]
    pub rate: Option<tryon_client::RateLimit>,
    /// A shared request budget.
    #[command(flatten)]
    pub budget: BudgetArgs,
    /// Where outputs and the journal (tryon-journal.jsonl) go. A row's
    /// image is `<id>.<format>`; an id that is not a plain file name
    /// (`a/b`, `..`, spaces, over 100 bytes) gets `<sanitised id>~<hash>.<format>`.
    #[arg(long, value_name = "DIR", default_value = "tryon-out")]
    pub out_dir: PathBuf,
    /// Check every row and estimate the cost; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Estimated price of a job's first garment, in USD (Pruna's published
    /// rate; Segmind bills in its own credits).
    #[arg(long, default_value_t = 0.015, value_parser = parse_price)]
    pub price_first: f64,
    /// Estimated price of each further garment, in USD.
    #[arg(long, default_value_t = 0.008, value_parser = parse_price)]
    pub price_extra: f64,
    /// Submit rows that failed in an earlier run again.
    #[arg(long)]
    pub retry_failed: bool,
    /// Submit rows whose earlier submit had an unknown outcome again (they
    /// may be charged twice). Without it such rows are settled with the
    /// account's request history first (found: followed; provably not
    /// billed: submitted); this flag is for accounts whose history cannot
    /// be read.
    #[arg(long)]
    pub resubmit_ambiguous: bool,
    /// How long a request takes at most to land in the account's request
    /// history. Once this has passed since a run stopped, a row of it the
    /// history does not hold was provably not billed (without it, only a
    /// later request of the account in the history proves that).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub landing_bound: Option<Duration>,
    /// Never send a job that would take this batch's spend past this many
    /// USD (each job at its estimate; rows left are "not sent (spend
    /// cap)").
    #[arg(long, value_name = "USD", value_parser = parse_price)]
    pub max_spend: Option<f64>,
    /// Send even when the account's balance (credits and free credits) is
    /// below the estimate of the rows to send (by default the batch is
    /// refused before anything is sent, exit 3).
    #[arg(long)]
    pub ignore_balance: bool,
    /// Submit rows edited since a job of theirs that has a result (its
    /// image, or a job the service still holds) with their new inputs: a
    /// new charge. The earlier job's image is kept as
    /// `<name>~previous-<first 8 characters of its request id>.<format>`
    /// (fetched at no charge if need be). Without it such a row is kept,
    /// listed as changed with what changed, and the batch exits 2. (A row
    /// whose earlier job ended without a result, failed say, is submitted
    /// with its new inputs either way.)
    #[arg(long)]
    pub resubmit_changed: bool,
    /// Submit rows whose output file already exists though the journal
    /// does not know them (by default they are skipped and listed).
    #[arg(long)]
    pub overwrite: bool,
    /// Repair a damaged journal before running: keep every record that
    /// parses, save the damaged file beside it, mark rows named on damaged
    /// lines ambiguous and print any request id found there.
    #[arg(long)]
    pub journal_repair: bool,
    /// Run against an embedded mock server (no key, no network).
    #[arg(long)]
    pub mock: bool,
    /// Give up on a job after waiting this long.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub timeout: Duration,
}

/// `tryon report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The batch's output folder (its --out-dir), which holds its journal.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The manifest the batch ran (default: the one its last run recorded
    /// in DIR/.tryon-report/run.json).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Estimated price of a job's first garment, in USD (default: the last
    /// run's, else batch's default).
    #[arg(long, value_parser = parse_price)]
    pub price_first: Option<f64>,
    /// Estimated price of each further garment, in USD (default: as
    /// --price-first).
    #[arg(long, value_parser = parse_price)]
    pub price_extra: Option<f64>,
}

/// `tryon mock`.
#[allow(clippy::struct_excessive_bools)] // each is a command-line flag
#[derive(Debug, Args)]
pub struct MockArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// A TOML file configuring durations, faults and limits.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the readiness line as JSON: {"url":…,"control":…}.
    #[arg(long)]
    pub json: bool,
    /// The base URL written into status URLs and outputs (for a mock reached
    /// through another address); never taken from the Host header.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Require `Authorization: Bearer TOKEN` on the control API (/__mock/).
    /// On a non-loopback --host one is generated and printed if not given.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TRYON_MOCK_CONTROL_TOKEN",
        hide_env_values = true
    )]
    pub control_token: Option<String>,
    /// Run as a validating proxy in front of this API host (e.g.
    /// `https://api.segmind.com`): forward each call with the caller's own
    /// key and list departures from the spec at /__mock/drift.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// With --proxy: the host for /upload-asset (default: the real upload
    /// host for `https://api.segmind.com`, else the --proxy URL).
    #[arg(long, value_name = "URL", requires = "proxy")]
    pub proxy_upload: Option<String>,
    /// With --proxy: leave output URLs pointing at the upstream's CDN.
    #[arg(long, requires = "proxy")]
    pub keep_output_urls: bool,
    /// With --proxy: record every exchange into DIR (the key never stored;
    /// images once, by hash), for `--replay DIR`. See docs/RECORDING.md.
    #[arg(long, value_name = "DIR", requires = "proxy")]
    pub record: Option<PathBuf>,
    /// With --record: most bytes the recording may hold (default 1 GiB);
    /// beyond it exchanges are proxied but not recorded.
    #[arg(long, value_name = "BYTES", requires = "record")]
    pub record_limit: Option<u64>,
    /// Serve a recording made with --record, with no upstream: a matching
    /// submit gets the recorded job; a POST nothing matches gets a 409
    /// naming the nearest recorded request and each field that differs.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["proxy", "config"])]
    pub replay: Option<PathBuf>,
    /// With --replay: recorded seconds per real second (2 replays twice as
    /// fast).
    #[arg(long, value_name = "X", default_value_t = 1.0, requires = "replay")]
    pub replay_speed: f64,
    /// A virtual clock that moves only with `POST /__mock/advance` (the mock
    /// and --replay).
    #[arg(long)]
    pub virtual_time: bool,
    /// Stop (as on SIGTERM) once stdin reaches its end: a program that
    /// starts the mock with a pipe as its stdin and dies, however, takes
    /// the mock with it.
    #[arg(long)]
    pub exit_with_parent: bool,
}

/// `tryon parity`.
#[derive(Debug, Args)]
pub struct ParityArgs {
    /// The API to test, e.g. `http://127.0.0.1:PORT` (a `tryon mock`) or
    /// `https://api.segmind.com` (needs --live).
    #[arg(long, value_name = "URL")]
    pub target: String,
    /// The target's request-history host (default: Segmind's,
    /// `https://api.spotprod.segmind.com`, for Segmind's API; the target
    /// itself otherwise).
    #[arg(long, value_name = "URL")]
    pub history_target: Option<String>,
    /// Allow a target that is not on loopback (the real service bills the
    /// two accepted submits); the key comes from the environment.
    #[arg(long)]
    pub live: bool,
    /// With --live: accept the printed cost estimate without asking.
    #[arg(long, requires = "live")]
    pub yes: bool,
    /// Write the report here instead of stdout (text, or JSON with --json).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Give up polling each of the two jobs after this long (e.g. 90s, 5m).
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub timeout: Duration,
    /// Wait between two status calls to the target.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub interval: Duration,
    /// Estimated price of a job's first garment, in USD (Pruna's published
    /// rate; Segmind bills in its own credits).
    #[arg(long, default_value_t = 0.015, value_parser = parse_price)]
    pub price_first: f64,
    /// Estimated price of each further garment, in USD.
    #[arg(long, default_value_t = 0.008, value_parser = parse_price)]
    pub price_extra: f64,
    /// Record the target's exchanges into this directory as they happen
    /// (sanitized, no key; replay with `tryon mock --replay DIR`).
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
}

/// Parse a price in USD: a finite number, zero or more (clap names the
/// flag in its error).
pub fn parse_price(text: &str) -> Result<f64, String> {
    let price: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of USD"))?;
    if !price.is_finite() || price.is_sign_negative() {
        return Err(format!(
            "`{text}`: a price must be a finite number, 0 or more"
        ));
    }
    Ok(price)
}

/// A request budget such as `500/min`.
pub fn parse_rate(text: &str) -> Result<tryon_client::RateLimit, String> {
    text.parse().map_err(|e: tryon_client::Error| e.to_string())
}

/// A duration for people: `250 ms`, `3.3 s`, `12 s`, `4 min 10 s`, `60 min`.
pub fn show_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{} ms", d.as_millis())
    } else if secs < 10.0 {
        let text = format!("{secs:.1}");
        format!("{} s", text.trim_end_matches('0').trim_end_matches('.'))
    } else if secs < 120.0 {
        format!("{secs:.0} s")
    } else {
        let whole = d.as_secs();
        match (whole / 60, whole % 60) {
            (minutes, 0) => format!("{minutes} min"),
            (minutes, s) if minutes < 10 => format!("{minutes} min {s} s"),
            (minutes, _) => format!("{minutes} min"),
        }
    }
}

/// A shared budget's URL (`redis://…` or `file:PATH`).
pub fn parse_shared_budget(text: &str) -> Result<tryon_client::SharedBudget, String> {
    text.parse().map_err(|e: tryon_client::Error| e.to_string())
}

/// Parse `90s`, `10m`, `1h`, `250ms` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 10m or 1h"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn prices_are_finite_and_not_negative() {
        assert_eq!(parse_price("0.015"), Ok(0.015));
        assert_eq!(parse_price("0"), Ok(0.0));
        for bad in ["-1", "-0", "NaN", "inf", "x"] {
            assert!(parse_price(bad).is_err(), "{bad}");
        }
    }

    #[test]
    #[allow(clippy::float_cmp, reason = "a whole number, exact in f64")]
    fn batch_rate_parses_and_a_bad_one_names_the_field() {
        let cli = Cli::try_parse_from(["tryon", "batch", "m.csv", "--rate", "500/min"]).unwrap();
        let Command::Batch(args) = cli.command else {
            panic!("not a batch");
        };
        assert_eq!(args.rate.map(|r| r.requests_per_minute()), Some(500.0));
        let e = Cli::try_parse_from(["tryon", "batch", "m.csv", "--rate", "fast"]).unwrap_err();
        assert!(e.to_string().contains("rate_limit"), "{e}");
    }

    #[test]
    fn durations_show_in_the_unit_that_reads_best() {
        assert_eq!(show_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(show_duration(Duration::from_millis(3_293)), "3.3 s");
        assert_eq!(show_duration(Duration::from_secs(20)), "20 s");
        assert_eq!(show_duration(Duration::from_secs(421)), "7 min 1 s");
        assert_eq!(show_duration(Duration::from_hours(1)), "60 min");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_mins(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
    }
}
