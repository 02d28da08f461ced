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
    /// An unknown outcome settled by the account's request history: the
    /// service provably did not accept the POST (nothing billed); `reason`
    /// holds the proof. A rerun submits the row, as after `rejected`.
    Unbilled,
    /// A run began (not a row's record: `row` is empty). With [`Alive`](Kind::Alive)
    /// it bounds when the run's POSTs can have reached the service.
    Started,
    /// The run that wrote it was still running (written at least every
    /// [`ALIVE_EVERY`] while a run lasts; `row` is empty).
    Alive,
}

impl Kind {
    /// Whether the record is of a run, not of a row.
    pub fn of_run(self) -> bool {
        matches!(self, Kind::Started | Kind::Alive)
    }
}

/// A running batch writes an [`Kind::Alive`] record at least this often, so
/// that a run killed mid-submit is known to have stopped at most this long
/// after its last record.
pub const ALIVE_EVERY: Duration = Duration::from_secs(30);

/// One record (line) of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    #[serde(rename = "event")]
    pub kind: Kind,
    /// The row id from the manifest.
    pub row: String,
    /// The row's fingerprint when this was written (see
    /// [`crate::fingerprint`]): records under another fingerprint are of an
    /// earlier version of the row (it was edited since).
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
    /// What the row sends (`submitting`), as [`crate::fingerprint::Inputs`]
    /// JSON: so that a row edited since can be told what changed. Kept as
    /// plain JSON here, so that no shape of it can make a record unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<serde_json::Value>,
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
            inputs: None,
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

    /// With the row's inputs.
    #[must_use]
    pub fn inputs(mut self, inputs: serde_json::Value) -> Self {
        self.inputs = Some(inputs);
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
            kind if kind.of_run() => Ok(()),
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

/// What the journal says of one version of a row: its records under one
/// fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The fingerprint.
    pub fingerprint: String,
    /// Where its records leave it (`None`: refused, nothing accepted).
    pub state: Option<RowState>,
    /// The inputs its first record that has them carries.
    pub inputs: Option<serde_json::Value>,
}

/// What the journal says of one row id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The state of the row as it is now (its current fingerprints).
    pub current: Option<RowState>,
    /// Earlier versions (other fingerprints: the row was edited since), in
    /// the order they first appear.
    pub earlier: Vec<Version>,
    /// For each output path a `completed` record named: the fingerprint of
    /// the last one, whose image the file holds.
    pub owners: HashMap<PathBuf, String>,
}

impl History {
    /// Whether the file at `path` holds the image of the version with
    /// `fingerprint` (the last `completed` record naming `path` is its).
    pub fn owns(&self, path: &Path, fingerprint: &str) -> bool {
        self.owners.get(path).is_some_and(|f| f == fingerprint)
    }
}

/// Fold a journal's events into one [`History`] per row id. `is_current`
/// says which of a row's fingerprints are the row as it is now (there may
/// be several: the form this version writes, and forms older versions
/// wrote for the same inputs); records under any other are an earlier
/// version's.
pub fn fold<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    mut is_current: impl FnMut(&str, &str) -> bool,
) -> HashMap<String, History> {
    let mut rows: HashMap<String, History> = HashMap::new();
    let mut current: HashMap<(&str, &str), bool> = HashMap::new();
    for event in events.into_iter().filter(|e| !e.kind.of_run()) {
        let (row, fingerprint) = (event.row.as_str(), event.fingerprint.as_str());
        let now = *current
            .entry((row, fingerprint))
            .or_insert_with(|| is_current(row, fingerprint));
        let history = rows.entry(row.to_string()).or_default();
        if event.kind == Kind::Completed
            && let Some(output) = &event.output
        {
            history
                .owners
                .insert(output.clone(), fingerprint.to_string());
        }
        if now {
            apply(&mut history.current, event);
            continue;
        }
        let found = history
            .earlier
            .iter()
            .position(|v| v.fingerprint == fingerprint);
        let index = found.unwrap_or_else(|| {
            history.earlier.push(Version {
                fingerprint: fingerprint.to_string(),
                state: None,
                inputs: None,
            });
            history.earlier.len() - 1
        });
        let version = &mut history.earlier[index];
        if version.inputs.is_none() {
            version.inputs.clone_from(&event.inputs);
        }
        apply(&mut version.state, event);
    }
    rows
}

/// One record's effect on a version's state.
fn apply(state: &mut Option<RowState>, event: &Event) {
    let reason = || event.reason.clone().unwrap_or_default();
    *state = Some(match (event.kind, &event.request_id, &event.output) {
        (Kind::Rejected | Kind::Unbilled, ..) => {
            *state = None;
            return;
        }
        // `fold` leaves run records out.
        (Kind::Started | Kind::Alive, ..) => return,
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
            at: match state {
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
    });
}
