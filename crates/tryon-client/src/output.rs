//! A finished job's output and its safe download.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use url::Url;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::image::ImageKind;
use crate::retry::parse_retry_after;

/// One download attempt: the bytes, or the error with the server's
/// `Retry-After` and whether it is transient.
type Attempt = std::result::Result<Bytes, (Error, Option<Duration>, bool)>;

/// A completed job's output: where the image is, and how to fetch it.
///
/// Downloads never carry the API key (they use a separate HTTP client
/// without it), are capped in size
/// ([`ClientBuilder::max_download_bytes`](crate::ClientBuilder::max_download_bytes)),
/// and must be a PNG, JPEG or WebP image, by `Content-Type` and by the
/// bytes themselves.
#[derive(Debug, Clone)]
pub struct Output {
    client: Client,
    request_id: String,
    url: Url,
    inference_time: Option<Duration>,
}

impl Output {
    pub(crate) fn new(
        client: Client,
        request_id: String,
        url: &str,
        inference_time: Option<Duration>,
    ) -> Result<Self> {
        let parsed = Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https" | "data"));
        let Some(url) = parsed else {
            return Err(Error::InvalidResponse {
                request_id: Some(request_id),
                problem: format!("output is not an http(s) or data: URL: {url:?}"),
            });
        };
        Ok(Self {
            client,
            request_id,
            url,
            inference_time,
        })
    }

    /// The job that made it.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Where the image is (usually a storage URL on another host).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The server's compute time, when it said.
    pub fn inference_time(&self) -> Option<Duration> {
        self.inference_time
    }

    /// Fetches the image, without the API key, retrying transient errors.
    pub async fn download(&self) -> Result<Bytes> {
        if self.url.scheme() == "data" {
            return self.decode_data_url();
        }
        let inner = &self.client.inner;
        let mut attempt = 1;
        loop {
            match self.download_once().await {
                Ok(b) => return Ok(b),
                Err((e, retry_after, transient))
                    if (transient || e.is_retryable()) && attempt < inner.retry.max_attempts =>
                {
                    let delay = retry_after
                        .filter(|d| *d <= inner.retry.max_retry_after)
                        .unwrap_or_else(|| inner.retry.backoff(attempt));
                    tracing::info!(attempt, ?delay, error = %e, "retrying download");
                    inner.clock.sleep(delay).await;
                    attempt += 1;
                }
                Err((e, _, _)) => return Err(e),
            }
        }
    }

    /// One attempt. The error comes with the server's `Retry-After` and
    /// whether it is transient (no answer, or a body cut short), which is
    /// retried like a `5xx`.
    async fn download_once(&self) -> Attempt {
        let inner = &self.client.inner;
        let fail = |status: Option<u16>, problem: String| Error::Download {
            request_id: self.request_id.clone(),
            status,
            problem,
        };
        let mut resp = inner
            .download
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| (fail(None, e.without_url().to_string()), None, true))?;
        let status = resp.status();
        if !status.is_success() {
            let retry_after = parse_retry_after(resp.headers(), inner.clock.system_time());
            let e = fail(
                Some(status.as_u16()),
                format!("output host answered {status}"),
            );
            return Err((e, retry_after, false));
        }
        let max = inner.max_download_bytes;
        if resp.content_length().is_some_and(|n| n > max) {
            return Err((
                fail(
                    None,
                    format!(
                        "output is {} bytes, at most {max} allowed",
                        resp.content_length().unwrap_or_default()
                    ),
                ),
                None,
                false,
            ));
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let ct_ok = content_type.is_empty()
            || content_type.starts_with("image/")
            || content_type.starts_with("application/octet-stream")
            || content_type.starts_with("binary/octet-stream");
        if !ct_ok {
            return Err((
                fail(
                    None,
                    format!("Content-Type {content_type:?} is not an image"),
                ),
                None,
                false,
            ));
        }
        let mut buf = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    buf.extend_from_slice(&chunk);
                    if buf.len() as u64 > max {
                        return Err((
                            fail(
                                None,
                                format!("output exceeds {max} bytes, the download limit"),
                            ),
                            None,
                            false,
                        ));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Err((
                        fail(None, format!("body cut off: {}", e.without_url())),
                        None,
                        true,
                    ));
                }
            }
        }
        self.whole_image(buf)
    }

    /// The downloaded bytes, if they are a whole PNG, JPEG or WebP image.
    /// A cut-short image is transient (retried).
    fn whole_image(&self, buf: Vec<u8>) -> Attempt {
        let fail = |problem: String, transient| {
            let e = Error::Download {
                request_id: self.request_id.clone(),
                status: None,
                problem,
            };
            Err((e, None, transient))
        };
        let Some(kind) = ImageKind::sniff(&buf) else {
            return fail("the bytes are not a PNG, JPEG or WebP image".into(), false);
        };
        if !kind.looks_complete(&buf) {
            let n = buf.len();
            return fail(
                format!("the {} image is cut short ({n} bytes)", kind.mime()),
                true,
            );
        }
        Ok(Bytes::from(buf))
    }

    fn decode_data_url(&self) -> Result<Bytes> {
        let fail = |problem: &str| Error::Download {
            request_id: self.request_id.clone(),
            status: None,
            problem: problem.to_string(),
        };
        let raw = self.url.as_str();
        let payload = raw
            .split_once(";base64,")
            .map(|(_, p)| p)
            .ok_or_else(|| fail("data: output is not base64"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(payload)
            .map_err(|_| fail("data: output is not valid base64"))?;
        if bytes.len() as u64 > self.client.inner.max_download_bytes {
            return Err(fail("data: output exceeds the download limit"));
        }
        if ImageKind::sniff(&bytes).is_none() {
            return Err(fail("the bytes are not a PNG, JPEG or WebP image"));
        }
        Ok(Bytes::from(bytes))
    }

    /// Downloads the image and writes it to `path` atomically (a temporary
    /// file in the same folder, then a rename), so a crash never leaves a
    /// half-written image. Returns the number of bytes written.
    pub async fn save(&self, path: impl AsRef<Path>) -> Result<u64> {
        let path = path.as_ref();
        let bytes = self.download().await?;
        let tmp = temp_path(path);
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        tokio::fs::write(&tmp, &bytes).await.map_err(io)?;
        if let Err(e) = tokio::fs::rename(&tmp, path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io(e));
        }
        tracing::info!(path = %path.display(), bytes = bytes.len(), "saved output");
        Ok(bytes.len() as u64)
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    let suffix: u32 = rand::random();
    path.with_file_name(format!(".{name}.{suffix:08x}.part"))
}
