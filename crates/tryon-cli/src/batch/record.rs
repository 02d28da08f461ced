//! The last run's record, `DIR/.tryon-report/run.json`: what the journal
//! does not say and the report needs (which manifest, when the run started
//! and ended, the prices it estimated with, the service its commands
//! name). Written when a run starts (so a killed run leaves one) and again
//! when it ends; never anything secret (no key, no URL credentials).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::report;

/// The record's file name in `DIR/.tryon-report/`.
const FILE_NAME: &str = "run.json";

/// Most bytes read of a record (one is a few hundred).
const MAX_BYTES: u64 = 64 * 1024;

/// What the last run of a batch in a folder was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The manifest, as an absolute path.
    pub manifest: PathBuf,
    /// Unix seconds when the run started.
    pub started: u64,
    /// Unix seconds when it ended, if it did (a killed run never does).
    #[serde(default)]
    pub finished: Option<u64>,
    /// The signal that stopped it (`SIGINT`, `SIGTERM`), if one did.
    #[serde(default)]
    pub stopped_by: Option<String>,
    /// The estimated price of a job's first garment, in USD.
    pub price_first: f64,
    /// The estimated price of each further garment, in USD.
    pub price_extra: f64,
    /// The global flags the run's printed commands carry (`--base-url URL`,
    /// `--api-key-env NAME`; URL credentials masked, see
    /// [`term::global_flags`](crate::term::global_flags)), so the page
    /// `tryon report` writes again points at the same service.
    #[serde(default)]
    pub global_flags: Vec<String>,
}

fn path_in(dir: &Path) -> PathBuf {
    dir.join(report::FOLDER).join(FILE_NAME)
}

impl RunRecord {
    /// Write it (whole, through a rename) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        report::folder(dir)?;
        let path = path_in(dir);
        let text = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        report::write_whole(&path, &text, true)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// The record in `dir`: `None` when there is none; an error for one
    /// that is not a regular file, too large, or not a record.
    pub fn read(dir: &Path) -> Result<Option<Self>, String> {
        let path = path_in(dir);
        let shown = path.display();
        // A FIFO or a device in its place would never end: only a regular
        // file is read, and at most MAX_BYTES of it.
        let text = match tryon_client::tryon_api::file::read_regular(&path, MAX_BYTES) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{shown}: {e}")),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| format!("{shown}: not a run record ({e})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_a_hostile_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RunRecord::read(dir.path()), Ok(None));
        let record = RunRecord {
            manifest: PathBuf::from("/data/m.csv"),
            started: 100,
            finished: Some(160),
            stopped_by: None,
            price_first: 0.015,
            price_extra: 0.008,
            global_flags: vec!["--base-url".into(), "http://127.0.0.1:9".into()],
        };
        record.write(dir.path()).unwrap();
        assert_eq!(RunRecord::read(dir.path()), Ok(Some(record)));

        let path = path_in(dir.path());
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        let refused = RunRecord::read(dir.path()).unwrap_err();
        assert!(refused.contains("not a regular file"), "{refused}");
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "{\"manifest\":").unwrap();
        assert!(
            RunRecord::read(dir.path())
                .unwrap_err()
                .contains("not a run record")
        );
    }
}
