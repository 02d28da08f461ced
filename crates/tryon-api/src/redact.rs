//! Secrets out of text: the one rule every crate of the workspace uses
//! before it writes text it did not choose (a recording, a log line, a
//! drift record, an error message).
//!
//! [`Secrets::redact`] replaces, with a mark (`[REDACTED]` by default):
//!
//! - in every `http(s)` URL in the text (also one written with JSON's
//!   `\/`): the user information (`https://user:pass@host` becomes
//!   `https://[REDACTED]@host`), and the value of each query or fragment
//!   parameter whose name says it is a credential (signed URLs of S3, GCS,
//!   Azure, the Amazon CDN and the usual `token`, `key`, `sig`, … : see
//!   [`is_secret_param`]) or whose value, percent-decoded, holds one of
//!   the secrets;
//! - every secret it was given, in each encoding it may travel in: as is,
//!   percent-encoded (upper- and lower-case hex, `+` for a space),
//!   base64 (standard and URL-safe, with and without padding) and
//!   JSON-escaped. Secrets shorter than 4 bytes are not searched for (they
//!   would match everywhere; the API's keys are far longer).
//!
//! The rule is deterministic, so a recording and a replay that both apply
//! it to the same request get the same text.
//!
//! ```
//! use tryon_api::redact::Secrets;
//! let secrets = Secrets::new(["sk-live-0123456789"]);
//! assert_eq!(
//!     secrets.redact("GET https://u:pw@cdn.example/o.png?X-Amz-Signature=abc&w=2 key=sk-live-0123456789"),
//!     "GET https://[REDACTED]@cdn.example/o.png?X-Amz-Signature=[REDACTED]&w=2 key=[REDACTED]"
//! );
//! ```

use std::borrow::Cow;

use base64::Engine as _;

/// The default mark put where a secret was.
pub const MARK: &str = "[REDACTED]";

/// Shortest secret searched for, in bytes.
const MIN_SECRET: usize = 4;

/// Whether a URL parameter of this name carries a credential: the names of
/// signed URLs (AWS `X-Amz-Signature`, `X-Amz-Credential`,
/// `X-Amz-Security-Token`, `Signature`, `AWSAccessKeyId`; GCS
/// `X-Goog-Signature`, `X-Goog-Credential`, `GoogleAccessId`; Azure SAS
/// `sig`; Amazon's CDN `Policy`, `Key-Pair-Id`) and the usual ones (`token`,
/// `access_token`, `key`, `api_key`, `apikey`, `auth`, `code`, `jwt`,
/// `password`, `secret`, `session`), case-insensitively; a name holding
/// `token`, `secret`, `signature`, `password`, `credential` or `session`
/// counts too.
pub fn is_secret_param(name: &str) -> bool {
    const EXACT: [&str; 16] = [
        "sig",
        "key",
        "apikey",
        "api_key",
        "api-key",
        "x-api-key",
        "auth",
        "authorization",
        "code",
        "jwt",
        "pwd",
        "passwd",
        "policy",
        "key-pair-id",
        "awsaccesskeyid",
        "googleaccessid",
    ];
    const PARTS: [&str; 6] = [
        "token",
        "secret",
        "signature",
        "password",
        "credential",
        "session",
    ];
    let name = name.to_ascii_lowercase();
    EXACT.contains(&name.as_str()) || PARTS.iter().any(|p| name.contains(p))
}

/// The secrets to remove from text, each with its encodings.
#[derive(Clone)]
pub struct Secrets {
    /// The secrets as given.
    plain: Vec<String>,
    /// Every encoding of every secret, longest first.
    needles: Vec<String>,
    mark: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("count", &self.plain.len())
            .finish_non_exhaustive()
    }
}

impl Default for Secrets {
    fn default() -> Self {
        Self {
            plain: Vec::new(),
            needles: Vec::new(),
            mark: MARK.to_string(),
        }
    }
}

impl Secrets {
    /// These secrets (empty and short ones are ignored), marked with
    /// [`MARK`].
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut s = Self::default();
        for secret in secrets {
            s.add(secret);
        }
        s
    }

    /// The same secrets, marked with `mark` instead.
    #[must_use]
    pub fn with_mark(mut self, mark: &str) -> Self {
        mark.clone_into(&mut self.mark);
        self
    }

    /// Adds a secret (ignored when shorter than 4 bytes or known already).
    pub fn add(&mut self, secret: &str) {
        if secret.len() < MIN_SECRET || self.plain.iter().any(|p| p == secret) {
            return;
        }
        self.plain.push(secret.to_string());
        for needle in encodings(secret) {
            if needle.len() >= MIN_SECRET && !self.needles.contains(&needle) {
                self.needles.push(needle);
            }
        }
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// How many secrets are known.
    pub fn len(&self) -> usize {
        self.plain.len()
    }

    /// Whether no secret is known (URLs are still redacted).
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty()
    }

    /// `text` with its URL credentials and every encoding of every secret
    /// replaced by the mark (see the module docs).
    pub fn redact(&self, text: &str) -> String {
        let urls = self.redact_urls(text);
        let mut out = urls.into_owned();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), &self.mark);
            }
        }
        out
    }

    /// [`redact`](Self::redact) for bytes: text is redacted as text; bytes
    /// that are not UTF-8 (an image) have the secrets' encodings replaced
    /// as bytes.
    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        if let Ok(text) = std::str::from_utf8(bytes) {
            return self.redact(text).into_bytes();
        }
        let mut out = bytes.to_vec();
        for needle in &self.needles {
            out = replace_bytes(&out, needle.as_bytes(), self.mark.as_bytes());
        }
        out
    }

    /// `text` with the credentials of every `http(s)` URL in it replaced
    /// (the first half of [`redact`](Self::redact)).
    pub fn redact_urls<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let bytes = text.as_bytes();
        let mut out = String::new();
        let mut copied = 0;
        let mut at = 0;
        while let Some(found) = find_url(bytes, at) {
            let (start, end) = found;
            let url = &text[start..end];
            let cleaned = self.clean_url(url);
            if cleaned != url {
                out.push_str(&text[copied..start]);
                out.push_str(&cleaned);
                copied = end;
            }
            at = end.max(start + 1);
        }
        if copied == 0 {
            return Cow::Borrowed(text);
        }
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }

    /// A query string (`a=1&token=t`, no `?`) as [`redact`](Self::redact)
    /// treats the query of a URL, then every encoding of every secret
    /// marked.
    pub fn redact_query(&self, query: &str) -> String {
        let mut out = String::with_capacity(query.len());
        for (i, param) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(&self.clean_param(param));
        }
        self.redact(&out)
    }

    /// One URL with its user information and secret parameters marked.
    fn clean_url(&self, url: &str) -> String {
        let Some(scheme_end) = url.find(':') else {
            return url.to_string();
        };
        let sep = if url[scheme_end..].starts_with(":\\/\\/") {
            ":\\/\\/"
        } else {
            "://"
        };
        let authority_start = scheme_end + sep.len();
        let rest = &url[authority_start..];
        let authority_len = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        let mut out = url[..authority_start].to_string();
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(&self.mark);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        let tail = &rest[authority_len..];
        let (path, params) = match tail.find(['?', '#']) {
            Some(i) => (&tail[..i], &tail[i..]),
            None => (tail, ""),
        };
        out.push_str(path);
        // `?a=1&b=2#c=3`: each delimiter kept, each value judged.
        let mut piece = String::new();
        for c in params.chars() {
            if matches!(c, '?' | '#' | '&' | ';') {
                out.push_str(&self.clean_param(&piece));
                piece.clear();
                out.push(c);
            } else {
                piece.push(c);
            }
        }
        out.push_str(&self.clean_param(&piece));
        out
    }

    /// `name=value`, its value marked when it is a credential.
    fn clean_param(&self, param: &str) -> String {
        let Some((name, value)) = param.split_once('=') else {
            return param.to_string();
        };
        if value.is_empty() {
            return param.to_string();
        }
        let decoded: String = form_urlencoded::parse(format!("v={value}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let holds_secret = self.plain.iter().any(|s| decoded.contains(s.as_str()));
        if is_secret_param(name) || holds_secret {
            format!("{name}={}", self.mark)
        } else {
            param.to_string()
        }
    }
}

/// Every encoding a secret may travel in (see the module docs).
fn encodings(secret: &str) -> Vec<String> {
    let b = secret.as_bytes();
    // Form encoding keeps `*-._`, RFC 3986 keeps `-._~`; some encoders
    // escape every byte but letters and digits.
    let form: String = form_urlencoded::byte_serialize(b).collect();
    let percent_lower = lower_hex_escapes(&form);
    let percent_space = form.replace('+', "%20");
    let rfc3986 = percent_escape(b, |c| c.is_ascii_alphanumeric() || b"-._~".contains(&c));
    let every = percent_escape(b, |c| c.is_ascii_alphanumeric());
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or(secret)
        .to_string();
    let std64 = base64::engine::general_purpose::STANDARD;
    let url64 = base64::engine::general_purpose::URL_SAFE;
    vec![
        secret.to_string(),
        form.clone(),
        percent_lower,
        percent_space,
        lower_hex_escapes(&rfc3986),
        rfc3986,
        lower_hex_escapes(&every),
        every,
        json.replace('/', "\\/"),
        json,
        std64.encode(b),
        std64.encode(b).trim_end_matches('=').to_string(),
        url64.encode(b),
        url64.encode(b).trim_end_matches('=').to_string(),
    ]
}

/// `bytes` with every byte `keep` refuses written `%XX` (upper-case hex).
fn percent_escape(bytes: &[u8], keep: impl Fn(u8) -> bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 3);
    for &c in bytes {
        if keep(c) {
            out.push(char::from(c));
        } else {
            let _ = write!(out, "%{c:02X}");
        }
    }
    out
}

/// `%2B` → `%2b`.
fn lower_hex_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            for _ in 0..2 {
                if let Some(h) = chars.next() {
                    out.push(h.to_ascii_lowercase());
                }
            }
        }
    }
    out
}

/// The next `http(s)` URL at or after `from`: its start and end.
fn find_url(text: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 7 <= text.len() {
        let rest = &text[i..];
        let scheme = if starts_with_ignore_case(rest, b"https") {
            5
        } else if starts_with_ignore_case(rest, b"http") {
            4
        } else {
            i += 1;
            continue;
        };
        let after = &rest[scheme..];
        let sep = if after.starts_with(b"://") {
            3
        } else if after.starts_with(b":\\/\\/") {
            5
        } else {
            i += 1;
            continue;
        };
        let mut end = i + scheme + sep;
        while end < text.len() {
            let c = text[end];
            let escaped_slash = c == b'\\' && text.get(end + 1) == Some(&b'/');
            if escaped_slash {
                end += 2;
                continue;
            }
            if c.is_ascii_whitespace()
                || c.is_ascii_control()
                || matches!(c, b'"' | b'\'' | b'<' | b'>' | b'`' | b'\\')
            {
                break;
            }
            end += 1;
        }
        return Some((i, end));
    }
    None
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn replace_bytes(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return haystack.to_vec();
    }
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-live/Ab+c 9=";

    #[test]
    fn every_encoding_of_the_key_is_marked() {
        let s = Secrets::new([KEY]);
        let std64 = base64::engine::general_purpose::STANDARD.encode(KEY);
        let url64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(KEY);
        for text in [
            KEY.to_string(),
            "sk-live%2FAb%2Bc+9%3D".to_string(),
            "sk-live%2fAb%2bc+9%3d".to_string(),
            "sk-live%2FAb%2Bc%209%3D".to_string(),
            "sk%2Dlive%2FAb%2Bc%209%3D".to_string(),
            "sk%2dlive%2fAb%2bc%209%3d".to_string(),
            "sk-live\\/Ab+c 9=".to_string(),
            std64,
            url64,
        ] {
            let got = s.redact(&format!("<{text}>"));
            assert_eq!(got, "<[REDACTED]>", "{text}");
        }
    }

    #[test]
    fn url_credentials_and_signed_parameters_are_marked() {
        let s = Secrets::new(["sk-0123456789"]);
        let cases = [
            (
                "https://user:pass@host.example/a.png",
                "https://[REDACTED]@host.example/a.png",
            ),
            (
                "https://b.s3.amazonaws.com/o.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F1&X-Amz-Signature=ff00&X-Amz-Expires=60",
                "https://b.s3.amazonaws.com/o.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=[REDACTED]&X-Amz-Signature=[REDACTED]&X-Amz-Expires=60",
            ),
            (
                "https://acct.blob.core.windows.net/c/o.png?sv=2022&se=2026&sig=abc%3D",
                "https://acct.blob.core.windows.net/c/o.png?sv=2022&se=2026&sig=[REDACTED]",
            ),
            (
                "https://storage.googleapis.com/b/o?GoogleAccessId=x&Expires=1&Signature=s",
                "https://storage.googleapis.com/b/o?GoogleAccessId=[REDACTED]&Expires=1&Signature=[REDACTED]",
            ),
            (
                "http://h/p?width=2&token=t0k#access_token=x",
                "http://h/p?width=2&token=[REDACTED]#access_token=[REDACTED]",
            ),
            // The key, percent-encoded in a parameter of any name.
            ("http://h/p?k=sk%2D0123456789", "http://h/p?k=[REDACTED]"),
            // JSON's escaped slashes.
            (
                r#"{"u":"https:\/\/a:b@h\/x?sig=1"}"#,
                r#"{"u":"https:\/\/[REDACTED]@h\/x?sig=[REDACTED]"}"#,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(s.redact(text), want, "{text}");
        }
        assert_eq!(
            s.redact_query("w=2&X-Amz-Signature=ab&k=sk-0123456789"),
            "w=2&X-Amz-Signature=[REDACTED]&k=[REDACTED]"
        );
        let plain = "see https://example.com/shirt.jpg?w=2 and http://h:8/p";
        assert!(matches!(s.redact_urls(plain), Cow::Borrowed(_)));
        assert_eq!(s.redact(plain), plain);
    }

    #[test]
    fn short_secrets_and_other_marks() {
        let s = Secrets::new(["ab", ""]).with_mark("[key removed]");
        assert!(s.is_empty());
        assert_eq!(s.redact("abc"), "abc");
        let s = Secrets::new(["sk-0123456789"]).with_mark("[key removed]");
        assert_eq!(s.redact("x sk-0123456789"), "x [key removed]");
        let image = [
            0xff, 0xd8, b's', b'k', b'-', b'0', b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8',
            b'9', 0xff,
        ];
        let out = s.redact_bytes(&image);
        assert!(!out.windows(13).any(|w| w == b"sk-0123456789"));
        assert!(out.starts_with(&[0xff, 0xd8]) && out.ends_with(&[0xff]));
    }
}
