//! The request log: what the mock was asked and what it answered
//! ([`MockServer::request_log`](crate::MockServer::request_log), `GET
//! /__mock/request_log`). Not to be confused with `tryon batch`'s journal,
//! which records money spent.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// One request the mock received.
#[derive(Clone, Serialize)]
pub struct RequestLogEntry {
    /// When it arrived, on the mock clock.
    #[serde(serialize_with = "crate::secs::serialize")]
    pub at: Duration,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request path (without query).
    pub path: String,
    /// The `x-api-key` sent, if any. Only a fingerprint of it is shown, in
    /// `Debug` and in the control API's JSON (see
    /// [`key_fingerprint`](Self::key_fingerprint)).
    #[serde(serialize_with = "ser_key", rename = "key_fingerprint")]
    pub key: Option<String>,
    /// Status code answered; `None` when the connection was dropped without
    /// a response.
    pub status: Option<u16>,
    /// The response body when it was JSON and `record_bodies` is on (the
    /// first [`MAX_RECORDED_BODY`](crate::limits::MAX_RECORDED_BODY) bytes of it).
    #[serde(skip)]
    pub body: Option<bytes::Bytes>,
}

#[allow(clippy::ref_option)]
fn ser_key<S: serde::Serializer>(k: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match k {
        Some(k) => s.serialize_some(&key_fingerprint(k)),
        None => s.serialize_none(),
    }
}

impl RequestLogEntry {
    /// The fingerprint of the key sent, as `Debug` and the control API's
    /// JSON (`key_fingerprint`) show it: `fp:` and 16 hex digits of a hash
    /// of the whole key. Keys can be told apart and matched (a known key's
    /// fingerprint is the same in every entry), but no character of the
    /// key is shown.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let entry = tryon_mock::RequestLogEntry {
    ///     at: Duration::ZERO,
    ///     method: "GET".into(),
    ///     path: "/".into(),
    ///     key: Some("sk-test".into()),
    ///     status: Some(200),
    ///     body: None,
    /// };
    /// let fp = entry.key_fingerprint().unwrap();
    /// assert!(fp.starts_with("fp:") && !fp.contains("sk-"));
    /// let other = tryon_mock::RequestLogEntry { key: Some("sk-other".into()), ..entry.clone() };
    /// assert_ne!(other.key_fingerprint(), Some(fp));
    /// ```
    pub fn key_fingerprint(&self) -> Option<String> {
        self.key.as_deref().map(key_fingerprint)
    }
}

/// The fingerprint of `key` (see [`RequestLogEntry::key_fingerprint`]).
fn key_fingerprint(key: &str) -> String {
    format!(
        "fp:{:016x}",
        crate::render::fnv(&[b"tryon-mock key", key.as_bytes()])
    )
}

impl fmt::Debug for RequestLogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestLogEntry")
            .field("at", &self.at)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("key", &self.key_fingerprint())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_key() {
        let e = RequestLogEntry {
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
