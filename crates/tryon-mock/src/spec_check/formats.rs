//! `format` and `pattern`: the two keywords that judge a string's content
//! rather than its shape.

use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// The formats this check knows, each with what it asks of a value; every
/// other format (`binary`, which the API document puts on multipart request
/// fields, and any other) is ignored, as JSON Schema says of formats an
/// implementation does not know. A known format refuses a value of the
/// wrong JSON type too (that is only reached when the schema gives no
/// `type`; a `type` mismatch is reported on its own).
///
/// - `uri`: an absolute URI (RFC 3986): a scheme (a letter, then letters,
///   digits, `+`, `-` or `.`) and `:`, only characters RFC 3986 allows, each
///   `%` followed by two hex digits, and a URL the `url` crate parses (the
///   WHATWG parser `reqwest` follows links with; on its own it would quietly
///   repair spaces, tabs and backslashes, which the character rule refuses).
///   A relative reference (`/v2/requests/…`, `//host/…`) is refused.
/// - `uint64`: an integer in `0..=u64::MAX`.
/// - `double`: any JSON number.
///
/// `None` when `value` fits; otherwise what `format` expects, for a
/// `Problem`.
pub(super) fn format_departure(format: &str, value: &Value) -> Option<String> {
    let fits = match format {
        "uri" => value.as_str().is_some_and(is_absolute_uri),
        "uint64" => value.is_u64(),
        "double" => value.is_number(),
        _ => return None,
    };
    (!fits).then(|| match format {
        "uri" => "an absolute URI (format uri)".to_string(),
        "uint64" => format!("an integer in 0..={} (format uint64)", u64::MAX),
        _ => format!("a number (format {format})"),
    })
}

/// Whether `text` is an absolute URI; see [`format_departure`].
fn is_absolute_uri(text: &str) -> bool {
    let Some((scheme, _)) = text.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    let scheme_ok = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let chars_ok = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c));
    let bytes = text.as_bytes();
    let escapes_ok = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    scheme_ok && chars_ok && escapes_ok && url::Url::parse(text).is_ok()
}

/// What the pattern cache holds for one pattern.
enum Compiled {
    /// It compiled.
    Regex(std::sync::Arc<regress::Regex>),
    /// It did not: the compiler's error, and whether a check has reported
    /// it yet (it is reported once).
    Bad { error: String, reported: bool },
}

/// Every `pattern` met so far, compiled once.
fn patterns() -> std::sync::MutexGuard<'static, std::collections::HashMap<String, Compiled>> {
    static CACHE: OnceLock<Mutex<std::collections::HashMap<String, Compiled>>> = OnceLock::new();
    CACHE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether `text` matches `pattern` (ECMA-262, unanchored, as JSON Schema
/// says; compiled once, on first use).
///
/// # Errors
/// The pattern does not compile: `Some(error)` the first time (so it is
/// reported once), `None` after.
pub(super) fn pattern_matches(pattern: &str, text: &str) -> Result<bool, Option<String>> {
    let regex = {
        let mut cache = patterns();
        let entry = cache.entry(pattern.to_string()).or_insert_with(|| {
            match regress::Regex::new(pattern) {
                Ok(r) => Compiled::Regex(std::sync::Arc::new(r)),
                Err(e) => Compiled::Bad {
                    error: e.to_string(),
                    reported: false,
                },
            }
        });
        match entry {
            Compiled::Regex(r) => std::sync::Arc::clone(r),
            Compiled::Bad { reported: true, .. } => return Err(None),
            Compiled::Bad { error, reported } => {
                *reported = true;
                return Err(Some(error.clone()));
            }
        }
    };
    Ok(regex.find(text).is_some())
}
