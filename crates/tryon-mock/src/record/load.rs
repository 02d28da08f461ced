//! Reading a recording back: its version checked first, then every file,
//! each failure naming the file (a recording torn by hand is refused, never
//! half-read; the `.tmp` leftovers of a killed proxy are skipped).

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::body::sha256_hex;
use super::{Body, Exchange, JobTimeline, Manifest, RECORDING_FORMAT};
use crate::limits::MAX_PROXY_BODY;

/// A recording in memory.
#[derive(Debug)]
pub(crate) struct Recording {
    pub(crate) manifest: Manifest,
    /// In `seq` order.
    pub(crate) exchanges: Vec<Exchange>,
    pub(crate) jobs: Vec<JobTimeline>,
    /// The response files, by their name relative to the recording.
    pub(crate) files: HashMap<String, Bytes>,
}

/// Largest file a recording holds: an image is at most what the proxy
/// passes ([`MAX_PROXY_BODY`]); an exchange file carries at most one such
/// body as JSON text, with room for its escaping.
const MAX_IMAGE_FILE: usize = MAX_PROXY_BODY;
const MAX_JSON_FILE: usize = 2 * MAX_PROXY_BODY;

/// Reads one file of a recording: a regular file (a FIFO would block the
/// replay's start, a device such as `/dev/zero` never ends), at most
/// `limit` bytes.
///
/// # Errors
/// A message naming the file: missing, not a regular file, or over
/// `limit` (naming the limit).
fn read_file(path: &Path, limit: usize) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let too_big = || format!("{shown}: over {limit} bytes, the most a recording file may hold");
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown}: not a regular file"));
    }
    if meta.len() > limit as u64 {
        return Err(too_big());
    }
    let file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{shown}: {e}"))?;
    if bytes.len() > limit {
        return Err(too_big());
    }
    Ok(bytes)
}

fn read_json<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<T, String> {
    let path = dir.join(name);
    let text = read_file(&path, MAX_JSON_FILE)?;
    serde_json::from_slice(&text).map_err(|e| {
        format!(
            "{}: not a valid recording file (torn or edited?): {e}",
            path.display()
        )
    })
}

/// Loads the recording in `dir`.
///
/// # Errors
/// A message naming the file: no `recording.json`, a `format` other than
/// [`RECORDING_FORMAT`], a recording marked incomplete or holding no
/// exchange, a file that is not valid JSON of its kind, or an image missing
/// or whose content does not match its hash.
pub(crate) fn load(dir: &Path) -> Result<Recording, String> {
    let manifest: Manifest = read_json(dir, "recording.json")?;
    if manifest.format != RECORDING_FORMAT {
        return Err(format!(
            "{}: format {:?} is not supported (this build reads {RECORDING_FORMAT:?})",
            dir.join("recording.json").display(),
            manifest.format
        ));
    }
    if let Some(lost) = &manifest.incomplete {
        return Err(format!(
            "{}: the recording is incomplete: {} exchange(s) were proxied but not recorded \
             (first: {}); a replay of it would answer what the upstream never said. \
             Record it again",
            dir.join("recording.json").display(),
            lost.lost,
            lost.reason
        ));
    }
    let jobs: Vec<JobTimeline> = read_json(dir, "jobs.json")?;
    let exchanges_dir = dir.join("exchanges");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&exchanges_dir)
        .map_err(|e| format!("{}: {e}", exchanges_dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let mut exchanges = Vec::with_capacity(names.len());
    let mut files = HashMap::new();
    for path in names {
        let name = format!(
            "exchanges/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        let exchange: Exchange = read_json(dir, &name)?;
        for body in [&exchange.request.body, &exchange.response.body] {
            if let Body::File(file) = body
                && !files.contains_key(file)
            {
                files.insert(file.clone(), read_image(dir, file, &name)?);
            }
        }
        exchanges.push(exchange);
    }
    exchanges.sort_by_key(|e| e.seq);
    if exchanges.is_empty() {
        return Err(format!(
            "{}: the recording holds no exchanges: nothing to replay (was anything sent \
             through the proxy?). Record it again",
            exchanges_dir.display()
        ));
    }
    Ok(Recording {
        manifest,
        exchanges,
        jobs,
        files,
    })
}

/// An image file, its content checked against the hash in its name.
fn read_image(dir: &Path, file: &str, named_in: &str) -> Result<Bytes, String> {
    // Exactly `images/<64 hex>.<1 to 8 alphanumerics>`: nothing that could
    // name a file outside the recording.
    let stem = file
        .strip_prefix("images/")
        .and_then(|f| f.split_once('.'))
        .filter(|(hex, ext)| {
            hex.len() == 64
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
                && (1..=8).contains(&ext.len())
                && ext.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .map(|(hex, _)| hex)
        .ok_or_else(|| format!("{named_in}: {file:?} is not an images/<sha256>.<ext> name"))?;
    let path = dir.join(file);
    let bytes =
        read_file(&path, MAX_IMAGE_FILE).map_err(|e| format!("{e} (named in {named_in})"))?;
    if sha256_hex(&bytes) != stem {
        return Err(format!(
            "{}: content does not match its hash (torn or edited?)",
            path.display()
        ));
    }
    Ok(Bytes::from(bytes))
}
