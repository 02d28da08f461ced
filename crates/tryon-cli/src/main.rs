//! The `tryon` command: run Segmind P-Image Try-On jobs from the shell.
//!
//! `tryon --help` lists the commands and the exit codes; the workspace
//! README shows real runs.

// A binary exports nothing, so `pub` here only means "used by other
// modules"; `unreachable_pub` would ask to spell every one `pub(crate)`.
#![allow(unreachable_pub)]
// Nor does it have a public API to document: items carry docs where they
// say more than the name (flags carry clap's help text, which doubles as
// their docs); a comment such as `/// The seed.` on `seed` would not.
#![allow(missing_docs)]

mod account;
mod batch;
mod cli;
mod commands;
mod exit;
mod fingerprint;
mod history_args;
mod input;
mod journal;
mod manifest;
mod mock;
mod names;
mod output;
mod parity;
mod report;
mod term;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command};
use crate::exit::Code;

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::protect(std::env::var(&cli.api_key_env).ok().as_deref());
    term::remember_global_flags(cli.base_url.as_deref(), &cli.api_key_env);
    init_tracing(cli.verbose, matches!(cli.command, Command::Mock(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let error = exit::CliError::new(
                Code::Network,
                format!("cannot start the async runtime: {e}"),
            );
            term::err_line(&error.to_string());
            return error.code.into();
        }
    };
    let result = runtime.block_on(dispatch(&cli));
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            term::err_line(&e.to_string());
            e.code.into()
        }
    }
}

async fn dispatch(cli: &Cli) -> Result<Code, exit::CliError> {
    match &cli.command {
        Command::Run(args) => commands::run(cli, args).await,
        Command::Submit(args) => commands::submit(cli, args).await,
        Command::Status(args) => commands::status(cli, args).await,
        Command::Wait(args) => commands::wait(cli, args).await,
        Command::Result(args) => commands::result(cli, args).await,
        Command::Batch(args) => batch::batch(cli, args).await,
        Command::Report(args) => batch::report_page(cli, args).await,
        Command::Credits => account::credits(cli).await,
        Command::History(args) => account::history(cli, args).await,
        Command::Mock(args) => mock::serve(args).await,
        Command::Parity(args) => parity::parity(cli, args).await,
    }
}

/// `-v` turns on the client's and the mock's logs (info), `-vv` debug;
/// `RUST_LOG` overrides both. Logs go to stderr, so stdout stays for
/// results. The API key never reaches a log line.
/// `tryon mock` logs each request at info level by default.
fn init_tracing(verbose: u8, serving_mock: bool) {
    let default = match verbose {
        0 if serving_mock => "warn,tryon_mock=info",
        0 => "warn",
        1 => "info,tryon_client=info,tryon_mock=info",
        _ => "debug,hyper=info,reqwest=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(tryon_mock::logging::LogWriter::stderr)
        .log_internal_errors(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
