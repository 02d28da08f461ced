//! The parity report: every step as the target answered it (normalised),
//! then the differences, one per line; or the same as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::compare::{self, Difference};
use super::scenario::{Observation, STEPS};

/// The version of the JSON report's layout; raised when a field changes
/// meaning or goes away.
pub const REPORT_VERSION: u32 = 1;

/// One step on both sides.
#[derive(Debug, Serialize)]
pub struct Compared {
    /// Its name (one of [`STEPS`]).
    pub step: &'static str,
    /// What the target answered.
    pub target: Observation,
    /// What the reference mock answered.
    pub mock: Observation,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// The target's base URL.
    pub target: String,
    /// Whether this was a live run (`--live`).
    pub live: bool,
    /// Every step, in order.
    pub steps: Vec<Compared>,
    /// How many differences there are.
    pub difference_count: usize,
    /// The differences, step by step.
    pub differences: Vec<Difference>,
}

impl Report {
    /// Pairs the two sides' observations step by step and lists the
    /// differences.
    pub fn new(
        target: String,
        live: bool,
        theirs: Vec<Observation>,
        ours: Vec<Observation>,
    ) -> Self {
        let steps: Vec<Compared> = STEPS
            .iter()
            .zip(theirs.into_iter().zip(ours))
            .map(|(step, (target, mock))| Compared { step, target, mock })
            .collect();
        let differences: Vec<Difference> = steps
            .iter()
            .flat_map(|s| compare::step(s.step, &s.target, &s.mock))
            .collect();
        Self {
            version: REPORT_VERSION,
            target,
            live,
            steps,
            difference_count: differences.len(),
            differences,
        }
    }

    /// The report for people: a line per step, then a line per difference.
    pub fn text(&self) -> String {
        let mut out = format!(
            "tryon parity report (version {})\n\
             target: {}{}\n\
             each answer is checked against the API spec (tryon-api's openapi/segmind-tryon.yaml) and the job lifecycle \
             (validating proxy) and compared with the tryon mock's answer to the same step; \
             ids, URLs, timestamps and timings are masked\n",
            self.version,
            self.target,
            if self.live { " (live)" } else { "" },
        );
        let width = self
            .steps
            .iter()
            .map(|s| s.target.request.len())
            .max()
            .unwrap_or(0);
        for s in &self.steps {
            let _ = writeln!(
                out,
                "  {:<14} {:<width$}  {}",
                s.step,
                s.target.request,
                answered(&s.target)
            );
        }
        let _ = writeln!(out, "differences: {}", self.difference_count);
        for d in &self.differences {
            let _ = writeln!(
                out,
                "DIFF {} {} {}: expected {}, got {}",
                d.step, d.against, d.pointer, d.expected, d.actual
            );
        }
        out
    }
}

/// What one side answered a step, on one line.
fn answered(o: &Observation) -> String {
    let mut line = String::new();
    if let Some(a) = &o.answer {
        let _ = write!(
            line,
            "{} {}",
            a.status,
            a.content_type.as_deref().unwrap_or("(no content type)")
        );
        if a.retry_after {
            line.push_str(" Retry-After");
        }
        if !o.statuses.is_empty() {
            let _ = write!(
                line,
                " | {} in {} poll(s)",
                compare::sequence(&o.statuses),
                o.polls.unwrap_or(0)
            );
        }
        let _ = write!(line, " | {}", a.body);
        if let Some(text) = &a.error_text {
            let _ = write!(line, " (error: {text:?})");
        }
    }
    if let Some(p) = &o.problem {
        if !line.is_empty() {
            line.push_str(" | ");
        }
        line.push_str(p);
    }
    line
}
