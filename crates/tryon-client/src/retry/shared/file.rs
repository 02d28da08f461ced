//! `file:PATH`: a shared budget for many processes on one machine, with no
//! server. Each call takes an exclusive `flock` on `PATH.lock`, reads the
//! state from `PATH`, runs [`decide`] on it and writes it back, on a
//! blocking thread (`spawn_blocking`).
//!
//! - The lock is on a file of its own, never replaced, so every process
//!   locks the same inode; the kernel releases it when its holder dies
//!   (`kill -9` included). A lock held for over [`LOCK_WAIT`] (a holder
//!   stopped, not dead) is a store that does not answer.
//! - The state is written to `PATH.tmp` and renamed over `PATH`, so a
//!   reader sees the old state or the new one, never half of one; a holder
//!   killed mid-write leaves only `PATH.tmp`, rewritten by the next. No
//!   `fsync`: the state is not money (the batch journal is), and a state
//!   lost to a power cut is rebuilt.
//! - What is read is never trusted blindly: at most [`MAX_FILE`] bytes of
//!   a regular file (a FIFO or a device is refused); the first line must be
//!   [`MAGIC`] (else the file is someone else's, and refused, never
//!   overwritten); a body that does not parse or check, or is too long, was
//!   damaged and is rebuilt from a fresh state; a state of another key or
//!   budget name is refused.
//! - Times are the machine's clock in microseconds since 1970, which every
//!   process on the machine shares.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::decide::{Call, Reply, State, VERSION, check, decide};
use super::{Store, StoreError};

/// The first line of a state file.
pub(crate) const MAGIC: &str = "tryon-shared-budget 1";
/// Most bytes of a state file read.
pub(crate) const MAX_FILE: u64 = 256 * 1024;
/// Longest wait for the lock.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(2);

/// The state file's body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    /// The budget's id: the key's fingerprint and the budget's name.
    budget: String,
    state: State,
}

/// A budget in a file.
pub(crate) struct FileStore {
    path: PathBuf,
    id: String,
}

impl FileStore {
    pub(crate) fn new(path: PathBuf, id: String) -> Self {
        Self { path, id }
    }
}

impl Store for FileStore {
    fn call<'a>(
        &'a self,
        now_us: Option<f64>,
        call: &'a Call,
    ) -> BoxFuture<'a, Result<Reply, StoreError>> {
        let path = self.path.clone();
        let id = self.id.clone();
        let call = call.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || locked(&path, &id, now_us, &call))
                .await
                .map_err(|e| {
                    StoreError::Unreachable(format!("the file call did not finish: {e}"))
                })?
        })
    }
}

/// `PATH` with `suffix` added to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Unreachable(format!("{what} {}: {e}", path.display()))
}

/// One call, under the lock.
#[cfg(unix)]
fn locked(path: &Path, id: &str, now_us: Option<f64>, call: &Call) -> Result<Reply, StoreError> {
    use rustix::fs::{FlockOperation, flock};

    let lock_path = beside(path, ".lock");
    let lock =
        open_regular(&lock_path, true).map_err(|e| io_error("cannot open", &lock_path, &e))?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    // A holder keeps the lock for tens of microseconds: ask again soon,
    // then less often (a blocking flock could not be bounded).
    let mut pause = Duration::from_micros(10);
    loop {
        match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(rustix::io::Errno::WOULDBLOCK | rustix::io::Errno::INTR)
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_micros(100));
            }
            Err(e) => {
                return Err(StoreError::Unreachable(format!(
                    "cannot lock {} within {LOCK_WAIT:?}: {e}",
                    lock_path.display()
                )));
            }
        }
    }
    // The lock goes with `lock` when it is closed, whatever happens here.
    let now = now_us.unwrap_or_else(wall_clock_us);
    let mut state = read_state(path, id)?;
    let reply = decide(&mut state, now, call);
    write_state(path, id, state)?;
    drop(lock);
    Ok(reply)
}

#[cfg(not(unix))]
fn locked(path: &Path, _: &str, _: Option<f64>, _: &Call) -> Result<Reply, StoreError> {
    Err(StoreError::Unreachable(format!(
        "{}: a file budget needs flock, which this platform lacks",
        path.display()
    )))
}

fn wall_clock_us() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

/// Opens `path` for reading and writing without blocking on a FIFO, and
/// refuses anything but a regular file.
#[cfg(unix)]
fn open_regular(path: &Path, create: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed())
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// The state in `path`: fresh if there is none, rebuilt if damaged,
/// refused if it is not ours.
#[cfg(unix)]
fn read_state(path: &Path, id: &str) -> Result<State, StoreError> {
    use std::io::Read as _;
    let file = match open_regular(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => {
            return Err(StoreError::Refused(format!("{}: {e}", path.display())));
        }
    };
    let mut text = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut text)
        .map_err(|e| io_error("cannot read", path, &e))?;
    parse(path, id, &text)
}

/// Parses a state file's bytes (see the module docs for what is refused
/// and what is rebuilt).
pub(crate) fn parse(path: &Path, id: &str, text: &[u8]) -> Result<State, StoreError> {
    if text.is_empty() {
        return Ok(State::default());
    }
    let (first, body) = match text.iter().position(|&b| b == b'\n') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, &b""[..]),
    };
    if first != MAGIC.as_bytes() {
        // A first line cut short by a crash is still ours.
        if body.is_empty() && MAGIC.as_bytes().starts_with(first) {
            return Ok(rebuilt(path, "cut short"));
        }
        return Err(StoreError::Refused(format!(
            "{} is not a tryon shared-budget file (its first line is not {MAGIC:?}); \
             pick another path or remove it",
            path.display()
        )));
    }
    if text.len() as u64 > MAX_FILE {
        return Ok(rebuilt(path, "over 256 KiB"));
    }
    // Another version's body is not damage: refuse it by its version.
    let version = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/state/v").and_then(serde_json::Value::as_u64));
    if let Some(v) = version.filter(|&v| v != u64::from(VERSION)) {
        return Err(StoreError::Refused(format!(
            "{} holds a budget of version {v} (this client reads version {VERSION})",
            path.display()
        )));
    }
    let body: Body = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return Ok(rebuilt(path, &e.to_string())),
    };
    if body.budget != id {
        return Err(StoreError::Refused(format!(
            "{} holds the budget {} (another API key or budget name; this one is {id}): \
             pick another path or budget name",
            path.display(),
            body.budget
        )));
    }
    if let Err(why) = check(&body.state) {
        return Ok(rebuilt(path, &why));
    }
    Ok(body.state)
}

fn rebuilt(path: &Path, why: &str) -> State {
    tracing::warn!(
        file = %path.display(),
        why,
        "shared budget: the state file was damaged; starting it afresh"
    );
    State::default()
}

/// Writes the state next to `path` and renames it over `path`.
fn write_state(path: &Path, id: &str, state: State) -> Result<(), StoreError> {
    let body = Body {
        budget: id.to_string(),
        state,
    };
    let mut text = format!("{MAGIC}\n").into_bytes();
    serde_json::to_writer(&mut text, &body)
        .map_err(|e| StoreError::Unreachable(format!("cannot encode the state: {e}")))?;
    text.push(b'\n');
    let tmp = beside(path, ".tmp");
    // Only the lock's holder writes it: whatever is there (a file left by a
    // holder that died mid-write, or something planted) goes first, and the
    // new one is created fresh, never opened through a FIFO or a link.
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &text))
        .map_err(|e| io_error("cannot write", &tmp, &e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_error("cannot replace", path, &e))
}
