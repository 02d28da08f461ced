//! The batch journal: an append-only JSONL file beside the outputs that makes
//! `tryon batch` resumable without ever paying twice.
//!
//! Each line is one event. A row's `submitting` event is written (and
//! flushed to disk) before its POST is sent, and its `submitted` event, with
//! the request id, before the job is waited on. On a rerun the journal is
//! folded into one [`RowState`] per row:
//!
//! | last event | rerun does |
//! |---|---|
//! | none, or `rejected` (the service refused the POST; nothing billed) | submits the row |
//! | `completed` | skips it |
//! | `failed` | skips it (reported again; `--retry-failed` resubmits) |
//! | `submitted`, under an hour old | re-attaches to the request id; never resubmits |
//! | `submitted`, older | reports it expired (the service keeps jobs 1 h) |
//! | `submitting` or `ambiguous` (the POST may have reached the server, no id was recorded) | reports it; `--resubmit-ambiguous` sends it again, at the risk of a second charge |

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The journal's file name inside the output folder.
pub const FILE_NAME: &str = "tryon-journal.jsonl";

/// How long the service keeps a job; older ids are not re-attached.
pub const RETENTION: Duration = Duration::from_secs(3600);

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The POST for this row is about to be sent.
    Submitting {
        /// Row id.
        row: String,
        /// Row fingerprint.
        fingerprint: String,
        /// Unix seconds.
        at: u64,
    },
    /// The service accepted the row's job.
    Submitted {
        /// Row id.
        row: String,
        /// Row fingerprint.
        fingerprint: String,
        /// The job's id, for re-attaching.
        request_id: String,
        /// Unix seconds.
        at: u64,
    },
    /// The output was saved.
    Completed {
        /// Row id.
        row: String,
        /// Row fingerprint.
        fingerprint: String,
        /// The job's id.
        request_id: String,
        /// Where the image was written.
        output: PathBuf,
        /// Its size in bytes.
        bytes: u64,
        /// Unix seconds.
        at: u64,
    },
    /// The row ended without an output.
    Failed {
        /// Row id.
        row: String,
        /// Row fingerprint.
        fingerprint: String,
        /// The job's id, when it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        /// Why.
        reason: String,
        /// Unix seconds.
        at: u64,
    },
    /// The service answered the POST with an error: the job was provably
    /// not accepted (nothing billed), so a rerun submits the row again.
    Rejected {
        /// Row id.
        row: String,
        /// Row fingerprint.
        fingerprint: String,
        /// The error.
        reason: String,
        /// Unix seconds.
        at: u64,
    },
    /// The POST was sent but its outcome is unknown (the connection dropped
    /// after sending): the service may have accepted and billed the job.
    Ambiguous {
        /// Row id.
        row: String,
        /// Row fingerprint.
        fingerprint: String,
        /// What happened.
        reason: String,
        /// Unix seconds.
        at: u64,
    },
}

impl Event {
    fn row(&self) -> (&str, &str) {
        match self {
            Event::Submitting {
                row, fingerprint, ..
            }
            | Event::Submitted {
                row, fingerprint, ..
            }
            | Event::Completed {
                row, fingerprint, ..
            }
            | Event::Failed {
                row, fingerprint, ..
            }
            | Event::Rejected {
                row, fingerprint, ..
            }
            | Event::Ambiguous {
                row, fingerprint, ..
            } => (row, fingerprint),
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
    },
    /// Ended without output.
    Failed {
        /// Why.
        reason: String,
    },
    /// May have been accepted; no id known.
    Ambiguous {
        /// What happened.
        reason: String,
    },
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
        let (row, fingerprint) = event.row();
        if current.get(row).map(String::as_str) != Some(fingerprint) {
            continue;
        }
        let state = match event {
            Event::Rejected { .. } => {
                states.remove(row);
                continue;
            }
            Event::Submitting { .. } => RowState::Ambiguous {
                reason: "the run stopped while this row's submit was in flight; the service may have accepted it".to_string(),
            },
            Event::Submitted { request_id, at, .. } => RowState::Live {
                request_id: request_id.clone(),
                at: *at,
            },
            Event::Completed { output, .. } => RowState::Completed {
                output: output.clone(),
            },
            Event::Failed { reason, .. } => RowState::Failed {
                reason: reason.clone(),
            },
            Event::Ambiguous { reason, .. } => RowState::Ambiguous {
                reason: reason.clone(),
            },
        };
        states.insert(row.to_string(), state);
    }
    states
}

/// An open journal: reads what is there, appends what happens.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Open (creating) the journal in `dir` and read its events.
    pub fn open(dir: &Path) -> std::io::Result<(Self, Vec<Event>)> {
        std::fs::create_dir_all(dir)?;
        let events = read(dir)?;
        let path = dir.join(FILE_NAME);
        // A line cut short by a crash has no newline: cut it off, so the
        // next event starts a fresh line and the file stays readable.
        let bytes = std::fs::read(&path).unwrap_or_default();
        if bytes.last().is_some_and(|b| *b != b'\n') {
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(keep as u64)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok((Self { path, file }, events))
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Read the events of the journal in `dir`, if there is one, without
/// creating anything. A last line cut short by a crash is skipped with a
/// warning; any other bad line is an error, since guessing could bill a row
/// twice.
pub fn read(dir: &Path) -> std::io::Result<Vec<Event>> {
    let path = dir.join(FILE_NAME);
    let mut events = Vec::new();
    if path.exists() {
        let lines: Vec<String> = BufReader::new(File::open(&path)?)
            .lines()
            .collect::<Result<_, _>>()?;
        let last = lines.len();
        for (index, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(line) {
                Ok(event) => events.push(event),
                Err(e) if index + 1 == last => {
                    tracing::warn!(journal = %path.display(), error = %e, "skipping a last journal line cut short");
                }
                Err(e) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} line {}: {e}", path.display(), index + 1),
                    ));
                }
            }
        }
    }
    Ok(events)
}

impl Journal {
    /// Append one event and flush it to disk before returning, so that what
    /// the journal says is true even if the process is killed right after.
    pub fn append(&mut self, event: &Event) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(rows: &[(&str, &str)]) -> HashMap<String, String> {
        rows.iter()
            .map(|(r, f)| ((*r).to_string(), (*f).to_string()))
            .collect()
    }

    #[test]
    fn fold_keeps_the_last_event_per_row_and_ignores_edited_rows() {
        let events = vec![
            Event::Submitting {
                row: "a".into(),
                fingerprint: "1".into(),
                at: 1,
            },
            Event::Submitted {
                row: "a".into(),
                fingerprint: "1".into(),
                request_id: "r-a".into(),
                at: 2,
            },
            Event::Submitting {
                row: "b".into(),
                fingerprint: "1".into(),
                at: 3,
            },
            Event::Submitted {
                row: "c".into(),
                fingerprint: "old".into(),
                request_id: "r-c".into(),
                at: 4,
            },
            Event::Submitted {
                row: "d".into(),
                fingerprint: "1".into(),
                request_id: "r-d".into(),
                at: 5,
            },
            Event::Completed {
                row: "d".into(),
                fingerprint: "1".into(),
                request_id: "r-d".into(),
                output: "d.png".into(),
                bytes: 9,
                at: 6,
            },
        ];
        let states = fold(
            &events,
            &fp(&[("a", "1"), ("b", "1"), ("c", "new"), ("d", "1")]),
        );
        assert_eq!(
            states["a"],
            RowState::Live {
                request_id: "r-a".into(),
                at: 2
            }
        );
        assert!(matches!(states["b"], RowState::Ambiguous { .. }));
        assert!(!states.contains_key("c"), "an edited row is new");
        assert_eq!(
            states["d"],
            RowState::Completed {
                output: "d.png".into()
            }
        );
    }

    #[test]
    fn journal_round_trips_and_survives_a_cut_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, events) = Journal::open(dir.path()).unwrap();
        assert!(events.is_empty());
        let event = Event::Submitted {
            row: "a".into(),
            fingerprint: "f".into(),
            request_id: "r".into(),
            at: 7,
        };
        journal.append(&event).unwrap();
        drop(journal);
        // Simulate a crash in the middle of writing the next line.
        let path = dir.path().join(FILE_NAME);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"event\":\"compl");
        std::fs::write(&path, text).unwrap();

        let (mut journal, events) = Journal::open(dir.path()).unwrap();
        assert_eq!(events, vec![event.clone()]);
        let failed = Event::Failed {
            row: "b".into(),
            fingerprint: "f".into(),
            request_id: None,
            reason: "x".into(),
            at: 8,
        };
        journal.append(&failed).unwrap();
        drop(journal);
        let (_, events) = Journal::open(dir.path()).unwrap();
        assert_eq!(
            events,
            vec![event, failed],
            "the appended line starts on a fresh line"
        );
    }

    #[test]
    fn a_bad_line_in_the_middle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            "garbage\n{\"event\":\"submitting\",\"row\":\"a\",\"fingerprint\":\"f\",\"at\":1}\n",
        )
        .unwrap();
        let err = Journal::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
