//! A journal record ([`Event`]), and what a row's records add up to
//! ([`fold`] into a [`RowState`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How long the service keeps a job; older ids are not re-attached.
pub const RETENTION: Duration = Duration::from_hours(1);

/// What happened to a row (the `event` field of a record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The POST for this row is about to be sent (the intent).
    Submitting,
    /// The service accepted the row's job; `request_id` is set.
    Submitted,
    /// The output was saved; `request_id`, `output` and `bytes` are set.
    Completed,
    /// The row ended without an output; `reason` says why.
    Failed,
    /// The service answered the POST with an error: the job was provably
    /// not accepted (nothing billed), so a rerun submits the row again.
    Rejected,
    /// The POST was sent but its outcome is unknown (the connection dropped
    /// after sending): the service may have accepted and billed the job.
    Ambiguous,
}

/// One record (line) of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    #[serde(rename = "event")]
    pub kind: Kind,
    /// The row id from the manifest.
    pub row: String,
    /// The row's fingerprint when this was written (see `Row::fingerprint`):
    /// records of a row edited since are ignored.
    pub fingerprint: String,
    /// The job's id, once the service gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Where the image was written (`completed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
    /// The image's size in bytes (`completed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Why (`failed`, `rejected`, `ambiguous`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix seconds when it was written.
    pub at: u64,
}

impl Event {
    /// A record of `kind` for this row, stamped now.
    pub fn new(kind: Kind, row: &str, fingerprint: &str) -> Self {
        Self {
            kind,
            row: row.to_string(),
            fingerprint: fingerprint.to_string(),
            request_id: None,
            output: None,
            bytes: None,
            reason: None,
            at: now_secs(),
        }
    }

    /// With the job's id.
    #[must_use]
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// With a reason.
    #[must_use]
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// With the saved output.
    #[must_use]
    pub fn output(mut self, path: &Path, bytes: u64) -> Self {
        self.output = Some(path.to_path_buf());
        self.bytes = Some(bytes);
        self
    }

    /// Whether the record carries what its kind needs; a record that does
    /// not is damage, not a state.
    pub(super) fn check(&self) -> Result<(), String> {
        let missing = |field: &str| Err(format!("a `{:?}` record without `{field}`", self.kind));
        match self.kind {
            Kind::Submitted | Kind::Completed if self.request_id.is_none() => missing("request_id"),
            Kind::Completed if self.output.is_none() => missing("output"),
            _ if self.row.is_empty() => missing("row"),
            _ => Ok(()),
        }
    }
}

/// What the journal says of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowState {
    /// Accepted with this id at this time; waiting was interrupted.
    Live {
        /// The job's id.
        request_id: String,
        /// Unix seconds of acceptance.
        at: u64,
    },
    /// Done; the output is at this path.
    Completed {
        /// The output path.
        output: PathBuf,
        /// The job's id, to fetch the image again should the file be gone
        /// (a crash before the file system made the saved file durable).
        request_id: String,
        /// Unix seconds of acceptance (of completion, for a journal that
        /// lost the acceptance record): the id is good for an hour.
        at: u64,
    },
    /// Ended without output.
    Failed { reason: String },
    /// May have been accepted; no id known.
    Ambiguous { reason: String },
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Fold a journal's events into one state per row id. Events for a row whose
/// fingerprint differs from `current` (the row was edited since) are ignored.
pub fn fold<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    current: &HashMap<String, String>,
) -> HashMap<String, RowState> {
    let mut states = HashMap::new();
    for event in events {
        let row = event.row.as_str();
        if current.get(row) != Some(&event.fingerprint) {
            continue;
        }
        let reason = || event.reason.clone().unwrap_or_default();
        let state = match (event.kind, &event.request_id, &event.output) {
            (Kind::Rejected, ..) => {
                states.remove(row);
                continue;
            }
            (Kind::Submitting, ..) => RowState::Ambiguous {
                reason: "the run stopped while this row's submit was in flight; the service may have accepted it".to_string(),
            },
            (Kind::Submitted, Some(request_id), _) => RowState::Live {
                request_id: request_id.clone(),
                at: event.at,
            },
            (Kind::Completed, Some(request_id), Some(output)) => RowState::Completed {
                output: output.clone(),
                request_id: request_id.clone(),
                at: match states.get(row) {
                    Some(RowState::Live { at, .. }) => *at,
                    _ => event.at,
                },
            },
            (Kind::Failed, ..) => RowState::Failed { reason: reason() },
            (Kind::Ambiguous, ..) => RowState::Ambiguous { reason: reason() },
            // `check` refused these when reading; never guess a state.
            (Kind::Submitted | Kind::Completed, ..) => RowState::Ambiguous {
                reason: "an incomplete journal record".to_string(),
            },
        };
        states.insert(row.to_string(), state);
    }
    states
}
