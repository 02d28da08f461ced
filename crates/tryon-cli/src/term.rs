//! Every byte the `tryon` binary writes to stdout or stderr goes through
//! here, so that a closed stream can never panic or stop the work.
//!
//! `tryon batch ... | head -2` closes the pipe while rows are in flight.
//! `println!`/`eprintln!` panic on that (EPIPE), which killed a batch with
//! rows half-journaled. Here, the first failed write to stdout marks it
//! closed, and stderr goes through the one stderr writer the logs use
//! (`tryon_mock::logging::LogWriter`), which stops at a closed pipe: later writes
//! are dropped, and the command goes on (the journal, not the terminal, is
//! the record of what happened).
//!
//! Text meant for people is also made safe to show: control characters in
//! ids that came from a manifest or a server (an escape sequence could
//! rewrite the terminal) are printed escaped, as `\u{1b}`.

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Which standard stream.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Out,
    Err,
}

impl Stream {
    /// Write all of `bytes` and flush. Stdout: on any error mark it closed
    /// and drop this and every later write to it. Stderr: through
    /// [`tryon_mock::logging::LogWriter`], the process's one stderr writer (the
    /// `tracing` logs of the CLI and of `tryon mock` use it too), which
    /// swallows every error and stops writing once stderr is a closed pipe.
    fn write(self, bytes: &[u8]) {
        match self {
            Stream::Out => {
                if STDOUT_CLOSED.load(Ordering::Relaxed) {
                    return;
                }
                let mut out = std::io::stdout().lock();
                if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
                    STDOUT_CLOSED.store(true, Ordering::Relaxed);
                }
            }
            Stream::Err => {
                let mut err = tryon_mock::logging::LogWriter::stderr();
                let _ = err.write_all(bytes).and_then(|()| err.flush());
            }
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
