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

/// Whether a write to stdout has failed (the reader went away, as
/// `| head` does): a command that only prints can stop its work then.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
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

/// The global flags a command printed for people to run again must carry
/// to reach the same service with the same key: `--base-url` and
/// `--api-key-env` when this run was given them. Set at start.
static AGAIN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The global flags [`command`] puts after `tryon`.
pub fn global_flags() -> Vec<String> {
    AGAIN.lock().map(|flags| flags.clone()).unwrap_or_default()
}

/// Sets the global flags [`command`] puts after `tryon` to those of an
/// earlier run (`tryon report` writing a batch's page again).
pub fn use_global_flags(flags: Vec<String>) {
    if let Ok(mut again) = AGAIN.lock() {
        *again = flags;
    }
}

/// Remembers this run's `--base-url` (URL credentials masked: a printed
/// command never shows a password) and a non-default `--api-key-env`, for
/// [`command`]. Called at start.
pub fn remember_global_flags(base_url: Option<&str>, api_key_env: &str) {
    let mut flags = Vec::new();
    if let Some(url) = base_url {
        let shown = tryon_client::tryon_api::redact::Secrets::default()
            .redact_urls(url)
            .into_owned();
        flags.extend(["--base-url".to_string(), shown]);
    }
    if api_key_env != tryon_client::API_KEY_ENV {
        flags.extend(["--api-key-env".to_string(), api_key_env.to_string()]);
    }
    use_global_flags(flags);
}

/// `tryon`, this run's global flags (see [`remember_global_flags`]) and
/// `args`, as one line a person can paste into a POSIX shell: every word
/// quoted when it needs to be (a path with a space or a `$`), control
/// characters shown escaped (such a word is not pasteable, but it cannot
/// rewrite the terminal either).
pub fn command(args: &[&str]) -> String {
    let mut line = String::from("tryon");
    let globals = global_flags();
    for word in globals
        .iter()
        .map(String::as_str)
        .chain(args.iter().copied())
    {
        line.push(' ');
        line.push_str(&shell_word(word));
    }
    line
}

/// One word of a [`command`], quoted for a POSIX shell when it needs it.
fn shell_word(word: &str) -> Cow<'_, str> {
    match inline(word) {
        Cow::Borrowed(plain) => shlex::try_quote(plain).unwrap_or(Cow::Borrowed(plain)),
        // A control character: shown escaped, then quoted as text.
        Cow::Owned(shown) => Cow::Owned(
            shlex::try_quote(&shown)
                .map(Cow::into_owned)
                .unwrap_or(shown.clone()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_commands_quote_what_the_shell_would_split_or_expand() {
        assert_eq!(shell_word("out/r1.png"), "out/r1.png");
        assert_eq!(shell_word("my out/r 1.png"), "'my out/r 1.png'");
        assert_eq!(shell_word("$HOME;rm -rf ~"), "'$HOME;rm -rf ~'");
        assert_eq!(shell_word("it's"), "\"it's\"");
        assert_eq!(shell_word(""), "''");
        // Escaped for the terminal, then quoted: never a raw escape.
        let shown = shell_word("a\u{1b}[2Jb");
        assert!(!shown.contains('\u{1b}'), "{shown}");
        assert!(shown.contains("\\u{1b}"), "{shown}");
    }

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
