//! Running the planned rows with bounded concurrency, journaling each step
//! through the one journal writer.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt as _;
use indicatif::ProgressBar;
use tryon_client::{Client, Error, Job};

use super::plan::{Keep, Plan, RowPlan};
use super::report::{Kept, Outcome, RowResult};
mod recover;

use super::spend::Spend;
use super::status::EXPIRED;
use super::validate::Prepared;
use crate::exit::{Code, code_of, describe};
use crate::journal::{ALIVE_EVERY, Event, Kind, Writer};
use crate::manifest::Row;
use crate::output::Throttle;
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
    /// Rows whose submit is under way (waiting for its slot or answer).
    pub submitting: AtomicUsize,
    /// Reasons rows were not sent, each with the first row it was said of:
    /// a reason is said in full once.
    pub not_sent: Mutex<HashMap<String, String>>,
    /// When to print the next "still waiting" line (lines mode).
    pub heartbeat: Throttle,
    /// Makes the report's thumbnails of saved outputs, off this path.
    pub thumbnails: Arc<Thumbnailer>,
    /// `--max-spend`: the most this run's submits may cost, and what they
    /// have cost so far (each at its estimate, counted before it is sent
    /// and given back when the service provably did not take it).
    pub spend: Spend,
}

impl Run {
    /// Shared state for a batch on `client`, writing `journal`.
    pub fn new(
        client: Client,
        journal: Writer,
        timeout: Duration,
        bar: ProgressBar,
        lines: bool,
        thumbnails: Arc<Thumbnailer>,
        spend: Spend,
    ) -> Self {
        Self {
            client,
            journal,
            timeout,
            halt: OnceLock::new(),
            bar,
            lines,
            failed: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            submitting: AtomicUsize::new(0),
            not_sent: Mutex::new(HashMap::new()),
            heartbeat: Throttle::new(HEARTBEAT),
            thumbnails,
            spend,
        }
    }
}

/// In lines mode, after this long with nothing said, a line says what the
/// batch is waiting for.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// Run every row's plan, `concurrency` at a time, in the order of
/// [`start_order`]; one result per row, in manifest order. When `stop`
/// completes first (the run was interrupted), the rows still in flight
/// are dropped where they stand, as a kill would leave them (the journal
/// has what each reached), and have no result.
pub async fn execute(
    run: &Arc<Run>,
    rows: &Arc<Vec<Row>>,
    prepared: &Arc<Vec<Prepared>>,
    plans: Vec<RowPlan>,
    concurrency: usize,
    stop: impl Future<Output = ()>,
) -> Vec<Option<RowResult>> {
    let mut results: Vec<Option<RowResult>> = (0..rows.len()).map(|_| None).collect();
    let order = start_order(plans, prepared, concurrency);
    let mut stream = futures::stream::iter(order)
        .map(|(index, (plan, _))| {
            let run = Arc::clone(run);
            let rows = Arc::clone(rows);
            let prepared = Arc::clone(prepared);
            async move {
                let result = run.process(&rows[index], &prepared[index], plan).await;
                (index, result)
            }
        })
        .buffer_unordered(concurrency);
    let mut stop = std::pin::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // The first tick is at once: the run's `started` record says as much.
    let mut alive = tokio::time::interval(ALIVE_EVERY);
    alive.tick().await;
    loop {
        tokio::select! {
            next = stream.next() => match next {
                Some((index, result)) => results[index] = Some(result),
                None => break,
            },
            _ = tick.tick() => run.beat(),
            _ = alive.tick() => {
                let _ = run.record(Event::new(Kind::Alive, "", "")).await;
            }
            () = &mut stop => break,
        }
    }
    results
}

/// The order rows start in, each with its index: manifest order, except
/// the last `concurrency`, which start longest expected job first (the
/// client's `run_many` order), so the batch does not end waiting on a long
/// job that started last. A row that only reads or reports counts as
/// taking no time.
pub fn start_order(
    plans: Vec<RowPlan>,
    prepared: &[Prepared],
    concurrency: usize,
) -> impl Iterator<Item = (usize, (RowPlan, Duration))> + use<> {
    let keyed: Vec<(RowPlan, Duration)> = plans
        .into_iter()
        .enumerate()
        .map(|(index, plan)| {
            let expected = match plan.plan {
                Plan::Submit | Plan::Attach(_) => prepared
                    .get(index)
                    .map_or(Duration::ZERO, |p| p.request.expected_duration()),
                _ => Duration::ZERO,
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

    async fn process(&self, row: &Row, prepared: &Prepared, plan: RowPlan) -> RowResult {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.refresh();
        if let Some(note) = &plan.note {
            self.tell(note);
        }
        let mut kept = Vec::new();
        let mut blocked = None;
        for keep in &plan.keep {
            let outcome = self.keep(row, prepared, keep).await;
            if let Outcome::Completed { path, .. } = &outcome {
                self.thumbnails.add(path);
            }
            if keep.from.is_some() && !matches!(outcome, Outcome::Completed { .. }) {
                blocked = Some(format!(
                    "the earlier image {} could not be kept as {}, so the new one is not submitted",
                    keep.from
                        .as_deref()
                        .map_or_else(String::new, |p| p.display().to_string()),
                    keep.to.display()
                ));
            }
            kept.push(Kept {
                request_id: keep.request_id.clone(),
                outcome,
            });
        }
        let outcome = match blocked {
            Some(reason) => Outcome::NotSent {
                reason,
                code: Code::Unsaved,
                stopped: false,
            },
            None => self.process_inner(row, prepared, plan.plan, &kept).await,
        };
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.report(row, &outcome);
        self.bar.inc(1);
        self.refresh();
        RowResult { outcome, kept }
    }

    async fn process_inner(
        &self,
        row: &Row,
        prepared: &Prepared,
        plan: Plan,
        kept: &[Kept],
    ) -> Outcome {
        let fingerprint = &prepared.fingerprint;
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
            Plan::Submit => match self.submit_row(row, prepared).await {
                Ok(job) => job,
                Err(outcome) => return outcome,
            },
            Plan::Expired(request_id) => {
                let reason = EXPIRED.to_string();
                return self.fail(row, fingerprint, Some(request_id), reason).await;
            }
            Plan::Recover { request_id, url } => {
                return self
                    .recover(row, fingerprint, request_id, url, &prepared.output)
                    .await;
            }
            Plan::Changed(changed) => {
                let kept = kept.iter().find_map(|k| match &k.outcome {
                    Outcome::Completed { path, .. } if k.request_id == changed.request_id => {
                        Some(path.clone())
                    }
                    _ => None,
                });
                return Outcome::Changed {
                    request_id: changed.request_id,
                    changes: changed.changes,
                    earlier_output: changed.earlier_output,
                    kept,
                };
            }
            // Done, failed, ambiguous or skipped in an earlier run: it only
            // reports.
            settled => return Outcome::of_plan(settled, &prepared.output),
        };
        self.collect(row, fingerprint, &job, &prepared.output).await
    }

    /// Keep an earlier version's image under its previous name: move it
    /// there from the row's output path, or fetch it from its job (no new
    /// charge). Its records go under the earlier version's fingerprint.
    async fn keep(&self, row: &Row, prepared: &Prepared, keep: &Keep) -> Outcome {
        let Some(from) = &keep.from else {
            self.say(&format!(
                "row {}: fetching the image of its earlier job {} (the row was edited since)",
                term::inline(&row.id),
                term::inline(&keep.request_id)
            ));
            let job = self
                .client
                .job(&keep.request_id)
                .with_expected_duration(prepared.request.expected_duration());
            let outcome = self.collect(row, &keep.fingerprint, &job, &keep.to).await;
            if let Outcome::Completed { path, .. } = &outcome {
                self.tell(&format!(
                    "row {}: kept the image of its earlier job {} as {}",
                    term::inline(&row.id),
                    term::inline(&keep.request_id),
                    path.display()
                ));
            }
            return outcome;
        };
        // Moved first, then recorded: should the record not be written,
        // the image is still found under its previous name.
        let moved = std::fs::rename(from, &keep.to)
            .and_then(|()| std::fs::symlink_metadata(&keep.to).map(|m| m.len()));
        let bytes = match moved {
            Ok(bytes) => bytes,
            Err(e) => {
                let reason = format!(
                    "cannot move {} to {}: {e}",
                    from.display(),
                    keep.to.display()
                );
                return Outcome::Unsaved {
                    request_id: keep.request_id.clone(),
                    output: keep.to.clone(),
                    reason,
                };
            }
        };
        let record = Event::new(Kind::Completed, &row.id, &keep.fingerprint)
            .request_id(&keep.request_id)
            .output(&keep.to, bytes);
        if let Err(reason) = self.record(record).await {
            return Outcome::Unsaved {
                request_id: keep.request_id.clone(),
                output: keep.to.clone(),
                reason: format!("moved, but {reason}"),
            };
        }
        Outcome::Completed {
            path: keep.to.clone(),
            earlier: true,
        }
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

    /// Submit a row: the intent (with what it sends) is durable in the
    /// journal before the POST is sent, and the request id before anything
    /// waits on it.
    async fn submit_row(&self, row: &Row, prepared: &Prepared) -> Result<Job, Outcome> {
        let fingerprint = &prepared.fingerprint;
        if let Some((reason, code)) = self.halt.get() {
            return Err(Outcome::NotSent {
                reason: reason.clone(),
                code: *code,
                stopped: true,
            });
        }
        let (first, extra) = self.spend.prices;
        let cost = super::dry_run::estimate(prepared.request.garment_count(), first, extra);
        // A row the cap refuses is refused alone: a cheaper one may fit.
        if let Err(reason) = self.spend.take(&self.client, cost).await {
            return Err(Outcome::NotSent {
                reason,
                code: Code::Auth,
                stopped: false,
            });
        }
        let intent =
            Event::new(Kind::Submitting, &row.id, fingerprint).inputs(prepared.inputs.to_value());
        self.record(intent).await.map_err(|reason| {
            self.spend.give_back(cost);
            Outcome::NotSent {
                reason,
                code: Code::Unsaved,
                stopped: false,
            }
        })?;
        self.submitting.fetch_add(1, Ordering::Relaxed);
        let submitted = self.client.submit(&prepared.request).await;
        self.submitting.fetch_sub(1, Ordering::Relaxed);
        match submitted {
            Ok(job) => {
                self.spend.made(job.request_id(), cost);
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
                let reason = e.to_string();
                if code == Code::Auth {
                    self.stop(&reason, code);
                }
                self.spend.give_back(cost);
                let event = Event::new(Kind::Rejected, &row.id, fingerprint).reason(&reason);
                let _ = self.record(event).await;
                Err(Outcome::NotSent {
                    reason,
                    code,
                    stopped: false,
                })
            }
        }
    }

    /// Wait for an accepted job and save its output at `path`.
    async fn collect(&self, row: &Row, fingerprint: &str, job: &Job, path: &Path) -> Outcome {
        let request_id = job.request_id().to_string();
        let output = match job.wait_with(self.timeout).await {
            Ok(output) => output,
            Err(Error::Failed { detail, .. }) => {
                return self.fail(row, fingerprint, Some(request_id), detail).await;
            }
            Err(e @ Error::Expired { .. }) => {
                // The status is gone; the output may not be (the history
                // names it).
                if let Ok(Some(output)) = self.client.history_output_of(&request_id).await {
                    self.say(&format!(
                        "row {}: its job {} expired; fetching its output from the account's history",
                        term::inline(&row.id),
                        term::inline(&request_id)
                    ));
                    return self
                        .save(row, fingerprint, &request_id, &output, path)
                        .await;
                }
                return self
                    .fail(row, fingerprint, Some(request_id), e.to_string())
                    .await;
            }
            Err(e) => {
                return Outcome::Pending {
                    request_id,
                    code: code_of(&e),
                    reason: describe(&e, self.timeout, self.client.rate_budget()),
                };
            }
        };
        self.save(row, fingerprint, &request_id, &output, path)
            .await
    }

    /// Save a job's output at `path` and journal it.
    async fn save(
        &self,
        row: &Row,
        fingerprint: &str,
        request_id: &str,
        output: &tryon_client::Output,
        path: &Path,
    ) -> Outcome {
        let request_id = request_id.to_string();
        let unsaved = |reason: String| Outcome::Unsaved {
            request_id: request_id.clone(),
            output: path.to_path_buf(),
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
                    path: path.to_path_buf(),
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
                reason: describe(&e, self.timeout, self.client.rate_budget()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tryon_client::{Image, TryOnRequest};

    use super::*;

    async fn prepared(garments: usize) -> Prepared {
        let request = TryOnRequest::builder()
            .person(Image::url("https://example.com/p.jpg"))
            .garments((0..garments).map(|g| Image::url(format!("https://example.com/{g}.jpg"))))
            .build()
            .unwrap();
        let checked = request.preflight().await.unwrap();
        let row = crate::manifest::parse(
            Path::new("m.csv"),
            "person,garments\nhttps://example.com/p.jpg,https://example.com/0.jpg\n",
            Path::new("."),
        )
        .unwrap()
        .remove(0);
        Prepared::new(&row, request, &checked, PathBuf::from("out.png"))
    }

    fn plan(plan: Plan) -> RowPlan {
        RowPlan {
            plan,
            keep: Vec::new(),
            note: None,
        }
    }

    #[tokio::test]
    async fn the_last_rows_start_longest_first_and_finished_rows_take_no_time() {
        // Garments per row: 1, 11, 1, 3, 11, 1; the last row finished in an
        // earlier run (it only reports).
        let mut rows = Vec::new();
        for garments in [1, 11, 1, 3, 11, 1] {
            rows.push(prepared(garments).await);
        }
        let mut plans: Vec<RowPlan> = (0..5).map(|_| plan(Plan::Submit)).collect();
        plans.push(plan(Plan::Done(PathBuf::from("done.png"))));
        let order: Vec<usize> = start_order(plans, &rows, 3).map(|(i, _)| i).collect();
        // Rows 0..3 in manifest order, then the last three: 11 garments,
        // 3 garments, then the finished row.
        assert_eq!(order, [0, 1, 2, 4, 3, 5]);
    }
}
