//! The log writer both binaries (`tryon-mock` and `tryon`) hand their
//! `tracing` subscriber: one that never breaks serving, or a command, when
//! stderr is a closed pipe. Public for those two binaries (and for any
//! program that runs [`serve`](crate::serve) itself); the mock's library
//! code does not log through it.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stderr has been found closed; nothing is written after.
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes log lines to stderr and swallows every error: when stderr is a
/// closed pipe (EPIPE) it stops writing for good, and the server goes on
/// serving. Both binaries (`tryon-mock` and `tryon`) hand it to their
/// `tracing` subscriber, and `tryon` writes its own stderr lines through it; `tracing-subscriber`'s own `std::io::stderr`
/// writer reports a failed write with `eprintln!`, which panics on a
/// closed stderr, inside whichever request was logging.
///
/// `LogWriter::stderr` is a `fn() -> LogWriter`, so it is a
/// `tracing_subscriber::fmt::MakeWriter` as it is:
///
/// ```text
/// tracing_subscriber::fmt().with_writer(tryon_mock::logging::LogWriter::stderr).init();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl LogWriter {
    /// A writer to this process's stderr.
    pub fn stderr() -> Self {
        Self
    }
}

impl io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !STDERR_CLOSED.load(Ordering::Relaxed)
            && let Err(e) = io::stderr().lock().write_all(buf)
            && e.kind() == io::ErrorKind::BrokenPipe
        {
            STDERR_CLOSED.store(true, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}
