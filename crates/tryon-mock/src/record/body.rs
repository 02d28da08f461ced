//! The one rule for request bodies, used when recording and when matching
//! a replayed request: images carried in the body (data URIs and bare
//! base64) become `sha256:<hex>` of their bytes; everything else stays.
//! Two bodies match when they are equal after that, except that an http(s)
//! URL's query string is not compared (signed URLs rotate), and a top-level
//! field left out matches the API's default for it (`prompt: ""`,
//! `turbo: false`, `output_format: "png"`, `output_quality: 95`,
//! `preserve_input_size: false`).

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::Body;

/// Shortest bare-base64 string read as an image (shorter ones are text).
const MIN_BARE_BASE64: usize = 64;

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

/// Most characters of a value shown in a difference.
const MAX_SHOWN: usize = 80;

/// The lower-case hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The file extension for a media type.
pub(crate) fn extension(media: Option<&str>) -> &'static str {
    match media.unwrap_or_default() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpg",
        "image/webp" => "webp",
        "image/gif" => "gif",
        _ => "bin",
    }
}

/// Most distinct keys remembered for masking.
const MAX_KEYS: usize = 64;

/// The API keys callers sent so far (in memory only), each masked in every
/// later body, and every URL's credentials, by the workspace's one rule
/// ([`tryon_api::redact`]): a key sent once is masked even where a request
/// without a key carries it. The recorder and the replay both apply it, so
/// a replayed request is compared as it was recorded.
#[derive(Default)]
pub(crate) struct Keys {
    keys: Vec<String>,
    secrets: tryon_api::redact::Secrets,
}

impl Keys {
    /// Remembers `key` (the oldest is forgotten beyond [`MAX_KEYS`]).
    pub(crate) fn learn(&mut self, key: Option<&str>) {
        if let Some(k) = key.filter(|k| !self.keys.iter().any(|x| x == k)) {
            if self.keys.len() == MAX_KEYS {
                self.keys.remove(0);
            }
            self.keys.push(k.to_string());
            self.secrets = tryon_api::redact::Secrets::new(self.keys.iter().map(String::as_str));
        }
    }

    /// `bytes` with the secrets taken out (see [`Keys`]).
    pub(crate) fn mask(&self, bytes: &mut Vec<u8>) {
        *bytes = self.secrets.redact_bytes(bytes);
    }

    /// `text` with the secrets taken out (see [`Keys`]).
    pub(crate) fn mask_str(&self, text: &str) -> String {
        self.secrets.redact(text)
    }

    /// A request's query string with the secrets taken out.
    pub(crate) fn mask_query(&self, query: &str) -> String {
        self.secrets.redact_query(query)
    }
}

/// The bytes of an image carried in a string: a `data:` URI or bare base64
/// of at least [`MIN_BARE_BASE64`] characters. Returns the media type when
/// the URI names one.
fn inline_image(s: &str) -> Option<(Option<String>, Vec<u8>)> {
    if s.starts_with("data:") {
        let (mime, bytes) = crate::render::decode_data_uri(s)?;
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
pub(crate) type Keep<'a> = dyn FnMut(&str, Option<&str>, &[u8]) + 'a;

/// A request body as stored and compared: JSON with every inline image
/// replaced by `sha256:<hex>` (each handed to `keep` with its media type
/// and hash), else text, else a file (also handed to `keep`).
pub(crate) fn normalize(raw: &[u8], keep: &mut Keep<'_>) -> Body {
    if raw.is_empty() {
        return Body::Empty;
    }
    if let Ok(mut v) = serde_json::from_slice::<Value>(raw) {
        replace_images(&mut v, keep);
        return Body::Json(v);
    }
    if let Ok(t) = std::str::from_utf8(raw) {
        return Body::Text(t.to_string());
    }
    let hex = sha256_hex(raw);
    keep(&hex, None, raw);
    Body::File(format!("images/{hex}.bin"))
}

fn replace_images(v: &mut Value, keep: &mut Keep<'_>) {
    match v {
        Value::String(s) => {
            if let Some((mime, bytes)) = inline_image(s) {
                let hex = sha256_hex(&bytes);
                keep(&hex, mime.as_deref(), &bytes);
                *s = format!("sha256:{hex}");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| replace_images(i, keep)),
        Value::Object(map) => map.values_mut().for_each(|i| replace_images(i, keep)),
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

fn shown(v: Option<&Value>) -> String {
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

/// Every way `got` differs from `recorded` under the matching rule, one
/// line each, like `garment_images[1]: recorded https://a/x.png, got
/// https://b/y.png`. Empty when they match.
pub(crate) fn differences(recorded: &Body, got: &Body) -> Vec<String> {
    let mut out = Vec::new();
    match (recorded, got) {
        (Body::Json(a), Body::Json(b)) => diff_json("", Some(a), Some(b), &mut out),
        (a, b) if a == b => {}
        _ => out.push(format!(
            "body: recorded {}, got {}",
            body_kind(recorded),
            body_kind(got)
        )),
    }
    out
}

fn body_kind(b: &Body) -> String {
    match b {
        Body::Empty => "no body".to_string(),
        Body::Json(_) => "a JSON body".to_string(),
        Body::Text(t) => format!("the text {}", shown(Some(&Value::String(t.clone())))),
        Body::File(f) => format!("binary data ({f})"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: &Value) -> Body {
        normalize(v.to_string().as_bytes(), &mut |_, _, _| {})
    }

    #[test]
    fn inline_images_compare_by_hash_and_urls_without_their_query() {
        let png = "data:image/png;base64,iVBORw0KGgo=";
        let mut kept = Vec::new();
        let signed = normalize(
            serde_json::json!({"person_image": png, "garment_images": ["https://a/x.png?sig=1"]})
                .to_string()
                .as_bytes(),
            &mut |hex, mime, bytes| {
                kept.push((hex.to_string(), mime.map(str::to_string), bytes.len()));
            },
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].1.as_deref(), Some("image/png"));
        let Body::Json(v) = &signed else {
            panic!("{signed:?}")
        };
        assert!(
            v["person_image"]
                .as_str()
                .is_some_and(|s| s.starts_with("sha256:"))
        );
        let resigned = json(
            &serde_json::json!({"person_image": png, "garment_images": ["https://a/x.png?sig=2"]}),
        );
        assert!(differences(&signed, &resigned).is_empty());
        let other = json(
            &serde_json::json!({"person_image": png, "garment_images": ["https://b/y.png"], "seed": 2, "turbo": false, "prompt": ""}),
        );
        assert_eq!(
            differences(&signed, &other),
            [
                "garment_images[0]: recorded https://a/x.png?sig=1, got https://b/y.png",
                "seed: recorded nothing, got 2"
            ]
        );
        let prompted = json(
            &serde_json::json!({"person_image": png, "garment_images": ["https://a/x.png"], "prompt": "red"}),
        );
        assert_eq!(
            differences(&signed, &prompted),
            ["prompt: recorded \"\", got red"],
            "a left-out field is its default"
        );
    }

    #[test]
    fn the_key_and_url_credentials_are_masked_wherever_they_appear() {
        let mut keys = Keys::default();
        keys.learn(Some("ab"));
        keys.learn(Some("sk-abc123"));
        let mut b =
            b"{\"k\":\"sk-abc123\",\"t\":\"xsk-abc123y\",\"u\":\"https://u:p@h/x?sig=1\"}".to_vec();
        keys.mask(&mut b);
        assert_eq!(
            String::from_utf8(b).unwrap(),
            r#"{"k":"[REDACTED]","t":"x[REDACTED]y","u":"https://[REDACTED]@h/x?sig=[REDACTED]"}"#
        );
        assert_eq!(
            keys.mask_str("abc sk-abc123"),
            "abc [REDACTED]",
            "short keys are not searched"
        );
        assert_eq!(keys.mask_query("key=sk%2Dabc123&w=1"), "key=[REDACTED]&w=1");
    }
}
