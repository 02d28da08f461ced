//! `tryon batch`: a manifest of try-ons, run with bounded concurrency,
//! resumable through the journal without ever submitting a row twice.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tryon_client::{Client, Error, ImageKind, TryOnRequest};

use crate::cli::{BatchArgs, Cli};
use crate::commands::session;
use crate::exit::{CliError, Code, code_of};
use crate::input;
use crate::journal::{self, Event, Journal, RowState};
use crate::manifest::{self, Row};
use crate::output::emit;
use crate::term;

/// What this run does with a row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// Never (successfully) sent: submit it.
    Submit,
    /// Accepted earlier and still within retention: wait on this id.
    Attach(String),
    /// Nothing to do: it finished in an earlier run.
    Done(PathBuf),
    /// It failed in an earlier run (`--retry-failed` submits it again).
    Failed(String),
    /// An earlier submit's outcome is unknown (`--resubmit-ambiguous`).
    Ambiguous(String),
    /// Accepted earlier but older than the retention: its result is gone.
    Expired(String),
}

fn plan_rows(rows: &[Row], events: &[Event], args: &BatchArgs, now: u64) -> Vec<Plan> {
    let fingerprints: HashMap<String, String> = rows
        .iter()
        .map(|r| (r.id.clone(), r.fingerprint()))
        .collect();
    let states = journal::fold(events, &fingerprints);
    rows.iter()
        .map(|row| match states.get(&row.id) {
            None => Plan::Submit,
            Some(RowState::Completed { output }) => Plan::Done(output.clone()),
            Some(RowState::Failed { .. }) if args.retry_failed => Plan::Submit,
            Some(RowState::Failed { reason }) => Plan::Failed(reason.clone()),
            Some(RowState::Ambiguous { .. }) if args.resubmit_ambiguous => Plan::Submit,
            Some(RowState::Ambiguous { reason }) => Plan::Ambiguous(reason.clone()),
            Some(RowState::Live { request_id, at }) => {
                if now.saturating_sub(*at) < journal::RETENTION.as_secs() {
                    Plan::Attach(request_id.clone())
                } else {
                    Plan::Expired(request_id.clone())
                }
            }
        })
        .collect()
}

/// Check that each local image exists and is a PNG, JPEG or WebP (the
/// request builder checks everything else); reads only the first bytes.
fn check_local_images(row: &Row) -> Result<(), String> {
    let values = std::iter::once(&row.person)
        .chain(&row.garments)
        .chain(row.reference_pose.as_ref());
    for value in values {
        if input::is_url(value) {
            continue;
        }
        let mut head = [0u8; 16];
        let read =
            std::fs::File::open(value).and_then(|mut f| std::io::Read::read(&mut f, &mut head));
        match read {
            Ok(n) if ImageKind::sniff(&head[..n]).is_some() => {}
            Ok(_) => return Err(format!("{value}: not a PNG, JPEG or WebP image")),
            Err(e) => return Err(format!("{value}: {e}")),
        }
    }
    Ok(())
}

/// Validate every row; the first bad one stops the batch before anything is
/// sent (exit 2), naming the row and the field.
fn validate(path: &Path, rows: &[Row]) -> Result<Vec<TryOnRequest>, CliError> {
    rows.iter()
        .map(|row| {
            let at = |e: String| {
                CliError::usage(format!(
                    "error: {} row {} ({}): {e}",
                    path.display(),
                    row.line,
                    row.id
                ))
            };
            check_local_images(row).map_err(at)?;
            input::from_row(row)
                .and_then(|f| f.build())
                .map_err(|e| at(e.to_string()))
        })
        .collect()
}

#[derive(Debug, Serialize)]
struct DryRun {
    rows: usize,
    jobs_to_submit: usize,
    garments_to_submit: usize,
    already_done: usize,
    to_reattach: usize,
    estimated_cost_usd: f64,
    price_first_garment_usd: f64,
    price_extra_garment_usd: f64,
}

fn estimate(garments: usize, first: f64, extra: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // garment counts are tiny
    let further = garments.saturating_sub(1) as f64;
    first + extra * further
}

/// How a row ended in this run.
#[derive(Debug)]
enum Outcome {
    Completed {
        path: PathBuf,
        earlier: bool,
    },
    Failed {
        request_id: Option<String>,
        reason: String,
    },
    /// Accepted but not collected (timeout, network, download): a rerun
    /// re-attaches.
    Pending {
        request_id: String,
        reason: String,
        code: Code,
    },
    /// The POST's outcome is unknown; not resubmitted.
    Ambiguous {
        reason: String,
    },
    /// Not accepted (refused, or the run stopped submitting after an
    /// account error); a rerun submits it.
    NotSent {
        reason: String,
        code: Code,
    },
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    rows: usize,
    completed: usize,
    completed_earlier: usize,
    failed: Vec<RowReport>,
    pending: Vec<RowReport>,
    ambiguous: Vec<RowReport>,
    not_sent: Vec<RowReport>,
    journal: PathBuf,
}

#[derive(Debug, Serialize)]
struct RowReport {
    row: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    reason: String,
}

/// Shared state of a running batch.
struct Run {
    client: Client,
    journal: Mutex<Journal>,
    out_dir: PathBuf,
    timeout: Duration,
    /// Set after an account error (401/403/406): no new submits.
    halt: AtomicBool,
    bar: ProgressBar,
    lines: bool,
    failed: std::sync::atomic::AtomicUsize,
    in_flight: std::sync::atomic::AtomicUsize,
}

impl Run {
    fn record(&self, event: &Event) -> Result<(), String> {
        let mut journal = self
            .journal
            .lock()
            .map_err(|_| "journal lock poisoned".to_string())?;
        journal
            .append(event)
            .map_err(|e| format!("cannot write the journal {}: {e}", journal.path().display()))
    }

    fn say(&self, line: &str) {
        if self.lines {
            self.bar.suspend(|| term::err_line(line));
        }
    }

    fn refresh(&self) {
        self.bar.set_message(format!(
            "failed {} · in flight {}",
            self.failed.load(Ordering::Relaxed),
            self.in_flight.load(Ordering::Relaxed)
        ));
    }

    async fn process(&self, row: &Row, request: &TryOnRequest, plan: Plan) -> Outcome {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.refresh();
        let outcome = self.process_inner(row, request, plan).await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        match &outcome {
            Outcome::Completed { path, .. } => {
                self.say(&format!("row {}: completed -> {}", row.id, path.display()));
            }
            Outcome::Failed { reason, .. } => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.say(&format!("row {}: FAILED: {reason}", row.id));
            }
            Outcome::Pending {
                request_id, reason, ..
            } => {
                self.say(&format!(
                    "row {}: not collected ({reason}); rerun to re-attach to {request_id}",
                    row.id
                ));
            }
            Outcome::Ambiguous { reason } => self.say(&format!(
                "row {}: submit outcome unknown, not resubmitted: {reason}",
                row.id
            )),
            Outcome::NotSent { reason, .. } => {
                self.say(&format!("row {}: not sent: {reason}", row.id));
            }
        }
        self.bar.inc(1);
        self.refresh();
        outcome
    }

    async fn process_inner(&self, row: &Row, request: &TryOnRequest, plan: Plan) -> Outcome {
        let fingerprint = row.fingerprint();
        let job = match plan {
            Plan::Attach(request_id) => {
                self.say(&format!("row {}: re-attaching to {request_id}", row.id));
                self.client
                    .job(request_id)
                    .with_expected_duration(request.expected_duration())
            }
            Plan::Submit => match self.submit_row(row, &fingerprint, request).await {
                Ok(job) => job,
                Err(outcome) => return outcome,
            },
            Plan::Done(path) => {
                return Outcome::Completed {
                    path,
                    earlier: true,
                };
            }
            Plan::Failed(reason) => {
                return Outcome::Failed {
                    request_id: None,
                    reason,
                };
            }
            Plan::Ambiguous(reason) => return Outcome::Ambiguous { reason },
            Plan::Expired(request_id) => {
                let reason = "accepted more than an hour ago and never collected; the service no longer keeps it (rerun with --retry-failed to submit again)".to_string();
                return self.fail(row, &fingerprint, Some(request_id), reason);
            }
        };
        self.collect(row, &fingerprint, request, &job).await
    }

    /// Record a final failure in the journal.
    fn fail(
        &self,
        row: &Row,
        fingerprint: &str,
        request_id: Option<String>,
        reason: String,
    ) -> Outcome {
        let _ = self.record(&Event::Failed {
            row: row.id.clone(),
            fingerprint: fingerprint.to_string(),
            request_id: request_id.clone(),
            reason: reason.clone(),
            at: journal::now_secs(),
        });
        Outcome::Failed { request_id, reason }
    }

    /// Submit a row, journaling the intent before the POST and the request
    /// id before anything waits on it.
    async fn submit_row(
        &self,
        row: &Row,
        fingerprint: &str,
        request: &TryOnRequest,
    ) -> Result<tryon_client::Job, Outcome> {
        if self.halt.load(Ordering::SeqCst) {
            return Err(Outcome::NotSent {
                reason: "the batch stopped submitting after an account error".into(),
                code: Code::Auth,
            });
        }
        let event = |kind: fn(String, String, u64) -> Event| {
            kind(row.id.clone(), fingerprint.to_string(), journal::now_secs())
        };
        self.record(&event(|row, fingerprint, at| Event::Submitting {
            row,
            fingerprint,
            at,
        }))
        .map_err(|reason| Outcome::NotSent {
            reason,
            code: Code::Usage,
        })?;
        match self.client.submit(request).await {
            Ok(job) => {
                let submitted = Event::Submitted {
                    row: row.id.clone(),
                    fingerprint: fingerprint.to_string(),
                    request_id: job.request_id().to_string(),
                    at: journal::now_secs(),
                };
                if let Err(reason) = self.record(&submitted) {
                    // The job exists but the journal does not know it: say
                    // so loudly rather than lose it.
                    return Err(Outcome::Pending {
                        request_id: job.request_id().to_string(),
                        reason,
                        code: Code::Usage,
                    });
                }
                self.say(&format!("row {}: submitted {}", row.id, job.request_id()));
                Ok(job)
            }
            Err(e @ Error::AmbiguousSubmit { .. }) => {
                let reason = e.to_string();
                let _ = self.record(&Event::Ambiguous {
                    row: row.id.clone(),
                    fingerprint: fingerprint.to_string(),
                    reason: reason.clone(),
                    at: journal::now_secs(),
                });
                Err(Outcome::Ambiguous { reason })
            }
            Err(e) => {
                let code = code_of(&e);
                if code == Code::Auth {
                    self.halt.store(true, Ordering::SeqCst);
                }
                let reason = e.to_string();
                let _ = self.record(&Event::Rejected {
                    row: row.id.clone(),
                    fingerprint: fingerprint.to_string(),
                    reason: reason.clone(),
                    at: journal::now_secs(),
                });
                Err(Outcome::NotSent { reason, code })
            }
        }
    }

    /// Wait for an accepted job and save its output.
    async fn collect(
        &self,
        row: &Row,
        fingerprint: &str,
        request: &TryOnRequest,
        job: &tryon_client::Job,
    ) -> Outcome {
        let request_id = job.request_id().to_string();
        let output = match job.wait_with(self.timeout).await {
            Ok(output) => output,
            Err(Error::Failed { detail, .. }) => {
                return self.fail(row, fingerprint, Some(request_id), detail);
            }
            Err(e @ Error::Expired { .. }) => {
                return self.fail(row, fingerprint, Some(request_id), e.to_string());
            }
            Err(e) => {
                return Outcome::Pending {
                    request_id,
                    code: code_of(&e),
                    reason: e.to_string(),
                };
            }
        };
        let path = self.out_dir.join(format!(
            "{}.{}",
            file_stem(&row.id),
            request.output_format().extension()
        ));
        match output.save(&path).await {
            Ok(bytes) => {
                let completed = Event::Completed {
                    row: row.id.clone(),
                    fingerprint: fingerprint.to_string(),
                    request_id: request_id.clone(),
                    output: path.clone(),
                    bytes,
                    at: journal::now_secs(),
                };
                if let Err(reason) = self.record(&completed) {
                    return Outcome::Pending {
                        request_id,
                        reason,
                        code: Code::Usage,
                    };
                }
                Outcome::Completed {
                    path,
                    earlier: false,
                }
            }
            Err(e) => Outcome::Pending {
                request_id,
                code: code_of(&e),
                reason: e.to_string(),
            },
        }
    }
}

/// A row id made safe as a file name.
fn file_stem(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `--dry-run`: what a run would do and cost; sends nothing.
fn dry_run(
    cli: &Cli,
    args: &BatchArgs,
    rows: &[Row],
    requests: &[TryOnRequest],
) -> Result<Code, CliError> {
    let events = journal::read(&args.out_dir).map_err(|e| {
        CliError::usage(format!("error: journal in {}: {e}", args.out_dir.display()))
    })?;
    let plans = plan_rows(rows, &events, args, journal::now_secs());
    let to_submit: Vec<&TryOnRequest> = plans
        .iter()
        .zip(requests)
        .filter(|(p, _)| **p == Plan::Submit)
        .map(|(_, r)| r)
        .collect();
    let garments: usize = to_submit.iter().map(|r| r.garment_count()).sum();
    let cost: f64 = to_submit
        .iter()
        .map(|r| estimate(r.garment_count(), args.price_first, args.price_extra))
        .sum();
    let report = DryRun {
        rows: rows.len(),
        jobs_to_submit: to_submit.len(),
        garments_to_submit: garments,
        already_done: plans.iter().filter(|p| matches!(p, Plan::Done(_))).count(),
        to_reattach: plans
            .iter()
            .filter(|p| matches!(p, Plan::Attach(_)))
            .count(),
        estimated_cost_usd: cost,
        price_first_garment_usd: args.price_first,
        price_extra_garment_usd: args.price_extra,
    };
    let text = format!(
        "{} rows valid; nothing sent (dry run)\n\
         jobs to submit: {}  garments: {}  (already done: {}, to re-attach: {})\n\
         estimated cost: ${:.3}  (estimate at ${} for a job's first garment and ${} for each further one; \
         Segmind bills in its own credits, which may differ)",
        report.rows,
        report.jobs_to_submit,
        report.garments_to_submit,
        report.already_done,
        report.to_reattach,
        report.estimated_cost_usd,
        args.price_first,
        args.price_extra,
    );
    emit(cli.json, &text, &report);
    Ok(Code::Ok)
}

/// `tryon batch`.
pub async fn batch(cli: &Cli, args: &BatchArgs) -> Result<Code, CliError> {
    let rows =
        manifest::load(&args.manifest).map_err(|e| CliError::usage(format!("error: {e}")))?;
    let requests = validate(&args.manifest, &rows)?;
    let journal_error = |e: std::io::Error| {
        CliError::usage(format!("error: journal in {}: {e}", args.out_dir.display()))
    };

    if args.dry_run {
        return dry_run(cli, args, &rows, &requests);
    }

    let session = session(cli, args.mock, false).await?;
    let (journal, events) = Journal::open(&args.out_dir).map_err(journal_error)?;
    let journal_path = journal.path().to_path_buf();
    let plans = plan_rows(&rows, &events, args, journal::now_secs());
    let work = plans
        .iter()
        .filter(|p| matches!(p, Plan::Submit | Plan::Attach(_)))
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
    let run = Arc::new(Run {
        client: session.client.clone(),
        journal: Mutex::new(journal),
        out_dir: args.out_dir.clone(),
        timeout: args.timeout,
        halt: AtomicBool::new(false),
        bar,
        lines: !terminal,
        failed: std::sync::atomic::AtomicUsize::new(0),
        in_flight: std::sync::atomic::AtomicUsize::new(0),
    });
    if !terminal && !cli.json {
        term::err_line(&format!(
            "batch: {} rows, {work} to run (concurrency {}), journal {}",
            rows.len(),
            args.concurrency,
            journal_path.display()
        ));
    }

    // Rows with nothing to do are settled at once; the rest run with
    // bounded concurrency.
    let items: Vec<(usize, Plan)> = plans.into_iter().enumerate().collect();
    let mut outcomes: Vec<Option<Outcome>> = (0..rows.len()).map(|_| None).collect();
    let rows = Arc::new(rows);
    let requests = Arc::new(requests);
    let mut stream = futures::stream::iter(items)
        .map(|(index, plan)| {
            let run = Arc::clone(&run);
            let rows = Arc::clone(&rows);
            let requests = Arc::clone(&requests);
            async move {
                let outcome = run.process(&rows[index], &requests[index], plan).await;
                (index, outcome)
            }
        })
        .buffer_unordered(usize::from(args.concurrency));
    while let Some((index, outcome)) = stream.next().await {
        outcomes[index] = Some(outcome);
    }
    run.bar.finish_and_clear();
    drop(session);

    let (summary, code) = summarize(&rows, outcomes, journal_path);
    emit(cli.json, &summary_text(&summary), &summary);
    Ok(code)
}

/// Tally the outcomes; the exit code is the most serious one seen.
fn summarize(rows: &[Row], outcomes: Vec<Option<Outcome>>, journal: PathBuf) -> (Summary, Code) {
    let mut summary = Summary {
        rows: rows.len(),
        journal,
        ..Summary::default()
    };
    let mut code = Code::Ok;
    let mut worst = |c: Code| {
        // Precedence: failed rows, then account, timeout, network.
        let rank = |c: Code| match c {
            Code::Ok => 0,
            Code::Network => 1,
            Code::Timeout => 2,
            Code::Usage => 3,
            Code::Auth => 4,
            Code::JobFailed => 5,
        };
        if rank(c) > rank(code) {
            code = c;
        }
    };
    for (row, outcome) in rows.iter().zip(outcomes) {
        let report = |request_id: Option<String>, reason: String| RowReport {
            row: row.id.clone(),
            request_id,
            reason,
        };
        match outcome {
            Some(Outcome::Completed { earlier, .. }) => {
                summary.completed += 1;
                summary.completed_earlier += usize::from(earlier);
            }
            Some(Outcome::Failed { request_id, reason }) => {
                worst(Code::JobFailed);
                summary.failed.push(report(request_id, reason));
            }
            Some(Outcome::Pending {
                request_id,
                reason,
                code,
            }) => {
                worst(code);
                summary.pending.push(report(Some(request_id), reason));
            }
            Some(Outcome::Ambiguous { reason }) => {
                worst(Code::Network);
                summary.ambiguous.push(report(None, reason));
            }
            Some(Outcome::NotSent { reason, code }) => {
                worst(code);
                summary.not_sent.push(report(None, reason));
            }
            None => {
                worst(Code::Network);
                summary.not_sent.push(report(None, "not run".into()));
            }
        }
    }
    (summary, code)
}

fn summary_text(s: &Summary) -> String {
    let mut text = format!(
        "batch: {} rows\n  completed  {} ({} this run, {} earlier)\n  failed     {}\n  pending    {} (accepted, not collected: rerun to re-attach)\n  ambiguous  {} (submit outcome unknown: not resubmitted; --resubmit-ambiguous sends again)\n  not sent   {} (rerun to submit)",
        s.rows,
        s.completed,
        s.completed - s.completed_earlier,
        s.completed_earlier,
        s.failed.len(),
        s.pending.len(),
        s.ambiguous.len(),
        s.not_sent.len(),
    );
    for (title, list) in [
        ("failed rows", &s.failed),
        ("pending rows", &s.pending),
        ("ambiguous rows", &s.ambiguous),
        ("rows not sent", &s.not_sent),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = write!(text, "\n{title}:");
        for r in list {
            match &r.request_id {
                Some(id) => {
                    let _ = write!(text, "\n  {} ({id}): {}", r.row, r.reason);
                }
                None => {
                    let _ = write!(text, "\n  {}: {}", r.row, r.reason);
                }
            }
        }
    }
    let _ = write!(text, "\njournal: {}", s.journal.display());
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn args(extra: &[&str]) -> BatchArgs {
        let mut argv = vec!["tryon", "batch", "m.csv"];
        argv.extend_from_slice(extra);
        match Cli::parse_from(argv).command {
            crate::cli::Command::Batch(b) => b,
            other => panic!("{other:?}"),
        }
    }

    fn rows() -> Vec<Row> {
        manifest::parse(
            Path::new("m.csv"),
            "id,person,garments\na,https://x.test/p,https://x.test/g\nb,https://x.test/p,https://x.test/g\nc,https://x.test/p,https://x.test/g\nd,https://x.test/p,https://x.test/g\ne,https://x.test/p,https://x.test/g\n",
            Path::new("."),
        )
        .unwrap()
    }

    #[test]
    fn plans_follow_the_journal() {
        let rows = rows();
        let fp = |i: usize| rows[i].fingerprint();
        let now = 10_000;
        let events = vec![
            Event::Submitted {
                row: "a".into(),
                fingerprint: fp(0),
                request_id: "live".into(),
                at: now - 60,
            },
            Event::Submitted {
                row: "b".into(),
                fingerprint: fp(1),
                request_id: "old".into(),
                at: now - 3_700,
            },
            Event::Submitted {
                row: "c".into(),
                fingerprint: fp(2),
                request_id: "done".into(),
                at: now - 60,
            },
            Event::Completed {
                row: "c".into(),
                fingerprint: fp(2),
                request_id: "done".into(),
                output: "c.png".into(),
                bytes: 1,
                at: now - 30,
            },
            Event::Submitting {
                row: "d".into(),
                fingerprint: fp(3),
                at: now - 5,
            },
            Event::Submitting {
                row: "e".into(),
                fingerprint: fp(4),
                at: now - 5,
            },
            Event::Rejected {
                row: "e".into(),
                fingerprint: fp(4),
                reason: "406".into(),
                at: now - 4,
            },
        ];
        let plans = plan_rows(&rows, &events, &args(&[]), now);
        assert_eq!(plans[0], Plan::Attach("live".into()));
        assert_eq!(plans[1], Plan::Expired("old".into()));
        assert_eq!(plans[2], Plan::Done("c.png".into()));
        assert!(matches!(plans[3], Plan::Ambiguous(_)));
        assert_eq!(plans[4], Plan::Submit, "a refused submit is sent again");
        let plans = plan_rows(&rows, &events, &args(&["--resubmit-ambiguous"]), now);
        assert_eq!(plans[3], Plan::Submit);
    }

    #[test]
    fn cost_estimate_uses_first_and_further_prices() {
        assert!((estimate(1, 0.015, 0.008) - 0.015).abs() < 1e-12);
        assert!((estimate(3, 0.015, 0.008) - 0.031).abs() < 1e-12);
    }

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("look 1/../x"), "look_1_.._x");
    }
}
