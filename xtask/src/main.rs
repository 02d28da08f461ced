//! Maintainer tasks for the tryon workspace.
//!
//! ```text
//! cargo xtask codegen           regenerate crates/tryon-api/src/generated.rs from the spec,
//!                               and python/src/tryon_mock/control_routes.json from the
//!                               control API's document
//! cargo xtask codegen --check   fail with a diff if either checked-in file is stale
//! cargo xtask garment           draw assets/garment.png (the sample garment)
//! cargo xtask bench             run every benchmark, print one combined table
//! ```

use std::process::ExitCode;

use xtask::{bench, codegen, garment};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["codegen"] => wrote(codegen::write()),
        ["codegen", "--check"] => match codegen::check() {
            Ok(codegen::Check::UpToDate) => {
                eprintln!(
                    "up to date: {} ({}), {} ({})",
                    codegen::OUTPUT,
                    codegen::SPEC,
                    codegen::ROUTES_OUTPUT,
                    codegen::CONTROL_SPEC
                );
                ExitCode::SUCCESS
            }
            Ok(codegen::Check::Stale { diff }) => {
                eprintln!("{diff}");
                eprintln!(
                    "error: generated files are stale; run `cargo xtask codegen` and commit the result"
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        ["garment"] => wrote(garment::write().map(|path| vec![path])),
        ["bench"] => {
            let (report, all_ran) = bench::run_all();
            #[allow(clippy::print_stdout, reason = "the report is the command's output")]
            {
                println!("{report}");
            }
            if all_ran {
                ExitCode::SUCCESS
            } else {
                eprintln!("error: not every bench ran; see the table above");
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!(
                "usage: cargo xtask codegen [--check] | cargo xtask garment | cargo xtask bench"
            );
            ExitCode::from(2)
        }
    }
}

/// Reports the files a task wrote, or why it could not.
fn wrote<E: std::fmt::Display>(result: Result<Vec<std::path::PathBuf>, E>) -> ExitCode {
    match result {
        Ok(paths) => {
            for path in paths {
                eprintln!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => failed(&e),
    }
}

fn failed(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
