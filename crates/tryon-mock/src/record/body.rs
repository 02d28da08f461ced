//! Request bodies as the recorder stores them and the replay compares
//! them, by the workspace's one rule ([`tryon_api::body`]: inline images
//! become `sha256:<hex>`, URLs compare without their query, a left-out
//! field is its default), and the keys masked in them.

use serde_json::Value;
pub(crate) use tryon_api::body::sha256_hex;
use tryon_api::body::{hash_inline_images, shown};

use super::Body;

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

/// Told of each image taken out of a body: its hash, media type, bytes.
pub(crate) type Keep<'a> = tryon_api::body::Keep<'a>;

/// A request body as stored and compared: JSON with every inline image
/// replaced by `sha256:<hex>` (each handed to `keep` with its media type
/// and hash), else text, else a file (also handed to `keep`).
pub(crate) fn normalize(raw: &[u8], keep: &mut Keep<'_>) -> Body {
    if raw.is_empty() {
        return Body::Empty;
    }
    if let Ok(mut v) = serde_json::from_slice::<Value>(raw) {
        hash_inline_images(&mut v, keep);
        return Body::Json(v);
    }
    if let Ok(t) = std::str::from_utf8(raw) {
        return Body::Text(t.to_string());
    }
    let hex = sha256_hex(raw);
    keep(&hex, None, raw);
    Body::File(format!("images/{hex}.bin"))
}

/// Every way `got` differs from `recorded` under the matching rule, one
/// line each, like `garment_images[1]: recorded https://a/x.png, got
/// https://b/y.png`. Empty when they match.
pub(crate) fn differences(recorded: &Body, got: &Body) -> Vec<String> {
    let mut out = Vec::new();
    match (recorded, got) {
        (Body::Json(a), Body::Json(b)) => out = tryon_api::body::differences(a, b),
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
