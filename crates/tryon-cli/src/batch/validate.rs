//! Checking every row before anything is sent: the request, the local
//! images, and the output file name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tryon_client::{Preflight, TryOnRequest};

use crate::exit::CliError;
use crate::fingerprint::Inputs;
use crate::manifest::Row;
use crate::names;
use crate::term;

/// The longest path most systems accept (Linux `PATH_MAX` less the NUL).
const MAX_PATH: usize = 4095;

/// A row that passed validation: its request, its output file, and what
/// it sends.
#[derive(Debug)]
pub struct Prepared {
    /// The validated request.
    pub request: TryOnRequest,
    /// Where its image goes (see [`names`]).
    pub output: PathBuf,
    /// What it sends, canonically (see [`crate::fingerprint`]).
    pub inputs: Inputs,
    /// The journal's key for it: `inputs.fingerprint()`.
    pub fingerprint: String,
}

impl Prepared {
    /// `row` prepared from its validated `request`, whose local images
    /// `preflight` read, writing to `output`.
    pub fn new(row: &Row, request: TryOnRequest, preflight: &Preflight, output: PathBuf) -> Self {
        let inputs = Inputs::of(row, &request, preflight);
        Self {
            fingerprint: inputs.fingerprint(),
            request,
            output,
            inputs,
        }
    }
}

/// The checks on a row's inputs that a real send would make, short of
/// sending: the dry run and the real run both call this, and only this.
/// It is the client's own [`TryOnRequest::preflight`], the code path a
/// submit reads its images through: regular files only, bounded reads, the
/// size cap, the type from the bytes, and the pixel limit from the header.
pub async fn preflight(request: &TryOnRequest) -> Result<Preflight, String> {
    request.preflight().await.map_err(|e| e.to_string())
}

/// Validate every row; the first bad one stops the batch before anything is
/// sent (exit 2), naming the row and the field. Two rows whose output files
/// would be the same (ignoring case), or a path too long to create, are
/// refused here too.
///
/// `progress(n)` is told before each row, with the count checked so far.
pub async fn validate(
    manifest: &Path,
    rows: &[Row],
    out_dir: &Path,
    progress: &dyn Fn(usize),
) -> Result<Vec<Prepared>, CliError> {
    let mut names: HashMap<String, &Row> = HashMap::new();
    let mut prepared = Vec::with_capacity(rows.len());
    for (n, row) in rows.iter().enumerate() {
        progress(n);
        prepared.push({
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
            let checked = preflight(&request).await.map_err(|e| at(&e))?;
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
            Prepared::new(row, request, &checked, output)
        });
    }
    Ok(prepared)
}
