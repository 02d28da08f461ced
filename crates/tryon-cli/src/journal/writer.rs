//! The one writer of a journal: a thread that appends records in the order
//! they come, each with one write and an fsync, and answers each caller
//! only once its record is durable.
//!
//! Submitters await that answer for their intent before they POST. After a
//! write fails (a full disk, an I/O error), the partial bytes are cut off
//! again and every later record is refused: a journal must never hold a
//! torn record in its middle, and no POST may go out without a durable
//! intent.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::event::Event;
use crate::term;

type Request = (Event, oneshot::Sender<Result<(), String>>);

/// A handle to the journal's writer thread. Dropping it lets the thread
/// finish what was sent and waits for it.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    sender: Option<mpsc::UnboundedSender<Request>>,
    thread: Option<JoinHandle<()>>,
    failure: Arc<OnceLock<String>>,
}

impl Writer {
    /// Open `path` for appending and start the writer thread.
    #[cfg(test)]
    pub fn start(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Self::start_with(path, file)
    }

    /// Start the writer thread on `file`, the journal at `path` opened for
    /// appending (and locked by the caller).
    pub fn start_with(path: &Path, file: File) -> std::io::Result<Self> {
        let length = file.metadata()?.len();
        // Make a new journal's name durable too: an fsynced record in a
        // file whose directory entry was lost would be no record at all.
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(folder)?.sync_all()?;
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        let failure = Arc::new(OnceLock::new());
        let state = Thread {
            path: path.to_path_buf(),
            file,
            length,
            written: 0,
            failure: Arc::clone(&failure),
            chaos: Chaos::from_env(),
        };
        let thread = std::thread::Builder::new()
            .name("tryon-journal".into())
            .spawn(move || state.run(receiver))?;
        Ok(Self {
            path: path.to_path_buf(),
            sender: Some(sender),
            thread: Some(thread),
            failure,
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `event`; returns once it is on disk (fsynced), or the reason
    /// it could not be written.
    pub async fn append(&self, event: Event) -> Result<(), String> {
        let (ack, done) = oneshot::channel();
        let stopped = || "the journal writer stopped".to_string();
        self.sender
            .as_ref()
            .ok_or_else(stopped)?
            .send((event, ack))
            .map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }

    /// The first write error, if the journal stopped accepting records.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Thread {
    path: PathBuf,
    file: File,
    /// The file's length after the last durable record.
    length: u64,
    /// Row records this process has made durable (run records, `started`
    /// and `alive`, not counted).
    written: u64,
    failure: Arc<OnceLock<String>>,
    chaos: Chaos,
}

impl Thread {
    fn run(mut self, mut receiver: mpsc::UnboundedReceiver<Request>) {
        while let Some((event, ack)) = receiver.blocking_recv() {
            let result = match self.failure.get() {
                Some(failure) => Err(failure.clone()),
                None => self.write(&event),
            };
            let _ = ack.send(result);
        }
    }

    fn write(&mut self, event: &Event) -> Result<(), String> {
        let mut line = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let written = self
            .file
            .write_all(&line)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Cut off whatever part of the record reached the file, so
            // the journal ends on a whole record; then refuse all others.
            let _ = self.file.set_len(self.length);
            let _ = self.file.sync_data();
            let failure = format!("cannot write the journal {}: {e}", self.path.display());
            let _ = self.failure.set(failure.clone());
            return Err(failure);
        }
        self.length += line.len() as u64;
        if !event.kind.of_run() {
            self.written += 1;
            self.chaos.after_write(self.written);
        }
        Ok(())
    }
}

/// Test-only hooks for the chaos suite, read from the environment when the
/// writer starts. Neither changes what is written.
///
/// - `TRYON_CHAOS_TRACE=1`: after each row record is durable, print
///   `journal-write N` on stderr (N counts this process's row records from
///   1; the run's own `started` and `alive` records are not counted, so N
///   names the same step of a row whatever the timing), so a test knows
///   how far a run got without sleeping.
/// - `TRYON_CHAOS_KILL_AFTER_JOURNAL_WRITES=N` (N >= 1): right after the
///   N-th row record is durable (and traced), the process sends itself
///   SIGKILL, as a crash would stop it: no destructor, no flush, no exit
///   code.
#[derive(Debug, Default)]
struct Chaos {
    trace: bool,
    kill_after: Option<u64>,
}

impl Chaos {
    fn from_env() -> Self {
        let kill_after = std::env::var("TRYON_CHAOS_KILL_AFTER_JOURNAL_WRITES")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|n: &u64| *n >= 1);
        Self {
            trace: std::env::var("TRYON_CHAOS_TRACE").is_ok_and(|v| v == "1"),
            kill_after,
        }
    }

    fn after_write(&self, written: u64) {
        if self.trace {
            term::err_line(&format!("journal-write {written}"));
        }
        if self.kill_after == Some(written) {
            kill_self();
        }
    }
}

#[cfg(unix)]
fn kill_self() {
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    // SIGKILL cannot be caught; should sending it fail, die anyway.
    std::process::abort();
}

#[cfg(not(unix))]
fn kill_self() {
    std::process::abort();
}
