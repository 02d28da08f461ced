//! Every byte the `tryon` binary writes to stdout or stderr goes through
//! here, so that a closed stream can never panic or stop the work.
//!
//! `tryon batch ... | head -2` closes the pipe while rows are in flight.
//! `println!`/`eprintln!` panic on that (EPIPE), which killed a batch with
//! rows half-journaled. Here, the first failed write to a stream marks it
//! closed: later writes to it are dropped, and the command goes on (the
//! journal, not the terminal, is the record of what happened).
//!
//! Text meant for people is also made safe to show: control characters in
//! ids that came from a manifest or a server (an escape sequence could
//! rewrite the terminal) are printed escaped, as `\u{1b}`.

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// Which standard stream.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Out,
    Err,
}

impl Stream {
    fn closed(self) -> &'static AtomicBool {
        match self {
            Stream::Out => &STDOUT_CLOSED,
            Stream::Err => &STDERR_CLOSED,
        }
    }

    /// Write all of `bytes` and flush; on any error mark the stream closed
    /// and drop this and every later write to it.
    fn write(self, bytes: &[u8]) {
        if self.closed().load(Ordering::Relaxed) {
            return;
        }
        let result = match self {
            Stream::Out => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes).and_then(|()| out.flush())
            }
            Stream::Err => {
                let mut err = std::io::stderr().lock();
                err.write_all(bytes).and_then(|()| err.flush())
            }
        };
        if result.is_err() {
            self.closed().store(true, Ordering::Relaxed);
        }
    }
}

/// Print one line (or several, separated by `\n`) of text for people on
/// stdout, control characters escaped.
pub fn out_line(text: &str) {
    Stream::Out.write(line(&printable(text)).as_bytes());
}

/// Print one line of machine-readable text (JSON, already escaped) on
/// stdout, unchanged.
pub fn out_raw_line(text: &str) {
    Stream::Out.write(line(text).as_bytes());
}

/// Print one line (or several) of text for people on stderr, control
/// characters escaped.
pub fn err_line(text: &str) {
    Stream::Err.write(line(&printable(text)).as_bytes());
}

fn line(text: &str) -> String {
    let mut owned = String::with_capacity(text.len() + 1);
    owned.push_str(text);
    owned.push('\n');
    owned
}

/// `text` with every control character except newline and tab escaped
/// (`\u{1b}`), and the Unicode bidirectional overrides too, which can make
/// a terminal show text in an order other than the bytes'.
pub fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut clean = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            clean.extend(c.escape_unicode());
        } else {
            clean.push(c);
        }
    }
    Cow::Owned(clean)
}

/// `text` on one line, for a value (an id, a reason) embedded in a line:
/// newlines and tabs are escaped too.
pub fn inline(text: &str) -> Cow<'_, str> {
    if text.contains(['\n', '\t', '\r']) {
        Cow::Owned(printable(text).replace('\n', "\\n").replace('\t', "\\t"))
    } else {
        printable(text)
    }
}

/// The writer `tracing` logs through: stderr, with write errors swallowed
/// (a log line is never worth a panic or a stopped batch). It reports every
/// write as complete, so the subscriber never prints an error of its own
/// about it (that would be a second write to the same closed stream).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Stream::Err.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl tracing_subscriber::fmt::MakeWriter<'_> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&self) -> Self::Writer {
        LogWriter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(printable("look-1 ok"), Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("line\nnext"), "line\nnext");
        assert_eq!(printable("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(printable("\u{9b}"), "\\u{9b}");
        assert_eq!(inline("a\nb\tc\r"), "a\\nb\\tc\\u{d}");
    }
}
