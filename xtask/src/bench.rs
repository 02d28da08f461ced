//! `cargo xtask bench`: runs every benchmark of the workspace and prints
//! their tables as one report, with the date and the machine.
//!
//! It runs, one after another (never in parallel, so they do not compete
//! for the cores):
//!
//! ```text
//! cargo bench -p tryon-client --bench overhead
//! cargo bench -p tryon-client --bench scale
//! cargo bench -p tryon-client --bench polling
//! cargo bench -p tryon-client --bench throughput
//! cargo bench -p tryon-client --bench shared_budget
//! cargo bench -p tryon-mock   --bench poll      (when that target exists)
//! cargo bench -p tryon-cli    --bench report
//! ```
//!
//! Each bench prints Markdown on stdout; the lines of its tables (and their
//! `###` headings) are collected. Build output and progress go to stderr as
//! usual. `CARGO_TARGET_DIR`, `CARGO_BUILD_JOBS` and the like are passed
//! through to cargo unchanged.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One benchmark binary to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bench {
    /// The package (`-p`).
    pub package: &'static str,
    /// The bench target (`--bench`).
    pub name: &'static str,
}

/// The benches, in the order they run.
pub const BENCHES: [Bench; 7] = [
    Bench {
        package: "tryon-client",
        name: "overhead",
    },
    Bench {
        package: "tryon-client",
        name: "scale",
    },
    Bench {
        package: "tryon-client",
        name: "polling",
    },
    Bench {
        package: "tryon-client",
        name: "throughput",
    },
    Bench {
        package: "tryon-client",
        name: "shared_budget",
    },
    Bench {
        package: "tryon-mock",
        name: "poll",
    },
    Bench {
        package: "tryon-cli",
        name: "report",
    },
];

/// What one bench produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Which bench.
    pub bench: Bench,
    /// The exact command.
    pub command: String,
    /// How long it took, build included.
    pub elapsed: Duration,
    /// Its table lines, or why there are none.
    pub result: Result<Vec<String>, String>,
}

/// The workspace root (the parent of this crate's folder).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Whether `package` declares a `[[bench]]` named `name` (a bench another
/// maintainer has not added yet is skipped, not an error).
pub fn bench_exists(root: &Path, bench: Bench) -> bool {
    let manifest = root.join("crates").join(bench.package).join("Cargo.toml");
    let Ok(text) = std::fs::read_to_string(manifest) else {
        return false;
    };
    let wanted = format!("name = \"{}\"", bench.name);
    text.split("[[bench]]")
        .skip(1)
        .any(|section| section.lines().take(4).any(|l| l.trim() == wanted))
}

/// The lines of a bench's stdout worth keeping: Markdown tables, headings,
/// and blank lines between them.
pub fn table_lines(stdout: &str) -> Vec<String> {
    let kept: Vec<String> = stdout
        .lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with('|') || l.starts_with('#') || l.is_empty())
        .map(str::to_string)
        .collect();
    // No runs of blank lines, none at the ends.
    let mut out: Vec<String> = Vec::new();
    for l in kept {
        if l.is_empty() && out.last().is_none_or(String::is_empty) {
            continue;
        }
        out.push(l);
    }
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out
}

/// Runs one bench with `cargo bench`, its stderr passed through.
pub fn run_one(root: &Path, bench: Bench) -> Outcome {
    let command = format!("cargo bench -p {} --bench {}", bench.package, bench.name);
    let started = Instant::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let result = Command::new(cargo)
        .current_dir(root)
        .args(["bench", "-p", bench.package, "--bench", bench.name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start cargo: {e}"))
        .and_then(|out| {
            let stdout = String::from_utf8_lossy(&out.stdout);
            if out.status.success() {
                Ok(table_lines(&stdout))
            } else {
                Err(format!("`{command}` failed ({})", out.status))
            }
        });
    Outcome {
        bench,
        command,
        elapsed: started.elapsed(),
        result,
    }
}

/// `YYYY-MM-DD HH:MM UTC` from the system clock (no date crate needed).
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a date.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// The machine: cores, CPU model, load average.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg").ok().map_or_else(
        || "?".into(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    );
    format!(
        "{cores} cores (nproc), {cpu}, {} {}, load average at start {load}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// The combined report.
pub fn report(date: &str, machine: &str, outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Benchmarks\n");
    let _ = writeln!(s, "Date: {date}  ");
    let _ = writeln!(s, "Machine: {machine}  ");
    let _ = writeln!(s, "Command: `cargo xtask bench`\n");
    let _ = writeln!(s, "| bench | command | status | time (build included) |");
    let _ = writeln!(s, "|---|---|---|---|");
    for o in outcomes {
        let status = match &o.result {
            Ok(_) => "ran".to_string(),
            Err(e) => e.clone(),
        };
        let _ = writeln!(
            s,
            "| {}/{} | `{}` | {} | {:.1} s |",
            o.bench.package,
            o.bench.name,
            o.command,
            status,
            o.elapsed.as_secs_f64()
        );
    }
    for o in outcomes {
        if let Ok(lines) = &o.result {
            let _ = writeln!(s);
            if !lines.first().is_some_and(|l| l.starts_with('#')) {
                let _ = writeln!(s, "### {}/{}\n", o.bench.package, o.bench.name);
            }
            for l in lines {
                let _ = writeln!(s, "{l}");
            }
        }
    }
    s
}

/// Runs every bench that exists and returns the report, and whether all of
/// them ran.
pub fn run_all() -> (String, bool) {
    let root = workspace_root();
    let date = utc_now();
    let machine = machine();
    let mut outcomes = Vec::new();
    for bench in BENCHES {
        if !bench_exists(&root, bench) {
            outcomes.push(Outcome {
                bench,
                command: format!("cargo bench -p {} --bench {}", bench.package, bench.name),
                elapsed: Duration::ZERO,
                result: Err("skipped: no such [[bench]] target yet".into()),
            });
            continue;
        }
        eprintln!("== cargo bench -p {} --bench {}", bench.package, bench.name);
        outcomes.push(run_one(&root, bench));
    }
    let all_ran = outcomes.iter().all(|o| o.result.is_ok());
    (report(&date, &machine, &outcomes), all_ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn keeps_only_tables_and_headings() {
        let out = "noise\n### T\n\n\n| a | b |\n|---|---|\n| 1 | 2 |\nmore noise\n\n";
        assert_eq!(
            table_lines(out),
            ["### T", "", "| a | b |", "|---|---|", "| 1 | 2 |"]
        );
    }

    #[test]
    fn finds_declared_benches() {
        let root = workspace_root();
        assert!(bench_exists(&root, BENCHES[0]));
        assert!(!bench_exists(
            &root,
            Bench {
                package: "tryon-client",
                name: "no-such-bench"
            }
        ));
    }
}
