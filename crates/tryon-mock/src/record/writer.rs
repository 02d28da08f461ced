//! Writing a recording as the proxy goes: each exchange its own file, each
//! file written to a temporary name and renamed into place (a killed proxy
//! leaves every finished exchange whole), the caller's key masked
//! everywhere, images once under their hash, and a bound on the bytes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

use super::body::{self, Keys};
use super::{
    Body, Exchange, JobRef, JobTimeline, Manifest, RECORDING_FORMAT, RecordedRequest,
    RecordedResponse, Seen, exchange_name,
};
use crate::sync::lock;

/// Headers of a response kept in a recording (the ones the proxy passes on).
pub(crate) const KEPT_HEADERS: [&str; 5] = [
    "content-type",
    "retry-after",
    "cache-control",
    "location",
    "allow",
];

/// Writes `bytes` to `path` through a temporary file in the same
/// directory and a rename, so `path` is either absent or whole.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.flush()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// One exchange as the proxy saw it, before sanitizing.
pub(crate) struct Capture<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    /// The caller's key: never stored, masked wherever it appears.
    pub(crate) key: Option<&'a str>,
    pub(crate) request_body: &'a [u8],
    pub(crate) upstream_url: Option<&'a str>,
    pub(crate) status: u16,
    pub(crate) headers: &'a reqwest::header::HeaderMap,
    pub(crate) media_type: Option<&'a str>,
    pub(crate) body: &'a [u8],
    /// The job it is about (see the proxy's `job_id`).
    pub(crate) job: Option<&'a str>,
    pub(crate) at: Instant,
}

struct Job {
    submitted: Instant,
    timeline: Vec<Seen>,
}

#[derive(Default)]
struct Inner {
    seq: u64,
    written: u64,
    full: bool,
    images: HashSet<String>,
    /// Request ids in the order first seen.
    order: Vec<String>,
    jobs: HashMap<String, Job>,
    keys: Keys,
}

/// A recording being written.
pub(crate) struct Recorder {
    dir: PathBuf,
    limit: u64,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Starts a recording in `dir` (created if missing; it must hold no
    /// recording yet) of the API host `upstream`, at most `limit` bytes.
    ///
    /// # Errors
    /// `dir` cannot be created or written, or already holds a recording
    /// (`AlreadyExists`, naming it).
    pub(crate) fn create(dir: &Path, upstream: &str, limit: u64) -> std::io::Result<Self> {
        let manifest = dir.join("recording.json");
        if manifest.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "--record {}: already holds a recording; choose an empty directory",
                    dir.display()
                ),
            ));
        }
        std::fs::create_dir_all(dir.join("exchanges"))?;
        std::fs::create_dir_all(dir.join("images"))?;
        let text = pretty(&Manifest {
            format: RECORDING_FORMAT.to_string(),
            upstream: upstream.to_string(),
        });
        write_atomic(&manifest, &text)?;
        write_atomic(&dir.join("jobs.json"), b"[]\n")?;
        Ok(Self {
            dir: dir.to_path_buf(),
            limit,
            inner: Mutex::new(Inner {
                written: text.len() as u64,
                ..Inner::default()
            }),
        })
    }

    /// Records one exchange. Failures are logged, never passed to the
    /// caller: the proxy keeps serving.
    pub(crate) fn record(&self, c: &Capture<'_>) {
        let mut inner = lock(&self.inner);
        if inner.full {
            return;
        }
        if let Err(e) = self.write(&mut inner, c) {
            tracing::error!(dir = %self.dir.display(), error = %e, "recording: cannot write; exchange not recorded");
        }
    }

    fn write(&self, inner: &mut Inner, c: &Capture<'_>) -> std::io::Result<()> {
        inner.keys.learn(c.key);
        let mut new_images: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut request_raw = c.request_body.to_vec();
        inner.keys.mask(&mut request_raw);
        let request_body = body::normalize(&request_raw, &mut |hex, mime, bytes| {
            let name = format!("{hex}.{}", body::extension(mime));
            new_images.entry(name).or_insert_with(|| bytes.to_vec());
        });
        let mut response_raw = c.body.to_vec();
        inner.keys.mask(&mut response_raw);
        let response_body = response_body(&response_raw, c.media_type, &mut new_images);
        let headers = KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let v = c.headers.get(*name)?.to_str().ok()?;
                Some(((*name).to_string(), inner.keys.mask_str(v)))
            })
            .collect();
        let job = c.job.map(|id| self.observe(inner, id, c, &response_body));
        let exchange = Exchange {
            seq: inner.seq + 1,
            job,
            request: RecordedRequest {
                method: c.method.to_string(),
                path: inner.keys.mask_str(c.path),
                query: c.query.map(|q| inner.keys.mask_str(q)),
                api_key: c.key.is_some(),
                upstream_url: c.upstream_url.map(|u| inner.keys.mask_str(u)),
                body: request_body,
            },
            response: RecordedResponse {
                status: c.status,
                headers,
                body: response_body,
            },
        };
        new_images.retain(|name, _| !inner.images.contains(name));
        let text = pretty(&exchange);
        let size = text.len() as u64 + new_images.values().map(|b| b.len() as u64).sum::<u64>();
        if inner.written.saturating_add(size) > self.limit {
            inner.full = true;
            tracing::error!(
                dir = %self.dir.display(),
                limit = self.limit,
                written = inner.written,
                "recording: size limit reached (--record-limit); later exchanges are proxied but not recorded"
            );
            return Ok(());
        }
        for (name, bytes) in &new_images {
            write_atomic(&self.dir.join("images").join(name), bytes)?;
            inner.images.insert(name.clone());
        }
        write_atomic(
            &self.dir.join("exchanges").join(exchange_name(exchange.seq)),
            &text,
        )?;
        inner.seq = exchange.seq;
        inner.written += size;
        Ok(())
    }

    /// The job's offset for this exchange; a status seen for the first time
    /// goes on its timeline and `jobs.json` is rewritten.
    fn observe(&self, inner: &mut Inner, id: &str, c: &Capture<'_>, body: &Body) -> JobRef {
        let request_id = inner.keys.mask_str(id);
        let status = match body {
            Body::Json(v) => v.get("status").and_then(Value::as_str),
            _ => None,
        };
        // An id first seen without a status (an unknown id's 404) is no job.
        if !inner.jobs.contains_key(&request_id) && status.is_some() {
            inner.order.push(request_id.clone());
            inner.jobs.insert(
                request_id.clone(),
                Job {
                    submitted: c.at,
                    timeline: Vec::new(),
                },
            );
        }
        let Some(job) = inner.jobs.get_mut(&request_id) else {
            return JobRef {
                request_id,
                offset_ms: 0,
            };
        };
        let offset_ms = u64::try_from(c.at.saturating_duration_since(job.submitted).as_millis())
            .unwrap_or(u64::MAX);
        if let Some(status) = status
            && !job.timeline.iter().any(|s| s.status == status)
        {
            job.timeline.push(Seen {
                status: status.to_string(),
                offset_ms,
            });
            let all: Vec<JobTimeline> = inner
                .order
                .iter()
                .filter_map(|id| {
                    inner.jobs.get(id).map(|j| JobTimeline {
                        request_id: id.clone(),
                        timeline: j.timeline.clone(),
                    })
                })
                .collect();
            if let Err(e) = write_atomic(&self.dir.join("jobs.json"), &pretty(&all)) {
                tracing::error!(error = %e, "recording: cannot write jobs.json");
            }
        }
        JobRef {
            request_id,
            offset_ms,
        }
    }
}

/// A response body as stored: JSON and text inline, anything else a file.
fn response_body(raw: &[u8], media: Option<&str>, images: &mut BTreeMap<String, Vec<u8>>) -> Body {
    if raw.is_empty() {
        return Body::Empty;
    }
    let textual = media.is_none_or(|m| m == "application/json" || m.starts_with("text/"));
    if textual {
        if let Ok(v) = serde_json::from_slice::<Value>(raw) {
            return Body::Json(v);
        }
        if let Ok(t) = std::str::from_utf8(raw) {
            return Body::Text(t.to_string());
        }
    }
    let name = format!("{}.{}", body::sha256_hex(raw), body::extension(media));
    images.entry(name.clone()).or_insert_with(|| raw.to_vec());
    Body::File(format!("images/{name}"))
}

/// Pretty JSON with every object's keys sorted and a final newline:
/// stable, and diffs line by line. Going through `Value` sorts the keys
/// (its map is ordered by key), struct fields included.
pub(crate) fn pretty<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).unwrap_or_default();
    let mut text = serde_json::to_vec_pretty(&value).unwrap_or_default();
    text.push(b'\n');
    text
}
