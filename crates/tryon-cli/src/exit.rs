//! Exit codes, and the error type that carries one.

use std::fmt::{self, Write as _};
use std::process::ExitCode;
use std::time::Duration;

/// The documented exit codes (see `tryon --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 0: success.
    Ok = 0,
    /// 1: the job failed (or a batch had failed rows).
    JobFailed = 1,
    /// 2: usage or validation error.
    Usage = 2,
    /// 3: authentication or credits.
    Auth = 3,
    /// 4: timed out waiting.
    Timeout = 4,
    /// 5: network or server error.
    Network = 5,
    /// 6: a local write failed (the output file or the batch journal);
    /// anything already paid for is printed with its request id and the
    /// command that fetches it (`tryon result ID -o PATH` for a finished
    /// `run`, `tryon wait ID -o PATH` for a batch row that may still be
    /// queued). For `tryon mock --record`: the recording lost exchanges
    /// (marked incomplete; a replay refuses it).
    Unsaved = 6,
    /// 7: `tryon parity` found differences between the target and the
    /// spec, the job lifecycle or the mock.
    Differences = 7,
    /// 130 (128 + SIGINT): a batch stopped by Ctrl-C, after printing its
    /// summary and writing its report.
    Interrupted = 130,
    /// 143 (128 + SIGTERM): a batch stopped by SIGTERM, likewise.
    Terminated = 143,
}

impl Code {
    /// How serious a code is, for a batch that ends with several: a result
    /// paid for and not saved needs the user most, then failed rows, then
    /// account, usage, timeout and network trouble.
    pub fn rank(self) -> u8 {
        match self {
            Code::Ok => 0,
            // Never met in a batch; ranked with the least serious.
            Code::Network | Code::Differences => 1,
            Code::Timeout => 2,
            Code::Usage => 3,
            Code::Auth => 4,
            Code::JobFailed => 5,
            Code::Unsaved => 6,
            // Set by the signal itself, over every row's code.
            Code::Interrupted | Code::Terminated => 7,
        }
    }
}

impl From<Code> for ExitCode {
    fn from(code: Code) -> Self {
        ExitCode::from(code as u8)
    }
}

/// A failure of a command: what to print and which code to exit with.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub code: Code,
    /// The message for stderr (one or more lines, no trailing newline).
    pub message: String,
}

impl CliError {
    /// A failure with this code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A usage or validation error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Code::Usage, message)
    }
}

/// The secrets no error message may show: the API key (set once, by
/// [`protect`]) and, always, URL credentials.
static SECRETS: std::sync::OnceLock<tryon_client::tryon_api::redact::Secrets> =
    std::sync::OnceLock::new();

/// Makes every [`CliError`] shown hide `key` in any encoding (see
/// [`tryon_client::tryon_api::redact`]). Called once, at start.
pub fn protect(key: Option<&str>) {
    let _ = SECRETS.set(tryon_client::tryon_api::redact::Secrets::new(key));
}

/// `error: ` and the message, with its secrets taken out (URL credentials,
/// signed-URL parameters, the key): the one place both are done.
impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `strip_prefix`: a message written with the prefix by hand (as
        // older call sites did) still gets it once.
        let message = self
            .message
            .strip_prefix("error: ")
            .unwrap_or(&self.message);
        let message = match SECRETS.get() {
            Some(secrets) => secrets.redact(message),
            None => tryon_client::tryon_api::redact::Secrets::default().redact(message),
        };
        write!(f, "error: {message}")
    }
}

/// Which exit code a client error maps to.
pub fn code_of(error: &tryon_client::Error) -> Code {
    use tryon_client::Error as E;
    match error {
        E::Failed { .. } | E::Expired { .. } => Code::JobFailed,
        E::MissingApiKey { .. }
        | E::Unauthorized { .. }
        | E::Forbidden { .. }
        | E::InsufficientCredits { .. } => Code::Auth,
        E::Invalid { .. } | E::Config { .. } | E::Io { .. } => Code::Usage,
        E::Timeout { .. } => Code::Timeout,
        _ => Code::Network,
    }
}

/// A client error in the CLI's words. The client's own text is for Rust
/// callers (a timeout there says to re-attach with `client.job(..)`); here
/// a timeout says how long it waited, and, when it gave up before
/// `timeout` because the next call's slot (at the rate `budget`) or a
/// retry's wait would have come after it, says so and names the rate.
pub fn describe(
    error: &tryon_client::Error,
    timeout: Duration,
    budget: Option<tryon_client::RateLimit>,
) -> String {
    let tryon_client::Error::Timeout {
        request_id,
        elapsed,
    } = error
    else {
        return error.to_string();
    };
    let id = crate::term::inline(request_id);
    let waited = crate::cli::show_duration(*elapsed);
    let limit = crate::cli::show_duration(timeout);
    // A wait ends at its deadline or, when the next sleep would pass it,
    // at once: well before the deadline, that sleep is what stopped it.
    if *elapsed + Duration::from_millis(500) >= timeout {
        return format!("job {id} not finished after {waited} (--timeout {limit})");
    }
    let why = match budget {
        Some(budget) => format!(
            "API calls are paced at {} (one every {}), so the next status call would come after it",
            budget,
            crate::cli::show_duration(Duration::from_secs_f64(
                60.0 / budget.requests_per_minute().max(1e-9)
            ))
        ),
        None => "the next retry's wait would end after it".to_string(),
    };
    format!(
        "job {id} not finished: gave up after {waited} of --timeout {limit}: {why} \
         (a longer --timeout or a faster --rate waits it out)"
    )
}

impl From<tryon_client::Error> for CliError {
    fn from(error: tryon_client::Error) -> Self {
        let code = code_of(&error);
        let mut message = error.to_string();
        if let tryon_client::Error::Timeout {
            request_id,
            elapsed,
        } = &error
        {
            message = format!(
                "job {} not finished after {}\nre-attach with: {}",
                crate::term::inline(request_id),
                crate::cli::show_duration(*elapsed),
                crate::term::command(&["wait", request_id])
            );
        }
        Self { code, message }
    }
}

/// [`CliError`] of a client error met while waiting up to `timeout` (see
/// [`describe`]), with the command that re-attaches after a timeout.
pub fn waiting(
    error: &tryon_client::Error,
    timeout: Duration,
    budget: Option<tryon_client::RateLimit>,
) -> CliError {
    let mut cli = CliError::new(code_of(error), describe(error, timeout, budget));
    if let Some(id) = error.request_id()
        && matches!(error, tryon_client::Error::Timeout { .. })
    {
        let _ = write!(
            cli.message,
            "\nre-attach with: {}",
            crate::term::command(&["wait", id])
        );
    }
    cli
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_map_to_documented_codes() {
        let failed = tryon_client::Error::Failed {
            request_id: "r".into(),
            detail: "x".into(),
        };
        assert_eq!(code_of(&failed), Code::JobFailed);
        let timeout = tryon_client::Error::Timeout {
            request_id: "r-1".into(),
            elapsed: std::time::Duration::from_secs(1),
        };
        let cli = CliError::from(timeout);
        assert_eq!(cli.code, Code::Timeout);
        assert!(cli.message.contains("tryon wait r-1"), "{cli}");
        assert!(
            !cli.message.contains("client.job"),
            "no Rust call for a shell user: {cli}"
        );
        let credits = tryon_client::Error::InsufficientCredits {
            request_id: None,
            message: "none".into(),
        };
        assert_eq!(code_of(&credits), Code::Auth);
        let invalid = tryon_client::Error::Invalid {
            field: "output_quality".into(),
            problem: "101 given".into(),
        };
        assert_eq!(code_of(&invalid), Code::Usage);
        let ambiguous = tryon_client::Error::AmbiguousSubmit {
            detail: "dropped".into(),
            source: None,
        };
        assert_eq!(code_of(&ambiguous), Code::Network);
    }

    #[test]
    fn a_wait_that_gave_up_early_names_the_rate() {
        let early = tryon_client::Error::Timeout {
            request_id: "r-1".into(),
            elapsed: Duration::from_millis(3_300),
        };
        let hourly: tryon_client::RateLimit = "1/h".parse().unwrap();
        let text = describe(&early, Duration::from_secs(20), Some(hourly));
        assert_eq!(
            text,
            "job r-1 not finished: gave up after 3.3 s of --timeout 20 s: API calls are paced at 1/h \
             (one every 60 min), so the next status call would come after it (a longer --timeout or a \
             faster --rate waits it out)"
        );
        let full = tryon_client::Error::Timeout {
            request_id: "r-1".into(),
            elapsed: Duration::from_secs(20),
        };
        assert_eq!(
            describe(&full, Duration::from_secs(20), Some(hourly)),
            "job r-1 not finished after 20 s (--timeout 20 s)"
        );
        let cli = waiting(&early, Duration::from_secs(20), None);
        assert!(cli.message.contains("retry's wait"), "{cli}");
        assert!(
            cli.message.ends_with("re-attach with: tryon wait r-1"),
            "{cli}"
        );
    }
}
