//! The request journal: what the mock was asked and what it answered.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// One request the mock received.
#[derive(Clone, Serialize)]
pub struct JournalEntry {
    /// When it arrived, on the mock clock.
    #[serde(serialize_with = "ser_secs")]
    pub at: Duration,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request path (without query).
    pub path: String,
    /// The `x-api-key` sent, if any. Only a fingerprint of it is shown, in
    /// `Debug` and in the control API's JSON (see [`key_fingerprint`]).
    #[serde(serialize_with = "ser_key", rename = "key_fingerprint")]
    pub key: Option<String>,
    /// Status code answered; `None` when the connection was dropped without
    /// a response.
    pub status: Option<u16>,
    /// The response body when it was JSON and `record_bodies` is on (the
    /// first [`MAX_RECORDED_BODY`](crate::MAX_RECORDED_BODY) bytes of it).
    #[serde(skip)]
    pub body: Option<bytes::Bytes>,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[allow(clippy::ref_option)]
fn ser_key<S: serde::Serializer>(k: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match k {
        Some(k) => s.serialize_some(&key_fingerprint(k)),
        None => s.serialize_none(),
    }
}

/// A fingerprint of an API key: `fp:` and 16 hex digits of a hash of the
/// whole key. Keys can be told apart and matched (compute the fingerprint
/// of a key you know), but no character of the key is shown.
///
/// ```
/// let fp = tryon_mock::key_fingerprint("sk-test");
/// assert!(fp.starts_with("fp:") && !fp.contains("sk-"));
/// assert_eq!(fp, tryon_mock::key_fingerprint("sk-test"));
/// ```
pub fn key_fingerprint(key: &str) -> String {
    format!(
        "fp:{:016x}",
        crate::render::fnv(&[b"tryon-mock key", key.as_bytes()])
    )
}

impl fmt::Debug for JournalEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalEntry")
            .field("at", &self.at)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("key", &self.key.as_deref().map(key_fingerprint))
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_key() {
        let e = JournalEntry {
            at: Duration::ZERO,
            method: "GET".into(),
            path: "/".into(),
            key: Some("sk-supersecret".into()),
            status: Some(200),
            body: None,
        };
        let s = format!("{e:?}");
        assert!(!s.contains("supersecret"), "{s}");
        assert!(!s.contains("sk-s"), "{s}");
        assert!(s.contains(&key_fingerprint("sk-supersecret")), "{s}");
    }
}
