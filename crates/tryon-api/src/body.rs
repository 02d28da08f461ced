//! The one rule for try-on request bodies, shared by the mock (its
//! recorder, its replay and its request history) and the client (which
//! matches its own bodies against the account's history): images carried
//! in the body (`data:` URIs and bare base64) become `sha256:<hex>` of
//! their bytes; everything else stays. Two bodies match when they are
//! equal after that, except that an http(s) URL's query string is not
//! compared (signed URLs rotate), and a top-level field left out matches
//! the API's default for it (`prompt: ""`, `turbo: false`,
//! `output_format: "png"`, `output_quality: 95`, `preserve_input_size:
//! false`).
//!
//! ```
//! use serde_json::json;
//! let mut sent = json!({"person_image": "data:image/png;base64,aGk=", "garment_images": ["https://a/x.png?sig=1"]});
//! tryon_api::body::hash_inline_images(&mut sent, &mut |_, _, _| {});
//! assert!(sent["person_image"].as_str().unwrap().starts_with("sha256:"));
//! let mut listed = json!({"person_image": "data:image/png;base64,aGk=", "garment_images": ["https://a/x.png?sig=2"], "turbo": false});
//! tryon_api::body::hash_inline_images(&mut listed, &mut |_, _, _| {});
//! assert!(tryon_api::body::differences(&sent, &listed).is_empty());
//! ```

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// Shortest bare-base64 string read as an image (shorter ones are text).
const MIN_BARE_BASE64: usize = 64;

/// Most characters of a value shown in a difference.
const MAX_SHOWN: usize = 80;

/// The API's documented defaults of the try-on body's optional fields.
fn default_of(field: &str) -> Option<Value> {
    Some(match field {
        "prompt" => Value::from(""),
        "turbo" | "preserve_input_size" => Value::from(false),
        "output_format" => Value::from("png"),
        "output_quality" => Value::from(95),
        _ => return None,
    })
}

/// The lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Decodes a `data:<mime>;base64,<data>` URI into its media type (
/// `application/octet-stream` when it names none) and bytes.
pub fn decode_data_uri(uri: &str) -> Option<(String, Vec<u8>)> {
    let rest = uri.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()?;
    let mime = if mime.is_empty() {
        "application/octet-stream"
    } else {
        mime
    };
    Some((mime.to_string(), bytes))
}

/// The bytes of an image carried in a string: a `data:` URI or bare base64
/// of at least 64 characters. Returns the media type when the URI names
/// one.
pub fn inline_image(s: &str) -> Option<(Option<String>, Vec<u8>)> {
    if s.starts_with("data:") {
        let (mime, bytes) = decode_data_uri(s)?;
        return Some((Some(mime), bytes));
    }
    if s.len() < MIN_BARE_BASE64
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    Some((None, bytes))
}

/// Told of each image taken out of a body: its hash, media type, bytes.
pub type Keep<'a> = dyn FnMut(&str, Option<&str>, &[u8]) + 'a;

/// Replaces every inline image in `v` (at any depth) by `sha256:<hex>` of
/// its bytes, handing each to `keep` with its hash and media type.
pub fn hash_inline_images(v: &mut Value, keep: &mut Keep<'_>) {
    match v {
        Value::String(s) => {
            if let Some((mime, bytes)) = inline_image(s) {
                let hex = sha256_hex(&bytes);
                keep(&hex, mime.as_deref(), &bytes);
                *s = format!("sha256:{hex}");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| hash_inline_images(i, keep)),
        Value::Object(map) => map.values_mut().for_each(|i| hash_inline_images(i, keep)),
        _ => {}
    }
}

/// An http(s) URL without its query string and fragment.
fn without_query(s: &str) -> Option<&str> {
    (s.starts_with("http://") || s.starts_with("https://"))
        .then(|| s.split(['?', '#']).next().unwrap_or(s))
}

fn same_leaf(recorded: &Value, got: &Value) -> bool {
    match (recorded, got) {
        (Value::String(a), Value::String(b)) => match (without_query(a), without_query(b)) {
            (Some(a), Some(b)) => a == b,
            _ => a == b,
        },
        _ => recorded == got,
    }
}

/// A value as a difference shows it: text as is, anything else as JSON,
/// cut at 80 characters; `nothing` for an absent value.
pub fn shown(v: Option<&Value>) -> String {
    let Some(v) = v else {
        return "nothing".to_string();
    };
    let text = match v {
        Value::String(s) if !s.is_empty() => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_SHOWN {
        let cut: String = text.chars().take(MAX_SHOWN).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// Every way the JSON body `got` differs from `recorded` under the
/// matching rule (both with their inline images already hashed), one line
/// each, like `garment_images[1]: recorded https://a/x.png, got
/// https://b/y.png`. Empty when they match.
pub fn differences(recorded: &Value, got: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_json("", Some(recorded), Some(got), &mut out);
    out
}

fn diff_json(at: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<String>) {
    let name = |child: &str| {
        if at.is_empty() {
            child.to_string()
        } else {
            format!("{at}.{child}")
        }
    };
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let default = if at.is_empty() { default_of(k) } else { None };
                let (a, b) = (x.get(k).or(default.as_ref()), y.get(k).or(default.as_ref()));
                diff_json(&name(k), a, b, out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for i in 0..x.len().max(y.len()) {
                diff_json(&format!("{at}[{i}]"), x.get(i), y.get(i), out);
            }
        }
        (Some(x), Some(y)) if same_leaf(x, y) => {}
        (None, None) => {}
        _ => {
            let at = if at.is_empty() { "body" } else { at };
            out.push(format!("{at}: recorded {}, got {}", shown(a), shown(b)));
        }
    }
}
