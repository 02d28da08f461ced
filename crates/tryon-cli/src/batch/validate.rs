//! Checking every row before anything is sent: the request, the local
//! images, and the output file name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tryon_client::{ImageKind, TryOnRequest};

use crate::exit::CliError;
use crate::input;
use crate::manifest::Row;
use crate::names;
use crate::term;

/// The longest path most systems accept (Linux `PATH_MAX` less the NUL).
const MAX_PATH: usize = 4095;

/// A row that passed validation: its request and its output file.
#[derive(Debug)]
pub struct Prepared {
    /// The validated request.
    pub request: TryOnRequest,
    /// Where its image goes (see [`names`]).
    pub output: PathBuf,
}

/// The checks on a row's inputs that a real send would make, short of
/// sending: the dry run and the real run both call this, and only this.
/// Today it checks that each local image exists and is a PNG, JPEG or
/// WebP, reading only its first bytes (the request builder checks every
/// other limit).
pub fn preflight(row: &Row, _request: &TryOnRequest) -> Result<(), String> {
    let values = std::iter::once(&row.person)
        .chain(&row.garments)
        .chain(row.reference_pose.as_ref());
    for value in values {
        if input::is_url(value) {
            continue;
        }
        let mut head = [0u8; 16];
        let read =
            std::fs::File::open(value).and_then(|mut f| std::io::Read::read(&mut f, &mut head));
        match read {
            Ok(n) if ImageKind::sniff(&head[..n]).is_some() => {}
            Ok(_) => return Err(format!("{value}: not a PNG, JPEG or WebP image")),
            Err(e) => return Err(format!("{value}: {e}")),
        }
    }
    Ok(())
}

/// Validate every row; the first bad one stops the batch before anything is
/// sent (exit 2), naming the row and the field. Two rows whose output files
/// would be the same (ignoring case), or a path too long to create, are
/// refused here too.
pub fn validate(manifest: &Path, rows: &[Row], out_dir: &Path) -> Result<Vec<Prepared>, CliError> {
    let mut names: HashMap<String, &Row> = HashMap::new();
    rows.iter()
        .map(|row| {
            let at = |e: &str| {
                CliError::usage(format!(
                    "{} row {} ({}): {e}",
                    manifest.display(),
                    row.line,
                    term::inline(&row.id)
                ))
            };
            let request = row
                .fields()
                .and_then(|f| f.build())
                .map_err(|e| at(&e.to_string()))?;
            preflight(row, &request).map_err(|e| at(&e))?;
            let name = names::file_name(&row.id, request.output_format().extension());
            let output = out_dir.join(&name);
            let length = output.as_os_str().len();
            if name.len() > names::MAX_NAME || length > MAX_PATH {
                return Err(at(&format!(
                    "output path: {length} bytes ({}), at most {MAX_PATH} allowed (a shorter --out-dir helps)",
                    output.display()
                )));
            }
            if let Some(other) = names.insert(name.to_lowercase(), row) {
                return Err(at(&format!(
                    "output file `{name}` would also be written by row {} ({}); give the rows ids that differ by more than case",
                    other.line,
                    term::inline(&other.id)
                )));
            }
            Ok(Prepared { request, output })
        })
        .collect()
}
