//! Running the planned rows with bounded concurrency, journaling each step
//! through the one journal writer.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use indicatif::ProgressBar;
use tryon_client::{Client, Error, Job};

use super::plan::Plan;
use super::report::{EXPIRED, Outcome, recovery};
use super::validate::Prepared;
use crate::exit::{Code, code_of};
use crate::journal::{Event, Kind, Writer};
use crate::manifest::Row;
use crate::report::Thumbnailer;
use crate::term;

/// Shared state of a running batch.
pub struct Run {
    pub client: Client,
    /// The journal's writer.
    pub journal: Writer,
    /// How long to wait for each job.
    pub timeout: Duration,
    /// Set after an account error (401/403/406) or a local write error
    /// (journal or output): why, and the exit code; no new submits.
    pub halt: OnceLock<(String, Code)>,
    /// The progress bar (hidden when stderr is not a terminal).
    pub bar: ProgressBar,
    /// Whether to print a line per step (when there is no bar).
    pub lines: bool,
    /// Rows failed so far.
    pub failed: AtomicUsize,
    /// Rows in flight.
    pub in_flight: AtomicUsize,
    /// Makes the report's thumbnails of saved outputs, off this path.
    pub thumbnails: Arc<Thumbnailer>,
}

/// Run every row's plan, `concurrency` at a time, in the order of
/// [`start_order`]; one outcome per row. When `stop` completes first (the
/// run was interrupted), the rows still in flight are dropped where they
/// stand, as a kill would leave them (the journal has what each reached),
/// and have no outcome.
pub async fn execute(
    run: &Arc<Run>,
    rows: &Arc<Vec<Row>>,
    prepared: &Arc<Vec<Prepared>>,
    plans: Vec<Plan>,
    concurrency: usize,
    stop: impl Future<Output = ()>,
) -> Vec<Option<Outcome>> {
    let mut outcomes: Vec<Option<Outcome>> = (0..rows.len()).map(|_| None).collect();
    let order = start_order(plans, prepared, concurrency);
    let mut stream = futures::stream::iter(order)
        .map(|(index, (plan, _))| {
            let run = Arc::clone(run);
            let rows = Arc::clone(rows);
            let prepared = Arc::clone(prepared);
            async move {
                let outcome = run.process(&rows[index], &prepared[index], plan).await;
                (index, outcome)
            }
        })
        .buffer_unordered(concurrency);
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            next = stream.next() => match next {
                Some((index, outcome)) => outcomes[index] = Some(outcome),
                None => break,
            },
            () = &mut stop => break,
        }
    }
    outcomes
}

/// The order rows start in, each with its index: manifest order, except
/// the last `concurrency`, which start longest expected job first (the
/// client's `run_many` order), so the batch does not end waiting on a long
/// job that started last. A row that only reads or reports counts as
/// taking no time.
pub fn start_order(
    plans: Vec<Plan>,
    prepared: &[Prepared],
    concurrency: usize,
) -> impl Iterator<Item = (usize, (Plan, Duration))> + use<> {
    let keyed: Vec<(Plan, Duration)> = plans
        .into_iter()
        .enumerate()
        .map(|(index, plan)| {
            let expected = match plan {
                Plan::Done(_) | Plan::Refetch(_) | Plan::Expired(_) => Duration::ZERO,
                _ => prepared
                    .get(index)
                    .map_or(Duration::ZERO, |p| p.request.expected_duration()),
            };
            (plan, expected)
        })
        .collect();
    tryon_client::tail_longest_first(keyed, concurrency.max(1), |(_, d)| *d)
}

impl Run {
    /// Append to the journal; a failure stops all new submits.
    async fn record(&self, event: Event) -> Result<(), String> {
        let result = self.journal.append(event).await;
        if let Err(reason) = &result {
            self.stop(reason, Code::Unsaved);
        }
        result
    }

    /// Stop new submits, for `reason`.
    fn stop(&self, reason: &str, code: Code) {
        let _ = self.halt.set((reason.to_string(), code));
    }

    fn say(&self, line: &str) {
        if self.lines {
            self.bar.suspend(|| term::err_line(line));
        }
    }

    fn refresh(&self) {
        // The budget the client keeps to: configured with --rate, or
        // learned from 429s.
        let budget = self
            .client
            .rate_budget()
            .map(|b| format!(" · budget {b}"))
            .unwrap_or_default();
        self.bar.set_message(format!(
            "failed {} · in flight {}{budget}",
            self.failed.load(Ordering::Relaxed),
            self.in_flight.load(Ordering::Relaxed)
        ));
    }

    async fn process(&self, row: &Row, prepared: &Prepared, plan: Plan) -> Outcome {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.refresh();
        let outcome = self.process_inner(row, prepared, plan).await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let id = term::inline(&row.id);
        match &outcome {
            Outcome::Completed { path, .. } => {
                self.thumbnails.add(path);
                self.say(&format!("row {id}: completed -> {}", path.display()));
            }
            Outcome::Failed { reason, .. } => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.say(&format!("row {id}: FAILED: {}", term::inline(reason)));
            }
            Outcome::Pending {
                request_id, reason, ..
            } => {
                self.say(&format!(
                    "row {id}: not collected ({}); rerun to re-attach to {}",
                    term::inline(reason),
                    term::inline(request_id)
                ));
            }
            Outcome::Unsaved {
                request_id,
                output,
                reason,
            } => {
                // Always said, bar or not: this is a paid result to fetch.
                self.bar.suspend(|| {
                    term::err_line(&format!(
                        "row {id}: accepted as {} but not saved ({}); fetch it with: {}",
                        term::inline(request_id),
                        term::inline(reason),
                        recovery(request_id, output)
                    ));
                });
            }
            Outcome::Ambiguous { reason } => self.say(&format!(
                "row {id}: submit outcome unknown, not resubmitted: {}",
                term::inline(reason)
            )),
            Outcome::NotSent { reason, .. } => {
                self.say(&format!("row {id}: not sent: {}", term::inline(reason)));
            }
            Outcome::OutputExists { path } => self.say(&format!(
                "row {id}: {} exists but the journal does not know it; not resubmitted (--overwrite sends it)",
                path.display()
            )),
        }
        self.bar.inc(1);
        self.refresh();
        outcome
    }

    async fn process_inner(&self, row: &Row, prepared: &Prepared, plan: Plan) -> Outcome {
        let fingerprint = row.fingerprint();
        let job = match plan {
            Plan::Attach(request_id) | Plan::Refetch(request_id) => {
                self.say(&format!(
                    "row {}: re-attaching to {}",
                    term::inline(&row.id),
                    term::inline(&request_id)
                ));
                self.client
                    .job(request_id)
                    .with_expected_duration(prepared.request.expected_duration())
            }
            Plan::Submit => match self.submit_row(row, &fingerprint, prepared).await {
                Ok(job) => job,
                Err(outcome) => return outcome,
            },
            Plan::Expired(request_id) => {
                let reason = EXPIRED.to_string();
                return self.fail(row, &fingerprint, Some(request_id), reason).await;
            }
            // Done, failed, ambiguous or skipped in an earlier run: it only
            // reports.
            settled => return Outcome::of_plan(settled, &prepared.output),
        };
        self.collect(row, &fingerprint, prepared, &job).await
    }

    /// Record a final failure in the journal.
    async fn fail(
        &self,
        row: &Row,
        fingerprint: &str,
        request_id: Option<String>,
        reason: String,
    ) -> Outcome {
        let mut event = Event::new(Kind::Failed, &row.id, fingerprint).reason(&reason);
        event.request_id.clone_from(&request_id);
        let _ = self.record(event).await;
        Outcome::Failed { request_id, reason }
    }

    /// Submit a row: the intent is durable in the journal before the POST
    /// is sent, and the request id before anything waits on it.
    async fn submit_row(
        &self,
        row: &Row,
        fingerprint: &str,
        prepared: &Prepared,
    ) -> Result<Job, Outcome> {
        if let Some((reason, code)) = self.halt.get() {
            return Err(Outcome::NotSent {
                reason: format!("the batch stopped submitting: {reason}"),
                code: *code,
            });
        }
        self.record(Event::new(Kind::Submitting, &row.id, fingerprint))
            .await
            .map_err(|reason| Outcome::NotSent {
                reason,
                code: Code::Unsaved,
            })?;
        match self.client.submit(&prepared.request).await {
            Ok(job) => {
                let submitted =
                    Event::new(Kind::Submitted, &row.id, fingerprint).request_id(job.request_id());
                if let Err(reason) = self.record(submitted).await {
                    // Paid for, and the journal cannot say so: tell the
                    // user now how to get it, rather than wait on it.
                    return Err(Outcome::Unsaved {
                        request_id: job.request_id().to_string(),
                        output: prepared.output.clone(),
                        reason,
                    });
                }
                self.say(&format!(
                    "row {}: submitted {}",
                    term::inline(&row.id),
                    term::inline(job.request_id())
                ));
                Ok(job)
            }
            Err(e @ Error::AmbiguousSubmit { .. }) => {
                let reason = e.to_string();
                let event = Event::new(Kind::Ambiguous, &row.id, fingerprint).reason(&reason);
                let _ = self.record(event).await;
                Err(Outcome::Ambiguous { reason })
            }
            Err(e) => {
                let code = code_of(&e);
                if code == Code::Auth {
                    self.stop(&format!("account error: {e}"), code);
                }
                let reason = e.to_string();
                let event = Event::new(Kind::Rejected, &row.id, fingerprint).reason(&reason);
                let _ = self.record(event).await;
                Err(Outcome::NotSent { reason, code })
            }
        }
    }

    /// Wait for an accepted job and save its output.
    async fn collect(
        &self,
        row: &Row,
        fingerprint: &str,
        prepared: &Prepared,
        job: &Job,
    ) -> Outcome {
        let request_id = job.request_id().to_string();
        let output = match job.wait_with(self.timeout).await {
            Ok(output) => output,
            Err(Error::Failed { detail, .. }) => {
                return self.fail(row, fingerprint, Some(request_id), detail).await;
            }
            Err(e @ Error::Expired { .. }) => {
                return self
                    .fail(row, fingerprint, Some(request_id), e.to_string())
                    .await;
            }
            Err(e) => {
                return Outcome::Pending {
                    request_id,
                    code: code_of(&e),
                    reason: e.to_string(),
                };
            }
        };
        let path = &prepared.output;
        let unsaved = |reason: String| Outcome::Unsaved {
            request_id: request_id.clone(),
            output: path.clone(),
            reason,
        };
        match output.save(path).await {
            Ok(bytes) => {
                let completed = Event::new(Kind::Completed, &row.id, fingerprint)
                    .request_id(&request_id)
                    .output(path, bytes);
                if let Err(reason) = self.record(completed).await {
                    return unsaved(format!("saved, but {reason}"));
                }
                Outcome::Completed {
                    path: path.clone(),
                    earlier: false,
                }
            }
            Err(e @ Error::Io { .. }) => {
                // The next image would not fit either: pay for no more.
                let reason = e.to_string();
                self.stop(&format!("cannot save an output: {reason}"), Code::Unsaved);
                unsaved(reason)
            }
            Err(e) => Outcome::Pending {
                request_id,
                code: code_of(&e),
                reason: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tryon_client::{Image, TryOnRequest};

    use super::*;

    fn prepared(garments: usize) -> Prepared {
        Prepared {
            request: TryOnRequest::builder()
                .person(Image::url("https://example.com/p.jpg"))
                .garments((0..garments).map(|g| Image::url(format!("https://example.com/{g}.jpg"))))
                .build()
                .unwrap(),
            output: PathBuf::from("out.png"),
        }
    }

    #[test]
    fn the_last_rows_start_longest_first_and_finished_rows_take_no_time() {
        // Garments per row: 1, 11, 1, 3, 11, 1; the last row finished in an
        // earlier run (it only reports).
        let prepared: Vec<Prepared> = [1, 11, 1, 3, 11, 1].into_iter().map(prepared).collect();
        let mut plans: Vec<Plan> = (0..5).map(|_| Plan::Submit).collect();
        plans.push(Plan::Done(PathBuf::from("done.png")));
        let order: Vec<usize> = start_order(plans, &prepared, 3).map(|(i, _)| i).collect();
        // Rows 0..3 in manifest order, then the last three: 11 garments,
        // 3 garments, then the finished row.
        assert_eq!(order, [0, 1, 2, 4, 3, 5]);
    }
}
