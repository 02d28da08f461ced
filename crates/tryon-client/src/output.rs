//! A finished job's output and its safe download.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use url::Url;

use crate::error::{Error, Result};
use crate::image::ImageKind;
use crate::reader::read_image;
use crate::retry::{Call, Executor, Failure, Retryable, parse_retry_after};

/// A completed job's output: where the image is, and how to fetch it.
///
/// Downloads never carry the API key (they use a separate HTTP client
/// without it), are capped in size
/// ([`ClientBuilder::max_download_bytes`](crate::ClientBuilder::max_download_bytes)),
/// and must be a PNG, JPEG or WebP image, by `Content-Type` and by the
/// bytes themselves.
#[derive(Debug, Clone)]
pub struct Output {
    downloader: Downloader,
    request_id: String,
    url: Url,
    inference_time: Option<Duration>,
}

impl Output {
    pub(crate) fn new(
        downloader: Downloader,
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
                problem: format!(
                    "output is not an http(s) or data: URL: {:?}",
                    tryon_api::redact::Secrets::default().redact(url)
                ),
            });
        };
        Ok(Self {
            downloader,
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

    /// Fetches the image, without the API key, retried as a read by the
    /// rules on [`RetryPolicy`](crate::RetryPolicy), through the client's
    /// one retry executor and budget.
    pub async fn download(&self) -> Result<Bytes> {
        if self.url.scheme() == "data" {
            return self.decode_data_url();
        }
        self.downloader.fetch(&self.request_id, &self.url).await
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
        if bytes.len() as u64 > self.downloader.max_bytes() {
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
        // A write that fails part way (a full disk) or a rename that fails
        // leaves no `.part` file behind.
        let written = match tokio::fs::write(&tmp, &bytes).await {
            Ok(()) => tokio::fs::rename(&tmp, path).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
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

/// The narrow handle an [`Output`] downloads through: an HTTP client that
/// never carries the key, the size cap, and the client's one retry
/// executor.
#[derive(Clone)]
pub(crate) struct Downloader {
    http: reqwest::Client,
    executor: Arc<Executor>,
    max_bytes: u64,
}

impl std::fmt::Debug for Downloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloader")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl Downloader {
    pub(crate) fn new(http: reqwest::Client, executor: Arc<Executor>, max_bytes: u64) -> Self {
        Self {
            http,
            executor,
            max_bytes,
        }
    }

    /// The largest output accepted.
    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Fetches `url` through the executor, each attempt classified here.
    async fn fetch(&self, request_id: &str, url: &Url) -> Result<Bytes> {
        self.executor
            .execute(Call::Download { request_id }, || {
                self.attempt(request_id, url)
            })
            .await
    }

    /// One attempt, classified as a read by the rules on
    /// [`RetryPolicy`](crate::RetryPolicy): what may be retried is, any
    /// other answer ends the download.
    async fn attempt(
        &self,
        request_id: &str,
        url: &Url,
    ) -> std::result::Result<Bytes, Failure<Error>> {
        let fail = |status: Option<u16>, problem: String| Error::Download {
            request_id: request_id.to_string(),
            status,
            problem,
        };
        let resp = self.http.get(url.clone()).send().await.map_err(|e| {
            Failure::Retry(Retryable::transient(fail(
                None,
                e.without_url().to_string(),
            )))
        })?;
        let status = resp.status();
        if !status.is_success() {
            let error = fail(
                Some(status.as_u16()),
                format!("output host answered {status}"),
            );
            if !error.is_retryable() {
                return Err(Failure::Fatal(error));
            }
            let retry_after =
                parse_retry_after(resp.headers(), self.executor.clock().system_time());
            return Err(Failure::Retry(Retryable {
                error,
                retry_after,
                throttled: false,
            }));
        }
        let headers = resp.headers().clone();
        read_image(&headers, resp.bytes_stream(), self.max_bytes)
            .await
            .map_err(|fault| {
                let error = fail(None, fault.problem());
                if fault.is_cut_short() {
                    Failure::Retry(Retryable::transient(error))
                } else {
                    Failure::Fatal(error)
                }
            })
    }
}
