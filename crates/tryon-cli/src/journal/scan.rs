//! Reading a journal, and deciding what damage may be repaired.
//!
//! A crash can leave exactly one kind of damage: the last record cut short
//! (no newline, does not parse), because each record is one append followed
//! by an fsync before anything acts on it. Such a record never took effect:
//! if it was an intent (`submitting`), the POST it guarded was never sent;
//! if it was a `submitted`, the row's intent is still the last record, so
//! the row reads as ambiguous, never as "never sent". So a torn last record
//! is cut off. A complete last record that only lacks its newline is kept
//! (it may hold a live request id) and the newline added. Anything else (a
//! complete line that does not parse, a bad line in the middle, NUL bytes)
//! is not crash damage, and the run stops with the file and line number.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::event::Event;
use crate::term;

/// Damage that stops a run: where it is and what is wrong.
#[derive(Debug)]
pub struct Damage {
    /// The journal (or folder) concerned.
    pub path: PathBuf,
    /// The 1-based line, for damage in the file's content (`None` for an
    /// error reading or writing it).
    pub line: Option<usize>,
    /// What is wrong.
    pub problem: String,
}

impl Damage {
    /// An I/O error on `path`.
    pub fn io(path: &Path, error: &std::io::Error) -> Self {
        Self {
            path: path.to_path_buf(),
            line: None,
            problem: error.to_string(),
        }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(line) = self.line else {
            return write!(f, "journal {}: {}", self.path.display(), self.problem);
        };
        write!(
            f,
            "journal {} line {line}: {}\n  \
             This is not what a crash leaves (only a cut-short last record is), so tryon will not \
             guess which rows were sent: a guess could bill a row twice.\n  \
             To go on, either fix or delete that line by hand, or rerun with --journal-repair: it \
             keeps every record that parses, saves the damaged file beside it, marks each row named \
             on a damaged line ambiguous and prints any request id found there.",
            self.path.display(),
            self.problem
        )
    }
}

/// How the journal's last line ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// Empty, or ends with a newline.
    Clean,
    /// The last record is complete but has no newline: kept; the newline
    /// is added when the journal is opened for writing.
    MissingNewline,
    /// The last record was cut short by a crash: cut off when the journal is
    /// opened for writing.
    Torn {
        /// Bytes to keep (where the torn record starts).
        keep: usize,
        /// Its 1-based line number.
        line: usize,
    },
}

/// A readable journal: its records and how it ends.
#[derive(Debug)]
pub struct Scan {
    /// The records, in order (a torn last record excluded).
    pub events: Vec<Event>,
    /// How the file ends.
    pub tail: Tail,
}

/// Parse one record; the error says what is wrong with it.
pub(super) fn parse_record(line: &[u8]) -> Result<Event, String> {
    let event: Event =
        serde_json::from_slice(line).map_err(|e| format!("not a journal record ({e})"))?;
    event.check()?;
    Ok(event)
}

fn blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Read a journal's bytes (see the module docs for what is repaired and
/// what refused). `path` is for messages only.
pub fn scan(path: &Path, bytes: &[u8]) -> Result<Scan, Damage> {
    let damage = |line: usize, problem: String| Damage {
        path: path.to_path_buf(),
        line: Some(line),
        problem,
    };
    if let Some(at) = bytes.iter().position(|b| *b == 0) {
        let line = bytes[..at].split(|b| *b == b'\n').count();
        return Err(damage(
            line,
            "NUL bytes (a file system can leave zeros where a write never reached the disk)"
                .to_string(),
        ));
    }
    let mut events = Vec::new();
    let mut start = 0;
    let mut line = 0;
    while start < bytes.len() {
        line += 1;
        let Some(length) = bytes[start..].iter().position(|b| *b == b'\n') else {
            let last = &bytes[start..];
            if blank(last) {
                return Ok(Scan {
                    events,
                    tail: Tail::Torn { keep: start, line },
                });
            }
            return Ok(match parse_record(last) {
                Ok(event) => {
                    events.push(event);
                    Scan {
                        events,
                        tail: Tail::MissingNewline,
                    }
                }
                Err(_) => Scan {
                    events,
                    tail: Tail::Torn { keep: start, line },
                },
            });
        };
        let text = &bytes[start..start + length];
        if !blank(text) {
            events.push(parse_record(text).map_err(|p| damage(line, p))?);
        }
        start += length + 1;
    }
    Ok(Scan {
        events,
        tail: Tail::Clean,
    })
}

impl Scan {
    /// Make the file on disk match this scan before anything is appended:
    /// end a complete last record's line, or cut off a torn one. Returns a
    /// note for the user when it changed the file.
    pub fn repair_file(&self, path: &Path, bytes: &[u8]) -> Result<Option<String>, Damage> {
        let io = |e: std::io::Error| Damage::io(path, &e);
        match &self.tail {
            Tail::Clean => Ok(None),
            Tail::MissingNewline => {
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(io)?;
                file.write_all(b"\n").map_err(io)?;
                file.sync_data().map_err(io)?;
                Ok(Some(format!(
                    "journal {}: the last record had no newline (a crash right after writing it); \
                     kept it and ended its line",
                    path.display()
                )))
            }
            Tail::Torn { keep, line } => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io)?;
                file.set_len(*keep as u64).map_err(io)?;
                file.sync_data().map_err(io)?;
                let torn = String::from_utf8_lossy(&bytes[*keep..]);
                Ok(Some(format!(
                    "journal {} line {line}: cut off a last record that a crash cut short ({} bytes: {}); \
                     it never took effect, and its row keeps its earlier state",
                    path.display(),
                    bytes.len() - keep,
                    term::inline(&torn)
                )))
            }
        }
    }
}

/// The bytes of the journal at `path`; none if there is no journal. Only
/// a regular file is read (a FIFO or `/dev/zero` in its place would never
/// end), and never through a link (see [`link`]).
pub(super) fn bytes_of(path: &Path) -> Result<Vec<u8>, Damage> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Damage::io(path, &e)),
        Ok(meta) if meta.file_type().is_symlink() => Err(link(path)),
        Ok(meta) if !meta.is_file() => Err(Damage::io(
            path,
            &std::io::Error::other("not a regular file"),
        )),
        Ok(_) => std::fs::read(path).map_err(|e| Damage::io(path, &e)),
    }
}

/// The refusal of a journal that is a symbolic link: records of money
/// spent are appended only to a regular file inside `--out-dir`, never
/// through a link to a file elsewhere (which another run, or another user,
/// may own).
pub(super) fn link(path: &Path) -> Damage {
    let target = std::fs::read_link(path)
        .map(|t| format!(" (to {})", t.display()))
        .unwrap_or_default();
    Damage::io(
        path,
        &std::io::Error::other(format!(
            "is a symbolic link{target}; tryon writes its journal only as a regular file in \
             --out-dir, never through a link: put the file itself there (or use another --out-dir)"
        )),
    )
}
