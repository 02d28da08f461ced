//! What of an answer is compared: a JSON body with the values that differ
//! on every run masked, so two services' answers to the same step can be
//! compared field by field.
//!
//! Masked: request ids (`<id>`: a `request_id`, any `*_id` or `id` field,
//! any UUID), URLs (`<url>`, `<data-uri>`), timestamps (`<timestamp>`: an
//! RFC 3339 string, or a number in a `*_at`/`timestamp` field), timings
//! (`<timing>`: any number under `metrics`, or in a `*_time`, `*_ms`,
//! `*_seconds`, `elapsed`, `latency` or `duration` field) and free text
//! (`<text>`: an `error` or `message` string, whose wording is the
//! service's own), and the account's own figures (`<balance>`: `credits`
//! and `free-credits`; `<count>`: a page's `total`). Everything else stays: field names, statuses, `null`s,
//! booleans, other numbers, the shape of arrays.

use serde_json::{Map, Value};

/// `body` with run-specific values masked (see the module docs).
pub fn body(body: &Value) -> Value {
    masked(None, body, false)
}

fn masked(key: Option<&str>, value: &Value, in_metrics: bool) -> Value {
    let key = key.unwrap_or("");
    match value {
        Value::Object(map) => {
            let metrics = in_metrics || key == "metrics";
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), masked(Some(k), v, metrics)))
                    .collect::<Map<_, _>>(),
            )
        }
        // Elements of an array take their field's name (`garment_images`).
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| masked(Some(key), v, in_metrics))
                .collect(),
        ),
        Value::String(s) => Value::String(string(key, s).unwrap_or_else(|| s.clone())),
        Value::Number(_) if in_metrics || is_timing(key) => "<timing>".into(),
        // The account's own figures: its balance and how many requests its
        // history holds differ from any other account's.
        Value::Number(_) if matches!(key, "credits" | "free-credits") => "<balance>".into(),
        Value::Number(_) if key == "total" => "<count>".into(),
        Value::Number(_) if is_timestamp_field(key) => "<timestamp>".into(),
        Value::Number(_) | Value::Bool(_) | Value::Null => value.clone(),
    }
}

/// The mask for a string in field `key`, or `None` to keep it.
fn string(key: &str, s: &str) -> Option<String> {
    let mask = if s.starts_with("http://") || s.starts_with("https://") {
        "<url>"
    } else if s.starts_with("data:") {
        "<data-uri>"
    } else if key == "id" || key.ends_with("_id") || is_uuid(s) {
        "<id>"
    } else if is_timestamp(s) || is_timestamp_field(key) {
        "<timestamp>"
    } else if key == "error" || key == "message" {
        "<text>"
    } else {
        return None;
    };
    Some(mask.to_string())
}

fn is_timing(key: &str) -> bool {
    ["_time", "_ms", "_seconds"]
        .iter()
        .any(|s| key.ends_with(s))
        || matches!(key, "elapsed" | "latency" | "duration")
}

fn is_timestamp_field(key: &str) -> bool {
    key.ends_with("_at") || key == "timestamp"
}

/// `8-4-4-4-12` hex digits.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Starts like RFC 3339: `YYYY-MM-DDTHH:MM` (or a space for the `T`).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() >= 16
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't' | b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_urls_timestamps_timings_and_free_text_are_masked() {
        let submit = json!({
            "request_id": "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b",
            "status": "QUEUED",
            "status_url": "https://api.segmind.com/v2/requests/3f2b/status",
            "poll_url": "http://127.0.0.1:9/v1/requests/x",
            "created_at": "2026-11-29T22:50:01.123Z",
            "queued_at": 1_764_456_601,
            "metrics": {"inference_time": 1.52, "steps": 4},
            "wait_ms": 250,
            "job_id": "job-1",
            "error": "garment_images: 12 given, at most 11 allowed",
            "trace": "a3bb189e-8bf9-3888-9912-ace4e6543002",
            "output": "data:image/png;base64,AAAA",
        });
        assert_eq!(
            body(&submit),
            json!({
                "request_id": "<id>",
                "status": "QUEUED",
                "status_url": "<url>",
                "poll_url": "<url>",
                "created_at": "<timestamp>",
                "queued_at": "<timestamp>",
                "metrics": {"inference_time": "<timing>", "steps": "<timing>"},
                "wait_ms": "<timing>",
                "job_id": "<id>",
                "error": "<text>",
                "trace": "<id>",
                "output": "<data-uri>",
            })
        );
    }

    #[test]
    fn what_is_not_run_specific_stays() {
        let result = json!({
            "status": "COMPLETED",
            "requestId": "job-1",
            "error": null,
            "metrics": {},
            "garment_images": ["https://example.com/a.jpg", "shirt"],
            "count": 3,
            "turbo": false,
            "nested": {"status": "FAILED", "note": "2026 was a year"},
            "date_like": "2026-11-29",
        });
        let masked = body(&result);
        assert_eq!(masked["status"], "COMPLETED");
        // Only the API's own id fields and UUIDs are ids: a renamed field
        // keeps its value, so a rename shows.
        assert_eq!(masked["requestId"], "job-1");
        assert_eq!(masked["error"], Value::Null);
        assert_eq!(masked["metrics"], json!({}));
        assert_eq!(masked["garment_images"], json!(["<url>", "shirt"]));
        assert_eq!(masked["count"], 3);
        assert_eq!(masked["turbo"], false);
        assert_eq!(
            masked["nested"],
            json!({"status": "FAILED", "note": "2026 was a year"})
        );
        assert_eq!(masked["date_like"], "2026-11-29");
        // A body that is not an object is masked the same way.
        assert_eq!(body(&json!("https://x.test/o.png")), json!("<url>"));
        assert_eq!(body(&json!([1, "a"])), json!([1, "a"]));
    }

    #[test]
    fn uuid_and_timestamp_shapes_are_exact() {
        assert!(is_uuid("3F2B8C1E-9A4D-4E6F-8B7A-1C2D3E4F5A6B"));
        assert!(!is_uuid("3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6")); // one short
        assert!(!is_uuid("zf2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"));
        assert!(is_timestamp("2026-11-29 22:50"));
        assert!(!is_timestamp("2026-11-29"));
        assert!(!is_timestamp("QUEUED"));
    }
}
