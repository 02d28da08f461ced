//! The bounds the client checks, in one place: image inputs, output
//! quality, downloads. Each is enforced where its value is read, with an
//! error that names the field and the limit. (The garment limit,
//! [`MAX_GARMENTS`](crate::MAX_GARMENTS), is the API's own.)

/// Default largest image accepted per input, after decoding: 10 MiB.
///
/// *Assumed*: Segmind does not publish a per-image limit; this keeps request
/// bodies reasonable and is changeable with
/// [`TryOnRequestBuilder::max_image_bytes`](crate::TryOnRequestBuilder::max_image_bytes).
pub const DEFAULT_MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;

/// Largest image input accepted by default, in pixels (width × height, as
/// its header declares): 25 megapixels.
///
/// Why a pixel limit at all: an image's header can declare far more pixels
/// than its bytes suggest. A 400 KB PNG can declare 20000×20000 (400
/// megapixels, 1.6 GB once decoded as RGBA), and whoever decodes it (the
/// service, then every tool that opens the output) pays for the declared
/// size, so such an input is refused before it is sent (and billed).
///
/// Why 25: a 12 MP phone photo (4032×3024) or a 24 MP camera frame
/// (6000×4000) fits, and 25 MP decoded as RGBA is 100 MB, a bound a server
/// can afford per image. *Assumed*: Segmind publishes no pixel limit; the
/// project assumes this one (with [`MAX_IMAGE_SIDE`]) in its contract, and
/// `tryon-mock` refuses what exceeds it, so the client never sends what the
/// mock would refuse. Lower it with
/// [`TryOnRequestBuilder::max_image_pixels`](crate::TryOnRequestBuilder::max_image_pixels).
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 25_000_000;

/// Longest side an image input may declare: 10 000 px (the contract's
/// assumed limit, with [`DEFAULT_MAX_IMAGE_PIXELS`]).
pub const MAX_IMAGE_SIDE: u32 = 10_000;

/// Highest `output_quality`.
pub const MAX_OUTPUT_QUALITY: u8 = 100;

/// Most garments the API page advises for `turbo` (more is sent, with a
/// warning).
pub const TURBO_ADVISED_MAX_GARMENTS: usize = 4;

/// Default cap on a downloaded output: 50 MiB
/// ([`ClientBuilder::max_download_bytes`](crate::ClientBuilder::max_download_bytes)).
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 50 * 1024 * 1024;
