//! The one reader of image bodies: the v1 run's answer and every output
//! download go through [`read_image`], so both get the same size cap,
//! `Content-Type` check, magic-byte check and whole-image check.

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};

use crate::image::ImageKind;

/// Why an image body was refused.
#[derive(Debug)]
pub(crate) enum ImageFault {
    /// Longer than the cap (by `Content-Length`, or while reading).
    TooLarge {
        /// The cap.
        max: u64,
        /// The `Content-Length`, when it said.
        declared: Option<u64>,
    },
    /// `Content-Type` is neither an image nor a generic binary type.
    NotImageContentType(String),
    /// The bytes are not a PNG, JPEG or WebP image.
    NotAnImage,
    /// The connection broke while the body was read (the error without
    /// its URL).
    CutOff(reqwest::Error),
    /// A whole answer, but a cut-short image (no PNG `IEND`, no JPEG end
    /// marker, fewer bytes than the WebP RIFF size).
    Incomplete {
        /// The type its first bytes say.
        kind: ImageKind,
        /// How many bytes came.
        len: usize,
    },
}

impl ImageFault {
    /// The body was cut short (by the connection, or cleanly): the same
    /// image may come whole if fetched again.
    pub(crate) fn is_cut_short(&self) -> bool {
        matches!(self, Self::CutOff(_) | Self::Incomplete { .. })
    }

    /// What is wrong, with the limit when one was hit.
    pub(crate) fn problem(&self) -> String {
        match self {
            Self::TooLarge {
                max,
                declared: Some(n),
            } => format!("image is {n} bytes, at most {max} allowed"),
            Self::TooLarge {
                max,
                declared: None,
            } => {
                format!("image exceeds {max} bytes, the download limit")
            }
            Self::NotImageContentType(ct) => format!("Content-Type {ct:?} is not an image"),
            Self::NotAnImage => "the bytes are not a PNG, JPEG or WebP image".into(),
            Self::CutOff(e) => format!("body cut off: {e}"),
            Self::Incomplete { kind, len } => {
                format!("the {} image is cut short ({len} bytes)", kind.mime())
            }
        }
    }
}

/// Reads an image body: refuses a declared or actual size over `max`, a
/// `Content-Type` that is not an image (none, `image/*` and
/// `application/octet-stream` pass), bytes that are not PNG, JPEG or WebP,
/// and an image cut short.
pub(crate) async fn read_image<S>(
    headers: &HeaderMap,
    body: S,
    max: u64,
) -> Result<Bytes, ImageFault>
where
    S: Stream<Item = reqwest::Result<Bytes>>,
{
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(ImageFault::TooLarge { max, declared });
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let content_type_ok = content_type.is_empty()
        || content_type.starts_with("image/")
        || content_type.starts_with("application/octet-stream")
        || content_type.starts_with("binary/octet-stream");
    if !content_type_ok {
        return Err(ImageFault::NotImageContentType(content_type));
    }
    let mut buf = Vec::new();
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk.map_err(|e| ImageFault::CutOff(e.without_url()))?);
        if buf.len() as u64 > max {
            return Err(ImageFault::TooLarge {
                max,
                declared: None,
            });
        }
    }
    let kind = ImageKind::sniff(&buf).ok_or(ImageFault::NotAnImage)?;
    if !kind.looks_complete(&buf) {
        return Err(ImageFault::Incomplete {
            kind,
            len: buf.len(),
        });
    }
    Ok(Bytes::from(buf))
}
