//! What the commands print: text for people, JSON for scripts.

use std::io::IsTerminal as _;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::term;

/// Print one line of text (control characters escaped) or one JSON value
/// on stdout; a closed stdout is ignored (see [`crate::term`]).
pub fn emit<T: Serialize>(json: bool, text: &str, value: &T) {
    if json {
        term::out_raw_line(
            &serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")),
        );
    } else {
        term::out_line(text);
    }
}

/// Live status on stderr: a spinner on a terminal, plain lines otherwise.
#[derive(Debug)]
pub struct Progress {
    spinner: Option<ProgressBar>,
    started: std::time::Instant,
}

impl Progress {
    /// Start showing the status of `request_id`.
    pub fn start(request_id: &str, quiet: bool) -> Self {
        let spinner = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar.set_message(format!("{} SUBMITTED", term::inline(request_id)));
            bar
        });
        if spinner.is_none() && !quiet {
            term::err_line(&format!("submitted {}", term::inline(request_id)));
        }
        Self {
            spinner,
            started: std::time::Instant::now(),
        }
    }

    /// Show a new status.
    pub fn status(&self, request_id: &str, status: &str) {
        match &self.spinner {
            Some(bar) => bar.set_message(format!(
                "{} {}",
                term::inline(request_id),
                term::inline(status)
            )),
            None => term::err_line(&format!(
                "{} {} ({:.1}s)",
                term::inline(request_id),
                term::inline(status),
                self.started.elapsed().as_secs_f64()
            )),
        }
    }

    /// Stop showing progress.
    pub fn finish(&self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}

/// "Is it time to say something again?": due once `period` has passed
/// since it was created or last reset (or last due).
#[derive(Debug)]
pub struct Throttle {
    period: Duration,
    last: std::sync::Mutex<std::time::Instant>,
}

impl Throttle {
    /// Due `period` from now.
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            last: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }

    /// Start the period again (something was just said).
    pub fn reset(&self) {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::time::Instant::now();
    }

    /// Whether the period has passed; if so, it starts again.
    pub fn due(&self) -> bool {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.elapsed() < self.period {
            return false;
        }
        *last = std::time::Instant::now();
        true
    }
}

/// Check, before anything is paid for, that an image can be saved at
/// `path`: it is not a directory or a device, its folder exists, and a file
/// can be created there (a probe file is created and removed again: the
/// only honest test of permissions, quotas and read-only mounts).
pub fn check_writable(path: &Path) -> Result<(), String> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Err(format!("-o {shown}: is a directory")),
        Ok(meta) if !meta.is_file() => {
            return Err(format!("-o {shown}: not a regular file"));
        }
        _ => {}
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        // The nearest part of the path that exists says what is wrong.
        let existing = folder
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty())
            .find(|a| std::fs::metadata(a).is_ok());
        return Err(match existing {
            Some(file) if !file.is_dir() => {
                format!("-o {shown}: {} is a file, not a folder", file.display())
            }
            _ => format!("-o {shown}: the folder {} does not exist", folder.display()),
        });
    }
    let probe = folder.join(format!(".tryon-probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| format!("-o {shown}: cannot write in {}: {e}", folder.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Write `bytes` to `path` through a new temporary file beside it, synced,
/// then renamed over `path`: a link at `path` is replaced, never written
/// through (its target is left alone), and a crash leaves the old file or
/// the new one, never half of one. The temporary file is created
/// exclusively (`O_EXCL`), so a link planted at its name is not followed
/// either.
pub fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let temp = folder.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    if let Ok(folder) = std::fs::File::open(folder) {
        let _ = folder.sync_all();
    }
    Ok(())
}

/// "123.4 KiB" for people.
pub fn human_bytes(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // display only
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    }
}

/// Width and height of a saved image, read from its header only.
pub fn dimensions(path: &Path) -> Option<(u32, u32)> {
    image::ImageReader::open(path)
        .ok()?
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}
