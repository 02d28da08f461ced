//! Talking to the upstream: the request sent (only the headers the API
//! needs; the caller's key only to the API and upload hosts), the response
//! read with a size bound, and the absolute URLs of a JSON body rewritten
//! to the proxy.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

/// Headers passed from the caller to the upstream; everything else stays.
const FORWARDED: [&str; 4] = ["content-type", "accept", "x-api-key", "user-agent"];

/// Where rewritten output URLs live on the proxy.
pub(crate) const OUTPUT_PREFIX: &str = "/__proxy/outputs/";

/// Most output URLs remembered; beyond it, outputs keep their upstream URL.
const MAX_OUTPUTS: usize = 100_000;

/// The upstream HTTP client: no redirects followed (a redirect goes back
/// to the caller, so the key is never carried to another host), bounded
/// connect and total time.
pub(crate) fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .timeout(timeout)
        .build()
}

/// An upstream answer, read whole (within the bound).
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    /// The media type, parameters removed, lower case.
    pub(crate) fn media_type(&self) -> Option<String> {
        let v = self
            .headers
            .get(reqwest::header::CONTENT_TYPE)?
            .to_str()
            .ok()?;
        let media = v
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        Some(media).filter(|m| !m.is_empty())
    }
}

/// Why an upstream exchange gave no answer to pass on.
#[derive(Debug)]
pub(crate) enum Lost {
    /// The request never left: it could not be built, or the upstream
    /// could not be reached. Nothing was sent, so nothing can have been
    /// taken: the proxy answers 502 saying so.
    NotSent(String),
    /// The request was sent and no usable answer came back: the
    /// connection broke, the upstream timed out, or its answer was over
    /// the proxy's bound. The upstream may have taken it (a submit may be
    /// billed), so the proxy gives no answer of its own either: it closes
    /// the caller's connection, as the service's own loss would.
    Unknown(String),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::NotSent(m) | Lost::Unknown(m) => f.write_str(m),
        }
    }
}

/// Sends one request upstream and reads the answer, at most `limit` bytes.
/// `headers` are the caller's; only [`FORWARDED`] ones go, and `x-api-key`
/// only when `with_key`.
///
/// # Errors
/// [`Lost`], with a message naming no key.
pub(crate) async fn send(
    client: &reqwest::Client,
    method: &hyper::Method,
    url: &str,
    headers: &hyper::HeaderMap,
    body: Bytes,
    with_key: bool,
    limit: usize,
) -> Result<Answer, Lost> {
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes())
        .map_err(|e| Lost::NotSent(format!("method: {e}")))?;
    let mut request = client.request(method, url);
    for name in FORWARDED {
        if name == "x-api-key" && !with_key {
            continue;
        }
        for value in headers.get_all(name) {
            request = request.header(name, value.as_bytes());
        }
    }
    if !body.is_empty() {
        request = request.body(body);
    }
    let response = request.send().await.map_err(|e| {
        let e = e.without_url();
        if e.is_connect() || e.is_builder() {
            Lost::NotSent(format!("the upstream cannot be reached: {e}"))
        } else if e.is_timeout() {
            Lost::Unknown(format!(
                "the upstream did not answer within the proxy's timeout: {e}"
            ))
        } else {
            Lost::Unknown(format!(
                "the connection to the upstream broke after the request was sent: {e}"
            ))
        }
    })?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = crate::capped::read_response(response, limit)
        .await
        .map_err(|e| Lost::Unknown(format!("the upstream's {status} answer: {e}")))?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Output URLs rewritten to the proxy, both ways.
#[derive(Default)]
pub(crate) struct Outputs {
    by_path: HashMap<String, String>,
    by_url: HashMap<String, String>,
}

impl Outputs {
    /// The proxy path for an upstream output URL (the same one each time);
    /// `None` once [`MAX_OUTPUTS`] are remembered.
    pub(crate) fn path_for(&mut self, url: &str) -> Option<String> {
        if let Some(p) = self.by_url.get(url) {
            return Some(p.clone());
        }
        if self.by_path.len() >= MAX_OUTPUTS {
            return None;
        }
        let name = url
            .split(['?', '#'])
            .next()
            .and_then(|u| u.rsplit('/').next())
            .filter(|n| !n.is_empty() && n.len() <= 128)
            .unwrap_or("output");
        let name: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect();
        let path = format!("{OUTPUT_PREFIX}{}/{name}", self.by_path.len());
        self.by_path.insert(path.clone(), url.to_string());
        self.by_url.insert(url.to_string(), path.clone());
        Some(path)
    }

    /// The upstream URL behind a proxy output path.
    pub(crate) fn original(&self, path: &str) -> Option<String> {
        self.by_path.get(path).cloned()
    }
}

/// The origin (`scheme://host[:port]`) of an absolute http(s) URL and the
/// rest (path and query).
fn split_origin(url: &str) -> Option<(&str, &str)> {
    let after = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let host_len = after.find(['/', '?', '#']).unwrap_or(after.len());
    let origin_len = url.len() - after.len() + host_len;
    Some((&url[..origin_len], &url[origin_len..]))
}

/// Rewrites a JSON body's absolute URLs to the proxy at `base`:
/// `status_url`, `response_url` and `poll_url` keep their path on the
/// proxy's origin; `output` becomes a proxy output path (unless
/// `keep_output`). Returns whether anything changed.
pub(crate) fn rewrite(
    body: &mut Value,
    base: &str,
    keep_output: bool,
    outputs: &mut Outputs,
) -> bool {
    let Some(obj) = body.as_object_mut() else {
        return false;
    };
    let mut changed = false;
    for field in ["status_url", "response_url", "poll_url"] {
        if let Some(Value::String(url)) = obj.get_mut(field)
            && let Some((_, rest)) = split_origin(url)
        {
            *url = format!("{base}{rest}");
            changed = true;
        }
    }
    if !keep_output
        && let Some(Value::String(url)) = obj.get_mut("output")
        && split_origin(url).is_some()
        && let Some(path) = outputs.path_for(url)
    {
        *url = format!("{base}{path}");
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_rewritten_to_the_proxy_and_outputs_remembered() {
        let mut outputs = Outputs::default();
        let mut body = serde_json::json!({
            "status_url": "https://api.segmind.com/v2/requests/a/status?x=1",
            "response_url": "https://api.segmind.com/v2/requests/a",
            "poll_url": "http://h:1/v1/requests/a",
            "output": "https://cdn.example/o/abc.png?sig=1",
        });
        assert!(rewrite(&mut body, "http://p:9", false, &mut outputs));
        assert_eq!(body["status_url"], "http://p:9/v2/requests/a/status?x=1");
        assert_eq!(body["response_url"], "http://p:9/v2/requests/a");
        assert_eq!(body["poll_url"], "http://p:9/v1/requests/a");
        assert_eq!(body["output"], "http://p:9/__proxy/outputs/0/abc.png");
        assert_eq!(
            outputs.original("/__proxy/outputs/0/abc.png").as_deref(),
            Some("https://cdn.example/o/abc.png?sig=1")
        );
        let mut again = serde_json::json!({"output": "https://cdn.example/o/abc.png?sig=1"});
        rewrite(&mut again, "http://p:9", true, &mut outputs);
        assert_eq!(again["output"], "https://cdn.example/o/abc.png?sig=1");
        rewrite(&mut again, "http://p:9", false, &mut outputs);
        assert_eq!(again["output"], "http://p:9/__proxy/outputs/0/abc.png");
        let mut data = serde_json::json!({"output": "data:image/png;base64,AAAA"});
        assert!(!rewrite(&mut data, "http://p:9", false, &mut outputs));
    }
}
