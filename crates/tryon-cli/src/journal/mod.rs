//! The batch journal: an append-only JSONL file beside the outputs that makes
//! `tryon batch` resumable without ever paying twice.
//!
//! Each line is one [`Event`]: `{"event":"submitting","row":...,"fingerprint":...,"at":...}`.
//! One writer ([`Writer`]) appends them, each with a single `write` and an
//! `fsync` before the caller hears back. A row's `submitting` record (the
//! intent) is on disk before its POST is sent, and its `submitted` record,
//! with the request id, before the job is waited on. On a rerun the journal
//! is folded into one [`RowState`] per row:
//!
//! | last event | rerun does |
//! |---|---|
//! | none, or `rejected` (the service refused the POST; nothing billed) | submits the row |
//! | `completed` | skips it |
//! | `failed` | skips it (reported again; `--retry-failed` resubmits) |
//! | `submitted`, under an hour old | re-attaches to the request id; never resubmits |
//! | `submitted`, older | reports it expired (the service keeps jobs 1 h) |
//! | `submitting` or `ambiguous` (the POST may have reached the server, no id was recorded) | settles it with the account's request history (`batch::settle`): found, it is `submitted` with that id; provably absent, `unbilled` and submitted; else reported (`--resubmit-ambiguous` sends it again, at the risk of a second charge) |
//! | `unbilled` (the history proved the POST was not accepted) | submits the row |
//!
//! Two records are of a run, not a row (`row` is empty): `started` when a
//! run begins and `alive` at least every [`ALIVE_EVERY`] while it runs, so
//! that a run killed mid-submit is known to have stopped soon after its
//! last record.
//!
//! A row's records are those under its fingerprint (what it sends, see
//! [`crate::fingerprint`]; the form older versions wrote is recognised
//! too). Records under another fingerprint are an earlier version of an
//! edited row: their paid job is kept, never dropped (see
//! `batch::plan`). A `submitting` record carries the row's `inputs`, so
//! that an edited row can be told what changed. Outputs are found in the
//! journal's folder by their file names, whatever spelling of `--out-dir`
//! wrote them. The journal itself is a regular file in `--out-dir`, never
//! a link.
//!
//! Damage is handled by [`mod@scan`]: only a torn last record (what a crash
//! mid-write leaves) is repaired, anything else refuses to run.

mod event;
mod repair;
mod scan;
mod writer;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

pub use event::{ALIVE_EVERY, Event, History, Kind, RETENTION, RowState, Version, fold, now_secs};
use scan::bytes_of;
pub use scan::{Damage, scan};
pub use writer::Writer;

/// The journal's file name inside the output folder.
pub const FILE_NAME: &str = "tryon-journal.jsonl";

/// The journal's path in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Read the journal in `dir` without changing anything (for `--dry-run`):
/// its records, or the damage that stops a run. No journal is no records.
pub fn read(dir: &Path) -> Result<Vec<Event>, Damage> {
    let path = path_in(dir);
    scan(&path, &bytes_of(&path)?).map(|s| s.events)
}

/// `--journal-repair`: repair the journal in `dir` if it is damaged (see
/// the `repair` module); returns a report for stderr, or `None`.
pub fn repair(dir: &Path) -> Result<Option<String>, Damage> {
    repair::repair(&path_in(dir))
}

/// Open (creating) the journal in `dir` for a run: read its records, repair
/// a torn last record (see [`mod@scan`]), and start the writer. Returns the
/// writer, the records, and a note for the user when something was
/// repaired.
pub fn open(dir: &Path) -> Result<(Writer, Vec<Event>, Option<String>), Damage> {
    let path = path_in(dir);
    std::fs::create_dir_all(dir).map_err(|e| Damage::io(dir, &e))?;
    let io = |e: std::io::Error| Damage::io(&path, &e);
    // `bytes_of` first: it refuses a journal that is not a regular file.
    let _ = bytes_of(&path)?;
    let file = open_append(&path).map_err(|e| {
        if is_link_refusal(&e) {
            scan::link(&path)
        } else {
            io(e)
        }
    })?;
    // Two runs on one journal could each submit the same row: the lock is
    // held (by the writer's handle) until this run ends.
    if !lock(&file).map_err(io)? {
        return Err(Damage {
            path: path.clone(),
            line: None,
            problem: "another `tryon batch` is using this journal; let it finish first \
                      (two runs at once could submit the same row twice)"
                .to_string(),
        });
    }
    let bytes = bytes_of(&path)?;
    let scanned = scan(&path, &bytes)?;
    let note = scanned.repair_file(&path, &bytes)?;
    let writer = Writer::start_with(&path, file).map_err(io)?;
    Ok((writer, scanned.events, note))
}

/// Whether a `tryon batch` holds the journal in `dir` now. For `tryon
/// report`, which reads the journal without a lock (so it never stands in
/// a batch's way) and says so when a batch is running: it tries a shared
/// lock without waiting and lets it go at once.
pub fn in_use(dir: &Path) -> bool {
    let Ok(file) = File::open(path_in(dir)) else {
        return false;
    };
    held_by_another(&file)
}

#[cfg(unix)]
fn held_by_another(file: &File) -> bool {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            let _ = flock(file, FlockOperation::Unlock);
            false
        }
        Err(e) => e == rustix::io::Errno::WOULDBLOCK,
    }
}

#[cfg(not(unix))]
fn held_by_another(_file: &File) -> bool {
    false
}

/// Open (creating) the journal for appending, never through a link: a
/// link swapped in after `bytes_of` looked is refused by the open itself.
fn open_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let nofollow = rustix::fs::OFlags::NOFOLLOW.bits();
        options.custom_flags(i32::try_from(nofollow).unwrap_or(0));
    }
    options.open(path)
}

/// Whether an open failed because the path is a link (`O_NOFOLLOW`).
fn is_link_refusal(error: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

/// Take an exclusive advisory lock on `file` without waiting: `false`
/// when another process holds it. (`File::try_lock` is newer than the
/// workspace's minimum Rust.)
#[cfg(unix)]
fn lock(file: &File) -> std::io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(unix))]
fn lock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests;
