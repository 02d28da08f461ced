//! Image inputs: URLs, local files and in-memory bytes.

use std::path::PathBuf;

use base64::Engine as _;
use bytes::Bytes;
use url::Url;

use crate::error::{Error, Result};

/// Default largest image accepted per input, after decoding: 10 MiB.
///
/// *Assumed*: Segmind does not publish a per-image limit; this keeps request
/// bodies reasonable and is changeable with
/// [`TryOnRequestBuilder::max_image_bytes`](crate::TryOnRequestBuilder::max_image_bytes).
pub const DEFAULT_MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;

/// An image type this crate recognises from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImageKind {
    /// PNG (`\x89PNG\r\n\x1a\n`).
    Png,
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// WebP (`RIFF....WEBP`).
    Webp,
}

impl ImageKind {
    /// Reads the real type from magic bytes; `None` when it is not a PNG,
    /// JPEG or WebP image.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }

    /// The MIME type, for example `image/png`.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }

    /// Whether `bytes` (already sniffed as this kind) end the way a whole
    /// image does: PNG's `IEND` chunk, JPEG's end-of-image marker near the
    /// end, WebP's RIFF size. Catches a body cut short but cleanly ended.
    pub(crate) fn looks_complete(self, bytes: &[u8]) -> bool {
        match self {
            Self::Png => bytes.ends_with(b"IEND\xaeB`\x82"),
            Self::Jpeg => {
                let tail = &bytes[bytes.len().saturating_sub(64)..];
                tail.windows(2).any(|w| w == [0xFF, 0xD9])
            }
            Self::Webp => bytes
                .get(4..8)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_le_bytes)
                .and_then(|n| usize::try_from(n).ok())
                .is_some_and(|n| n.saturating_add(8) <= bytes.len()),
        }
    }
}

/// One image input: a URL the server fetches, a local file, or bytes.
///
/// Local images (files and bytes) are sent inline as `data:` URIs, or first
/// stored through Segmind's `upload-asset` when the client is built with
/// [`ClientBuilder::upload_local_images`](crate::ClientBuilder::upload_local_images).
/// Their real type is read from their bytes; anything that is not PNG, JPEG
/// or WebP is refused before a request is sent.
///
/// ```
/// use tryon_client::Image;
/// let from_web = Image::url("https://example.com/person.jpg");
/// let from_disk = Image::file("shirt.png");
/// let png = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', 0, 0, 0, 0];
/// let from_memory = Image::bytes(png.to_vec(), "image/png");
/// # let _ = (from_web, from_disk, from_memory);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    pub(crate) source: Source,
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// Checked when the request is built.
    Url(String),
    /// Read and checked when the request is sent (before any byte goes out).
    File(PathBuf),
    /// Checked when the request is built.
    Bytes { bytes: Bytes, mime: String },
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Url(u) if u.starts_with("data:") => {
                write!(f, "Image::url(data: URI, {} chars)", u.len())
            }
            Source::Url(u) => write!(f, "Image::url({u:?})"),
            Source::File(p) => write!(f, "Image::file({p:?})"),
            Source::Bytes { bytes, mime } => {
                write!(f, "Image::bytes({} bytes, {mime:?})", bytes.len())
            }
        }
    }
}

impl Image {
    /// An image the server fetches itself: an `http`/`https` URL, or a
    /// `data:image/...;base64,...` URI. Checked when the request is built.
    pub fn url(url: impl Into<String>) -> Self {
        Self {
            source: Source::Url(url.into()),
        }
    }

    /// A local file, read when the request is sent (before anything goes
    /// out). Its type is read from its bytes, not its name.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            source: Source::File(path.into()),
        }
    }

    /// Image bytes in memory. The real type is read from the bytes; `mime`
    /// is what the caller believes it is, and a mismatch is logged as a
    /// warning (the sniffed type is sent).
    pub fn bytes(bytes: impl Into<Bytes>, mime: impl Into<String>) -> Self {
        Self {
            source: Source::Bytes {
                bytes: bytes.into(),
                mime: mime.into(),
            },
        }
    }

    /// Whether this image lives on this machine (file or bytes).
    pub fn is_local(&self) -> bool {
        !matches!(self.source, Source::Url(_))
    }

    /// Checks what can be checked without I/O.
    pub(crate) fn validate(&self, field: &str, max_bytes: usize) -> Result<()> {
        match &self.source {
            Source::Url(u) => validate_url(field, u, max_bytes),
            Source::Bytes { bytes, mime } => {
                check_bytes(field, bytes, Some(mime), max_bytes).map(|_| ())
            }
            Source::File(_) => Ok(()),
        }
    }

    /// The image as it goes on the wire: a URL, or a `data:` URI.
    /// `Ok(Wire::Local(..))` means bytes that may be uploaded instead.
    pub(crate) async fn to_wire(&self, field: &str, max_bytes: usize) -> Result<Wire> {
        match &self.source {
            Source::Url(u) => Ok(Wire::Url(u.clone())),
            Source::Bytes { bytes, mime } => {
                let kind = check_bytes(field, bytes, Some(mime), max_bytes)?;
                Ok(Wire::Local(data_uri(kind, bytes)))
            }
            Source::File(path) => {
                let meta = tokio::fs::metadata(path)
                    .await
                    .map_err(|source| Error::Io {
                        path: path.clone(),
                        source,
                    })?;
                if usize::try_from(meta.len()).unwrap_or(usize::MAX) > max_bytes {
                    return Err(Error::invalid(
                        field,
                        format!(
                            "file {} is {} bytes, at most {max_bytes} allowed",
                            path.display(),
                            meta.len()
                        ),
                    ));
                }
                let bytes = tokio::fs::read(path).await.map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                let kind = check_bytes(field, &bytes, None, max_bytes).map_err(|e| match e {
                    Error::Invalid { field, problem } => Error::Invalid {
                        field,
                        problem: format!("file {}: {problem}", path.display()),
                    },
                    other => other,
                })?;
                Ok(Wire::Local(data_uri(kind, &bytes)))
            }
        }
    }
}

/// An image ready to send.
#[derive(Debug, Clone)]
pub(crate) enum Wire {
    /// Sent as given.
    Url(String),
    /// A `data:` URI built from local bytes.
    Local(String),
}

impl Wire {
    pub(crate) fn into_string(self) -> String {
        match self {
            Wire::Url(s) | Wire::Local(s) => s,
        }
    }
}

fn data_uri(kind: ImageKind, bytes: &[u8]) -> String {
    format!(
        "data:{};base64,{}",
        kind.mime(),
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn check_bytes(
    field: &str,
    bytes: &[u8],
    claimed: Option<&str>,
    max_bytes: usize,
) -> Result<ImageKind> {
    if bytes.len() > max_bytes {
        return Err(Error::invalid(
            field,
            format!(
                "image is {} bytes, at most {max_bytes} allowed",
                bytes.len()
            ),
        ));
    }
    let Some(kind) = ImageKind::sniff(bytes) else {
        return Err(Error::invalid(
            field,
            format!(
                "not a PNG, JPEG or WebP image (first bytes {})",
                hex_prefix(bytes)
            ),
        ));
    };
    if let Some(claimed) = claimed {
        let claimed = claimed.trim().to_ascii_lowercase();
        let same = claimed == kind.mime() || (kind == ImageKind::Jpeg && claimed == "image/jpg");
        if !same {
            tracing::warn!(
                field,
                claimed = %claimed,
                sniffed = kind.mime(),
                "image type given does not match its bytes; sending the sniffed type"
            );
        }
    }
    Ok(kind)
}

fn hex_prefix(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "none: empty".to_string();
    }
    bytes
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn validate_url(field: &str, raw: &str, max_bytes: usize) -> Result<()> {
    // `get`, not `[..5]`: the fifth byte may fall inside a multi-byte char.
    if raw
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("data:"))
    {
        return validate_data_uri(field, raw, max_bytes);
    }
    let url = Url::parse(raw).map_err(|e| {
        Error::invalid(
            field,
            format!("{:?} is not a valid URL ({e})", shorten(raw)),
        )
    })?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(()),
        "http" | "https" => Err(Error::invalid(
            field,
            format!("{:?} has no host", shorten(raw)),
        )),
        other => Err(Error::invalid(
            field,
            format!("scheme {other:?} not allowed, only http, https or data:"),
        )),
    }
}

fn validate_data_uri(field: &str, raw: &str, max_bytes: usize) -> Result<()> {
    let Some((header, payload)) = raw[5..].split_once(',') else {
        return Err(Error::invalid(
            field,
            "data: URI has no ',' before its data",
        ));
    };
    let Some(mime) = header.strip_suffix(";base64") else {
        return Err(Error::invalid(
            field,
            "data: URI must be base64 (data:image/png;base64,...)",
        ));
    };
    // Decoded size is about 3/4 of the text; refuse early before decoding.
    if payload.len() / 4 * 3 > max_bytes.saturating_add(3) {
        return Err(Error::invalid(
            field,
            format!(
                "image is about {} bytes, at most {max_bytes} allowed",
                payload.len() / 4 * 3
            ),
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .map_err(|e| Error::invalid(field, format!("data: URI is not valid base64 ({e})")))?;
    check_bytes(field, &bytes, Some(mime), max_bytes).map(|_| ())
}

fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        s.to_string()
    } else {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_the_three_kinds_and_nothing_else() {
        assert_eq!(
            ImageKind::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(ImageKind::Png)
        );
        assert_eq!(
            ImageKind::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ImageKind::Jpeg)
        );
        assert_eq!(
            ImageKind::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageKind::Webp)
        );
        assert_eq!(ImageKind::sniff(b"GIF89a"), None);
        assert_eq!(ImageKind::sniff(b"%PDF-1.7"), None);
        assert_eq!(ImageKind::sniff(b""), None);
        assert_eq!(ImageKind::sniff(b"RIFF\0\0\0\0WAVE"), None);
    }

    #[test]
    fn debug_does_not_dump_data() {
        let img = Image::url(format!("data:image/png;base64,{}", "A".repeat(1000)));
        assert!(format!("{img:?}").len() < 60);
    }
}
