//! What a running batch says: a line per step when stderr is not a
//! terminal (else the bar), the lines that are said either way (a paid
//! result to fetch, an edited row), and, after a long silence, what the
//! batch is waiting for. A reason shared by many rows is said in full once.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::execute::Run;
use super::report::{Outcome, changed_text, recovery};
use crate::manifest::Row;
use crate::term;

impl Run {
    /// A progress line (lines mode only).
    pub(super) fn say(&self, line: &str) {
        if self.lines {
            self.heartbeat.reset();
            self.bar.suspend(|| term::err_line(line));
        }
    }

    /// A line said bar or not: something the user must act on.
    pub(super) fn tell(&self, line: &str) {
        self.heartbeat.reset();
        self.bar.suspend(|| term::err_line(line));
    }

    /// The client's pace, for messages: `API calls paced at 5/min (one
    /// every 12 s)`, when it has a budget (configured, or learned from
    /// `429`s).
    pub(super) fn pace(&self) -> Option<String> {
        self.client.rate_budget().map(|b| {
            let spacing = Duration::from_secs_f64(60.0 / b.requests_per_minute().max(1e-9));
            format!(
                "API calls paced at {} (one every {})",
                b,
                crate::cli::show_duration(spacing)
            )
        })
    }

    pub(super) fn refresh(&self) {
        let budget = self.pace().map(|p| format!(" · {p}")).unwrap_or_default();
        self.bar.set_message(format!(
            "failed {} · in flight {}{budget}",
            self.failed.load(Ordering::Relaxed),
            self.in_flight.load(Ordering::Relaxed)
        ));
    }

    /// Once a second: the bar's message, and in lines mode a line after a
    /// long silence saying what the batch waits for.
    pub(super) fn beat(&self) {
        self.refresh();
        if !self.lines || !self.heartbeat.due() {
            return;
        }
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        let submitting = self.submitting.load(Ordering::Relaxed);
        let pace = self.pace().map(|p| format!("; {p}")).unwrap_or_default();
        term::err_line(&format!(
            "batch: {} done, {in_flight} in flight ({submitting} submitting, {} waiting on their jobs){pace}",
            self.bar.position(),
            in_flight.saturating_sub(submitting),
        ));
    }

    /// The line for a row's outcome.
    pub(super) fn report(&self, row: &Row, outcome: &Outcome) {
        let id = term::inline(&row.id);
        match outcome {
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
                self.tell(&format!(
                    "row {id}: accepted as {} but not saved ({}); fetch it with: {}",
                    term::inline(request_id),
                    term::inline(reason),
                    recovery(request_id, output)
                ));
            }
            Outcome::Ambiguous { reason } => self.say(&format!(
                "row {id}: {}; not resubmitted (--resubmit-ambiguous sends it again, at the risk of a second charge)",
                term::inline(reason)
            )),
            Outcome::NotSent { reason, .. } => {
                let first = self
                    .not_sent
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(reason.clone())
                    .or_insert_with(|| row.id.clone())
                    .clone();
                if first == row.id {
                    self.say(&format!("row {id}: not sent: {}", term::inline(reason)));
                } else {
                    self.say(&format!(
                        "row {id}: not sent (the same reason as row {})",
                        term::inline(&first)
                    ));
                }
            }
            Outcome::OutputExists { path } => self.say(&format!(
                "row {id}: {} exists but the journal does not know it; not resubmitted (--overwrite sends it)",
                path.display()
            )),
            Outcome::Changed {
                request_id,
                changes,
                earlier_output,
                kept,
            } => self.tell(&format!(
                "row {id}: {}",
                changed_text(request_id, changes, earlier_output.as_deref(), kept.as_deref())
            )),
        }
    }
}
