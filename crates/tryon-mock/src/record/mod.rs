//! Recordings (feature `proxy`): what `--record DIR` writes as the proxy
//! forwards, and what `--replay DIR` serves. The format is
//! [`RECORDING_FORMAT`], described in `docs/RECORDING.md`:
//!
//! ```text
//! DIR/recording.json          {"format": "tryon-recording/1", "upstream": …}
//! DIR/exchanges/000001.json   one exchange: request, response, job offset
//! DIR/jobs.json               each job's timeline (status first seen, ms)
//! DIR/images/<sha256>.<ext>   every image once, named by its content hash
//! ```
//!
//! [`writer`] writes one (sanitized, atomically, bounded), [`load`] reads
//! one back (refusing an unknown version or a damaged file by name), and
//! [`body`] holds the one rule both sides use to turn a request body into
//! what is stored and compared.

pub(crate) mod body;
pub(crate) mod load;
pub(crate) mod writer;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The version a recording declares in `recording.json`'s `format`; a
/// recording with any other value is refused, naming it. Public as
/// `Replay::RECORDING_FORMAT`.
pub(crate) const RECORDING_FORMAT: &str = "tryon-recording/1";

/// `recording.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// [`RECORDING_FORMAT`].
    pub(crate) format: String,
    /// The API host recorded (never a key).
    pub(crate) upstream: String,
    /// Set once an exchange could not be recorded: the recording is not
    /// what the upstream answered, and a replay refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) incomplete: Option<Incomplete>,
}

/// A recording that lost exchanges (feature `proxy`): what
/// [`Proxy::finish_recording`](crate::Proxy::finish_recording) returns, and
/// the source of the error [`serve`](crate::serve) ends with then (the
/// binaries print it and exit non-zero). `recording.json` is marked
/// incomplete and a replay refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingIncomplete {
    /// The recording's directory.
    pub dir: std::path::PathBuf,
    /// Exchanges proxied but not recorded.
    pub lost: u64,
    /// Why the first of them was not recorded (a full disk, the size
    /// limit).
    pub reason: String,
}

impl std::fmt::Display for RecordingIncomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--record {}: the recording is incomplete: {} exchange(s) were proxied but not \
             recorded (first: {}); recording.json is marked so and a replay refuses it",
            self.dir.display(),
            self.lost,
            self.reason
        )
    }
}

impl std::error::Error for RecordingIncomplete {}

impl RecordingIncomplete {
    /// The one inside an error [`serve`](crate::serve) returned, if that is
    /// why it failed.
    pub fn in_error(e: &std::io::Error) -> Option<&Self> {
        e.get_ref()?.downcast_ref()
    }
}

/// Why a recording is incomplete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Incomplete {
    /// Exchanges proxied but not recorded (at least this many: counted as
    /// they were lost, written when the disk let it).
    pub(crate) lost: u64,
    /// What stopped the first of them.
    pub(crate) reason: String,
}

/// A body as stored: JSON inline, text inline, binary in a hash-named file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Body {
    /// No body.
    Empty,
    /// A JSON body (request bodies with their images replaced by
    /// `sha256:<hex>`).
    Json(Value),
    /// A UTF-8 body that is not JSON.
    Text(String),
    /// Binary: `images/<sha256>.<ext>`, relative to the recording.
    File(String),
}

/// The job an exchange is about, and when (ms after its submit answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobRef {
    pub(crate) request_id: String,
    pub(crate) offset_ms: u64,
}

/// The request half of an exchange.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RecordedRequest {
    pub(crate) method: String,
    pub(crate) path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) query: Option<String>,
    /// Whether the caller sent an `x-api-key` (its value is never stored).
    pub(crate) api_key: bool,
    /// For an output fetched through the proxy: the upstream URL it came
    /// from (the `output` of a result body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) upstream_url: Option<String>,
    pub(crate) body: Body,
}

/// The response half of an exchange, as the upstream sent it (URLs not
/// rewritten).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RecordedResponse {
    pub(crate) status: u16,
    /// The headers the proxy passes on, lower-case names.
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Body,
}

/// One file under `exchanges/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Exchange {
    /// 1, 2, …: the order the proxy finished them in.
    pub(crate) seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) job: Option<JobRef>,
    pub(crate) request: RecordedRequest,
    pub(crate) response: RecordedResponse,
}

impl Exchange {
    /// The `status` field of a JSON response body.
    pub(crate) fn job_status(&self) -> Option<&str> {
        match &self.response.body {
            Body::Json(v) => v.get("status").and_then(Value::as_str),
            _ => None,
        }
    }
}

/// A status a job was first seen in, `offset_ms` after its submit answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Seen {
    pub(crate) offset_ms: u64,
    pub(crate) status: String,
}

/// One entry of `jobs.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobTimeline {
    pub(crate) request_id: String,
    pub(crate) timeline: Vec<Seen>,
}

/// The file name of exchange `seq` under `exchanges/`.
pub(crate) fn exchange_name(seq: u64) -> String {
    format!("{seq:06}.json")
}
