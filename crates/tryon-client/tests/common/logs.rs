//! Log lines captured for one test, on its thread: a thread-local tracing
//! subscriber writing into a buffer. A test that reads logs has a binary of
//! its own: a callsite first met by a test on another thread of the same
//! binary can have its interest cached before the subscriber exists, and
//! its events would be missed now and then.

use std::sync::{Arc, Mutex};

/// The captured lines, while the value lives.
pub struct Logs {
    buf: Buf,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Logs {
    /// Captures events at `level` and above until dropped.
    pub fn capture(level: tracing::Level) -> Self {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        Self {
            buf,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.0.lock().unwrap()).into_owned()
    }
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
