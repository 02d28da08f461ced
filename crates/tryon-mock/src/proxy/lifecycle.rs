//! The contract's job lifecycle, checked per request id across responses:
//! a status only moves forward (`QUEUED` → `PROCESSING` → `COMPLETED` |
//! `FAILED`), a `FAILED` job is served as `422`, and an id the proxy has
//! seen answers `404` only once its hour of retention is over.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::drift::{DriftRecord, Exchange};

/// How long the service keeps a job after submission (the contract).
pub(crate) const RETENTION: Duration = Duration::from_hours(1);

/// Most ids followed at once; beyond it the oldest are forgotten.
const MAX_TRACKED: usize = 100_000;

/// What the proxy knows of one job.
struct Job {
    /// The furthest status seen.
    status: String,
    first_seen: Instant,
}

/// Rank in the lifecycle; unknown statuses are not ranked.
fn rank(status: &str) -> Option<u8> {
    match status {
        "QUEUED" => Some(0),
        "PROCESSING" => Some(1),
        "COMPLETED" | "FAILED" => Some(2),
        _ => None,
    }
}

/// Every job seen through the proxy.
#[derive(Default)]
pub(crate) struct Lifecycle {
    jobs: HashMap<String, Job>,
}

impl Lifecycle {
    /// Checks one response about job `id` (from the path, or the submit's
    /// `request_id`) against what was seen before, and remembers it.
    pub(crate) fn observe(
        &mut self,
        id: &str,
        ex: &Exchange<'_>,
        body: Option<&Value>,
        now: Instant,
    ) -> Vec<DriftRecord> {
        let mut out = Vec::new();
        if ex.status == 404 {
            if let Some(job) = self.jobs.get(id) {
                let age = now.saturating_duration_since(job.first_seen);
                if age < RETENTION {
                    out.push(ex.record(
                        "/status".into(),
                        format!(
                            "the job (first seen {} s ago; kept {} s)",
                            age.as_secs(),
                            RETENTION.as_secs()
                        ),
                        "404".into(),
                    ));
                }
            }
            return out;
        }
        let Some(status) = body.and_then(|b| b["status"].as_str()) else {
            return out;
        };
        if status == "FAILED" && ex.status != 422 {
            out.push(ex.record(
                "/status".into(),
                "422 (a FAILED job is served as 422)".into(),
                ex.status.to_string(),
            ));
        }
        let Some(new_rank) = rank(status) else {
            return out;
        };
        if self.jobs.len() >= MAX_TRACKED && !self.jobs.contains_key(id) {
            self.jobs
                .retain(|_, j| now.saturating_duration_since(j.first_seen) < RETENTION);
            if self.jobs.len() >= MAX_TRACKED {
                return out;
            }
        }
        let job = self.jobs.entry(id.to_string()).or_insert_with(|| Job {
            status: status.to_string(),
            first_seen: now,
        });
        let old_rank = rank(&job.status).unwrap_or(0);
        if new_rank < old_rank || (new_rank == 2 && old_rank == 2 && status != job.status) {
            out.push(ex.record(
                "/body/status".into(),
                if old_rank == 2 {
                    format!("{} (terminal, seen before)", job.status)
                } else {
                    format!("{} or a later status (seen before)", job.status)
                },
                status.to_string(),
            ));
        } else {
            job.status = status.to_string();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(path: &str, status: u16) -> Exchange<'_> {
        Exchange {
            method: "GET",
            path,
            status,
            content_type: Some("application/json".into()),
            headers: Vec::new(),
            body: b"{}",
            key: None,
        }
    }

    #[test]
    fn failed_must_be_422_and_404_only_after_the_hour() {
        let mut life = Lifecycle::default();
        let t0 = Instant::now();
        let path = "/v2/requests/a/status";
        let queued = serde_json::json!({"status": "QUEUED"});
        assert!(
            life.observe("a", &exchange(path, 200), Some(&queued), t0)
                .is_empty()
        );
        let failed = serde_json::json!({"status": "FAILED"});
        let r = life.observe("a", &exchange(path, 200), Some(&failed), t0);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].pointer.as_str(), r[0].actual.as_str()),
            ("/status", "200")
        );
        assert!(
            life.observe("a", &exchange(path, 422), Some(&failed), t0)
                .is_empty()
        );
        // Terminal: COMPLETED after FAILED is a move, not allowed.
        let completed = serde_json::json!({"status": "COMPLETED"});
        let r = life.observe("a", &exchange(path, 200), Some(&completed), t0);
        assert_eq!(r[0].expected, "FAILED (terminal, seen before)");
        // 404 for a job seen a minute ago: drift; after the hour: allowed.
        let minute = t0 + Duration::from_mins(1);
        let r = life.observe("a", &exchange(path, 404), None, minute);
        assert_eq!(r[0].expected, "the job (first seen 60 s ago; kept 3600 s)");
        let later = t0 + RETENTION;
        assert!(
            life.observe("a", &exchange(path, 404), None, later)
                .is_empty()
        );
        // An id never seen: 404 is the documented answer.
        assert!(life.observe("b", &exchange(path, 404), None, t0).is_empty());
    }
}
