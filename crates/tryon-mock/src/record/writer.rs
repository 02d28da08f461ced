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
    Body, Exchange, Incomplete, JobRef, JobTimeline, Manifest, RECORDING_FORMAT, RecordedRequest,
    RecordedResponse, RecordingIncomplete, Seen, exchange_name,
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

/// The incomplete mark, written when a recording starts (while there is
/// room) and renamed over `recording.json` if an exchange is lost and the
/// manifest cannot be rewritten (a full disk lets a rename through);
/// removed when the recording finishes.
const READY_MARK: &str = ".recording.incomplete.json";

/// Writes `bytes` to `path` through a temporary file in the same
/// directory and a rename, so `path` is either absent or whole. A failed
/// write removes its temporary file (no `.tmp` left on a full disk).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.flush()
    });
    let done = written.and_then(|()| std::fs::rename(&tmp, path));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
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
    /// Exchanges proxied but not recorded, and why the first was not.
    lost: u64,
    reason: Option<String>,
    images: HashSet<String>,
    /// Request ids in the order first seen.
    order: Vec<String>,
    jobs: HashMap<String, Job>,
    keys: Keys,
}

/// A recording being written.
pub(crate) struct Recorder {
    dir: PathBuf,
    upstream: String,
    limit: u64,
    inner: Mutex<Inner>,
}

/// What a recording holds so far (the proxy's `/__mock/health`).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct RecordingStatus {
    /// The directory.
    pub(crate) dir: String,
    /// Exchanges recorded.
    pub(crate) exchanges: u64,
    /// Exchanges proxied but not recorded.
    pub(crate) lost: u64,
    /// Whether every exchange so far was recorded.
    pub(crate) complete: bool,
    /// Why the first lost exchange was not recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
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
        let recorder = Self {
            dir: dir.to_path_buf(),
            upstream: upstream.to_string(),
            limit,
            inner: Mutex::new(Inner::default()),
        };
        let text = recorder.manifest(None);
        write_atomic(
            &dir.join(READY_MARK),
            &recorder.manifest(Some(Incomplete {
                lost: 1,
                reason:
                    "an exchange could not be written, nor this mark updated (the disk may be full)"
                        .into(),
            })),
        )?;
        write_atomic(&manifest, &text)?;
        write_atomic(&dir.join("jobs.json"), b"[]\n")?;
        lock(&recorder.inner).written = text.len() as u64;
        Ok(recorder)
    }

    /// `recording.json`'s bytes.
    fn manifest(&self, incomplete: Option<Incomplete>) -> Vec<u8> {
        pretty(&Manifest {
            format: RECORDING_FORMAT.to_string(),
            upstream: self.upstream.clone(),
            incomplete,
        })
    }

    /// Records one exchange. A failure is never passed to the caller (the
    /// proxy keeps serving): the exchange is counted lost and the
    /// recording marked incomplete.
    pub(crate) fn record(&self, c: &Capture<'_>) {
        let mut inner = lock(&self.inner);
        if inner.full {
            self.lose(&mut inner, None);
            return;
        }
        match self.write(&mut inner, c) {
            Ok(true) => {}
            Ok(false) => {
                let why = format!(
                    "the recording reached --record-limit ({} bytes)",
                    self.limit
                );
                self.lose(&mut inner, Some(why));
            }
            Err(e) => self.lose(&mut inner, Some(format!("cannot write: {e}"))),
        }
    }

    /// Counts one exchange lost and marks the recording incomplete in
    /// `recording.json` (through the mark made ready at the start when the
    /// manifest cannot be rewritten).
    fn lose(&self, inner: &mut Inner, why: Option<String>) {
        inner.lost += 1;
        if inner.reason.is_none() {
            let why = why.unwrap_or_else(|| "not recorded".into());
            tracing::error!(
                dir = %self.dir.display(),
                reason = %why,
                "recording: an exchange was not recorded; the recording is marked incomplete \
                 and a replay will refuse it (later exchanges are proxied, not recorded if they cannot be)"
            );
            inner.reason = Some(why);
        }
        let mark = self.manifest(Some(Incomplete {
            lost: inner.lost,
            reason: inner.reason.clone().unwrap_or_default(),
        }));
        let manifest = self.dir.join("recording.json");
        if write_atomic(&manifest, &mark).is_err() {
            let _ = std::fs::rename(self.dir.join(READY_MARK), &manifest);
        }
    }

    /// What the recording holds so far.
    pub(crate) fn status(&self) -> RecordingStatus {
        let inner = lock(&self.inner);
        RecordingStatus {
            dir: self.dir.display().to_string(),
            exchanges: inner.seq,
            lost: inner.lost,
            complete: inner.lost == 0,
            reason: inner.reason.clone(),
        }
    }

    /// Ends the recording (the proxy is stopping): removes the mark made
    /// ready at the start.
    ///
    /// # Errors
    /// The recording lost exchanges (`recording.json` says so too).
    pub(crate) fn finish(&self) -> Result<RecordingStatus, RecordingIncomplete> {
        let status = self.status();
        let _ = std::fs::remove_file(self.dir.join(READY_MARK));
        if status.complete {
            return Ok(status);
        }
        Err(RecordingIncomplete {
            dir: self.dir.clone(),
            lost: status.lost,
            reason: status.reason.unwrap_or_default(),
        })
    }

    /// Writes one exchange; `Ok(false)` when it would pass the size limit.
    fn write(&self, inner: &mut Inner, c: &Capture<'_>) -> std::io::Result<bool> {
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
                query: c.query.map(|q| inner.keys.mask_query(q)),
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
            return Ok(false);
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
        Ok(true)
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
                self.lose(inner, Some(format!("cannot write jobs.json: {e}")));
            }
        }
        JobRef {
            request_id,
            offset_ms,
        }
    }
}

impl Drop for Recorder {
    /// The proxy is gone: the mark made ready at the start is not needed
    /// (a loss has already been marked). A killed proxy leaves it behind.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.dir.join(READY_MARK));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn capture<'a>(headers: &'a reqwest::header::HeaderMap, body: &'a [u8]) -> Capture<'a> {
        Capture {
            method: "GET",
            path: "/v2/requests/x/status",
            query: None,
            key: None,
            request_body: &[],
            upstream_url: None,
            status: 200,
            headers,
            media_type: Some("application/json"),
            body,
            job: None,
            at: Instant::now(),
        }
    }

    #[test]
    fn a_loss_is_marked_even_when_the_manifest_cannot_be_rewritten() {
        // A disk so full that no new file can be written: the manifest's
        // rewrite fails (here: its temporary name is taken by a directory),
        // and the mark made ready at the start is renamed into place.
        let dir = tempfile::tempdir().unwrap();
        let recorder = Recorder::create(dir.path(), "http://up", 400).unwrap();
        std::fs::create_dir(dir.path().join("recording.json.tmp")).unwrap();
        let headers = reqwest::header::HeaderMap::new();
        let body = vec![b'1'; 1000];
        recorder.record(&capture(&headers, &body));
        let text = std::fs::read_to_string(dir.path().join("recording.json")).unwrap();
        let manifest: Manifest = serde_json::from_str(&text).unwrap();
        let lost = manifest.incomplete.expect("marked incomplete");
        assert!(lost.reason.contains("disk may be full"), "{lost:?}");
        assert!(recorder.finish().is_err());
        assert!(!dir.path().join(READY_MARK).exists());
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        // The rename cannot replace a non-empty directory.
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"").unwrap();
        assert!(write_atomic(&path, b"{}").is_err());
        assert!(!dir.path().join("x.json.tmp").exists());
    }
}
