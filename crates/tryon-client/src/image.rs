//! Image inputs: URLs, local files and in-memory bytes.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use sha2::Digest as _;
use tokio::io::AsyncReadExt as _;
use url::Url;

use crate::error::{Error, Result};
use crate::limits::{DEFAULT_MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE};

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

    /// Width and height from the image's header (PNG's `IHDR`, JPEG's
    /// start-of-frame, WebP's `VP8`/`VP8L`/`VP8X`), without decoding any
    /// pixel. An error when the header is missing or garbled.
    fn dimensions(self, bytes: &[u8]) -> std::result::Result<(u32, u32), String> {
        let format = match self {
            Self::Png => image::ImageFormat::Png,
            Self::Jpeg => image::ImageFormat::Jpeg,
            Self::Webp => image::ImageFormat::WebP,
        };
        let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
        // Only the header is read; our own pixel limit is applied to what
        // it declares, with a message naming it.
        reader.no_limits();
        reader.into_dimensions().map_err(|e| e.to_string())
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
            Source::Url(u) => write!(
                f,
                "Image::url({:?})",
                tryon_api::redact::Secrets::default().redact(u)
            ),
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
    ///
    /// Only a regular file is read: a directory, a FIFO, a socket or a
    /// device (`/dev/zero`) is refused from its metadata, before it is
    /// opened, and at most the size limit plus one byte is ever read, so a
    /// file that grows while it is read cannot exhaust memory either.
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
    pub(crate) fn validate(&self, field: &str, limits: Limits) -> Result<()> {
        match &self.source {
            Source::Url(u) => validate_url(field, u, limits).map(|_| ()),
            Source::Bytes { bytes, mime } => {
                check_bytes(field, bytes, Some(mime), limits).map(|_| ())
            }
            Source::File(_) => Ok(()),
        }
    }

    /// Reads and checks the image, and returns it as it goes on the wire:
    /// the one path both [`TryOnRequest::preflight`](crate::TryOnRequest::preflight)
    /// and a real send take.
    pub(crate) async fn load(&self, field: &str, limits: Limits) -> Result<Loaded> {
        match &self.source {
            Source::Url(u) => {
                let checked = validate_url(field, u, limits)?;
                Ok(Loaded {
                    wire: Wire::Url(u.clone()),
                    checked,
                })
            }
            Source::Bytes { bytes, mime } => {
                let checked = check_bytes(field, bytes, Some(mime), limits)?;
                Ok(Loaded {
                    wire: Wire::Local(data_uri(checked.kind, bytes)),
                    checked: Some(checked),
                })
            }
            Source::File(path) => {
                let (bytes, checked) = read_checked_file(field, path, limits).await?;
                Ok(Loaded {
                    wire: Wire::Local(data_uri(checked.kind, &bytes)),
                    checked: Some(checked),
                })
            }
        }
    }
}

/// The size limits every image input is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Most bytes (after decoding a `data:` URI).
    pub(crate) max_bytes: usize,
    /// Most pixels (width × height) the image's header may declare.
    pub(crate) max_pixels: u64,
}

/// One image input that was read and checked: what
/// [`TryOnRequest::preflight`](crate::TryOnRequest::preflight) reports per
/// local image (files, bytes and `data:` URIs; remote URLs are fetched by
/// the server and not read here).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckedImage {
    /// The field, in the API's words (`person_image`, `garment_images[2]`).
    pub field: String,
    /// The type read from the bytes.
    pub kind: ImageKind,
    /// Its size in bytes (decoded, for a `data:` URI).
    pub bytes: u64,
    /// Width in pixels, from the image's header.
    pub width: u32,
    /// Height in pixels, from the image's header.
    pub height: u32,
    /// The SHA-256 of its bytes (decoded, for a `data:` URI): what the
    /// image is, whatever its path or encoding (a batch journal keys its
    /// rows on it).
    pub sha256: [u8; 32],
}

/// An image read, checked and ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) wire: Wire,
    /// `None` for an `http(s)` URL, which is not read here.
    pub(crate) checked: Option<CheckedImage>,
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

/// Reads a local image file through the same reader and checks a send
/// applies to a [`Image::file`] input: only a regular file is opened (a
/// FIFO, a device such as `/dev/zero`, a directory are refused from their
/// metadata), at most `max_bytes + 1` bytes are ever read, the type comes
/// from the bytes, and the header's declared size is held to
/// [`MAX_IMAGE_SIDE`] a side and [`DEFAULT_MAX_IMAGE_PIXELS`] in all, so a
/// PNG bomb is refused before anything decodes it. For callers that show
/// local images (the CLI's batch report makes thumbnails with it); errors
/// name `field`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let err = tryon_client::read_image_file("person", "/dev/zero", 1024)
///     .await
///     .unwrap_err();
/// assert!(err.to_string().contains("not a regular file"), "{err}");
/// # }
/// ```
pub async fn read_image_file(
    field: &str,
    path: impl AsRef<Path>,
    max_bytes: usize,
) -> Result<(Vec<u8>, CheckedImage)> {
    let limits = Limits {
        max_bytes,
        max_pixels: DEFAULT_MAX_IMAGE_PIXELS,
    };
    read_checked_file(field, path.as_ref(), limits).await
}

/// The one read of a local image file: [`read_regular_file`], then
/// [`check_bytes`], the problem naming the file.
async fn read_checked_file(
    field: &str,
    path: &Path,
    limits: Limits,
) -> Result<(Vec<u8>, CheckedImage)> {
    let bytes = read_regular_file(field, path, limits.max_bytes).await?;
    let checked = check_bytes(field, &bytes, None, limits).map_err(|e| match e {
        Error::Invalid { field, problem } => Error::Invalid {
            field,
            problem: format!("file {}: {problem}", path.display()),
        },
        other => other,
    })?;
    Ok((bytes, checked))
}

/// Reads a local image file, refusing anything but a regular file before
/// opening it (opening a FIFO for reading blocks; reading `/dev/zero` never
/// ends), and never reading more than `max_bytes + 1` bytes whatever the
/// metadata said.
async fn read_regular_file(field: &str, path: &Path, max_bytes: usize) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let not_regular = |t: std::fs::FileType, what: &str| {
        (!t.is_file()).then(|| {
            Error::invalid(
                field,
                format!(
                    "{} {what} {}, not a regular file; only regular image files are read",
                    path.display(),
                    tryon_api::file::describe(t)
                ),
            )
        })
    };
    let meta = tokio::fs::metadata(path).await.map_err(io)?;
    if let Some(e) = not_regular(meta.file_type(), "is") {
        return Err(e);
    }
    let too_big = |size: String| {
        Error::invalid(
            field,
            format!(
                "file {} is {size} bytes, at most {max_bytes} allowed",
                path.display()
            ),
        )
    };
    if usize::try_from(meta.len()).unwrap_or(usize::MAX) > max_bytes {
        return Err(too_big(meta.len().to_string()));
    }
    let file = tokio::fs::File::open(path).await.map_err(io)?;
    // The path may have been swapped between the check and the open: read
    // only what was opened, if it is still a regular file.
    let opened = file.metadata().await.map_err(io)?.file_type();
    if let Some(e) = not_regular(opened, "became") {
        return Err(e);
    }
    let cap = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(cap).read_to_end(&mut bytes).await.map_err(io)?;
    if bytes.len() > max_bytes {
        // It grew after its size was read.
        return Err(too_big(format!("more than {max_bytes}")));
    }
    Ok(bytes)
}

/// The one check every local image's bytes go through: size, type by magic
/// bytes, a readable header, and the pixel count the header declares.
fn check_bytes(
    field: &str,
    bytes: &[u8],
    claimed: Option<&str>,
    limits: Limits,
) -> Result<CheckedImage> {
    let max_bytes = limits.max_bytes;
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
    let (width, height) = kind.dimensions(bytes).map_err(|e| {
        Error::invalid(
            field,
            format!(
                "starts like a {} but its header is unreadable ({e})",
                kind.mime()
            ),
        )
    })?;
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(Error::invalid(
            field,
            format!("image is {width}x{height}, at most {MAX_IMAGE_SIDE} px a side allowed"),
        ));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(Error::invalid(
            field,
            format!(
                "image is {width}x{height} = {pixels} pixels, at most {} allowed",
                limits.max_pixels
            ),
        ));
    }
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
    Ok(CheckedImage {
        field: field.to_string(),
        kind,
        bytes: bytes.len() as u64,
        width,
        height,
        sha256: sha2::Sha256::digest(bytes).into(),
    })
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

/// Checks a URL input; a `data:` URI is decoded and checked like bytes.
fn validate_url(field: &str, raw: &str, limits: Limits) -> Result<Option<CheckedImage>> {
    // `get`, not `[..5]`: the fifth byte may fall inside a multi-byte char.
    if raw
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("data:"))
    {
        return validate_data_uri(field, raw, limits).map(Some);
    }
    let url = Url::parse(raw).map_err(|e| {
        Error::invalid(
            field,
            format!("{:?} is not a valid URL ({e})", shorten(raw)),
        )
    })?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(None),
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

fn validate_data_uri(field: &str, raw: &str, limits: Limits) -> Result<CheckedImage> {
    let max_bytes = limits.max_bytes;
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
    check_bytes(field, &bytes, Some(mime), limits)
}

/// A URL as an error message shows it: credentials taken out
/// ([`tryon_api::redact`]), cut to 80 bytes.
fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    let s = tryon_api::redact::Secrets::default().redact(s);
    if s.len() <= MAX {
        s
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
