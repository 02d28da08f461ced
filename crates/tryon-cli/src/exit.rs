//! Exit codes, and the error type that carries one.

use std::fmt;
use std::process::ExitCode;

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
    /// queued).
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

/// `error: ` and the message: the one place the prefix is added.
impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `strip_prefix`: a message written with the prefix by hand (as
        // older call sites did) still gets it once.
        let message = self
            .message
            .strip_prefix("error: ")
            .unwrap_or(&self.message);
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

impl From<tryon_client::Error> for CliError {
    fn from(error: tryon_client::Error) -> Self {
        let code = code_of(&error);
        let mut message = error.to_string();
        if let tryon_client::Error::Timeout { request_id, .. } = &error {
            message.push_str("\nre-attach with: tryon wait ");
            message.push_str(request_id);
        }
        Self { code, message }
    }
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
}
