//! A validated try-on request.

use std::time::Duration;

use tryon_api::types::{OutputFormat, TryOnInput};

use crate::error::{Error, Result};
use crate::image::{CheckedImage, Image, Limits, Wire};
use crate::limits::{
    DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, MAX_OUTPUT_QUALITY,
    TURBO_ADVISED_MAX_GARMENTS,
};

pub use tryon_api::MAX_GARMENTS;

/// The output image's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Format {
    /// Lossless PNG (the API's default).
    #[default]
    Png,
    /// JPEG.
    Jpg,
    /// WebP.
    Webp,
}

impl Format {
    pub(crate) fn wire(self) -> OutputFormat {
        match self {
            Format::Png => OutputFormat::Png,
            Format::Jpg => OutputFormat::Jpg,
            Format::Webp => OutputFormat::Webp,
        }
    }

    /// The file extension, without a dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpg => "jpg",
            Format::Webp => "webp",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "png" => Ok(Format::Png),
            "jpg" | "jpeg" => Ok(Format::Jpg),
            "webp" => Ok(Format::Webp),
            _ => Err(Error::invalid(
                "output_format",
                format!("{s:?} is not one of png, jpg, webp"),
            )),
        }
    }
}

/// A try-on job's input, checked in full before anything is sent.
///
/// Build it with [`TryOnRequest::builder`]:
///
/// ```
/// use tryon_client::{Format, Image, TryOnRequest};
/// let req = TryOnRequest::builder()
///     .person(Image::url("https://example.com/person.jpg"))
///     .garment(Image::url("https://example.com/shirt.jpg"))
///     .garments([Image::url("https://example.com/jeans.jpg")])
///     .seed(12345)
///     .output_format(Format::Webp)
///     .output_quality(90)
///     .build()?;
/// assert_eq!(req.garment_count(), 2);
/// # Ok::<(), tryon_client::Error>(())
/// ```
///
/// Errors name the field and the limit:
///
/// ```
/// use tryon_client::{Image, TryOnRequest};
/// let err = TryOnRequest::builder()
///     .person(Image::url("https://example.com/person.jpg"))
///     .garments((0..12).map(|i| Image::url(format!("https://example.com/{i}.jpg"))))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.to_string(), "garment_images: 12 given, at most 11 allowed");
/// ```
#[derive(Debug, Clone)]
pub struct TryOnRequest {
    pub(crate) person: Image,
    pub(crate) garments: Vec<Image>,
    pub(crate) prompt: String,
    pub(crate) reference_pose: Option<Image>,
    pub(crate) seed: Option<u64>,
    pub(crate) turbo: bool,
    pub(crate) output_format: Format,
    pub(crate) output_quality: u8,
    pub(crate) preserve_input_size: bool,
    pub(crate) limits: Limits,
}

/// What [`TryOnRequest::preflight`] checked: every image input, and each
/// local one read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Preflight {
    /// Image inputs checked, remote URLs included.
    pub images: usize,
    /// The local images (files, bytes, `data:` URIs), read and checked, in
    /// the order of the request's fields.
    pub local: Vec<CheckedImage>,
}

impl Preflight {
    /// Bytes of all local images together (before base64).
    pub fn total_bytes(&self) -> u64 {
        self.local.iter().map(|c| c.bytes).sum()
    }
}

impl TryOnRequest {
    /// Starts a request.
    pub fn builder() -> TryOnRequestBuilder {
        TryOnRequestBuilder::default()
    }

    /// How many garments the job dresses.
    pub fn garment_count(&self) -> usize {
        self.garments.len()
    }

    /// Whether `turbo` is on.
    pub fn turbo(&self) -> bool {
        self.turbo
    }

    /// The output format asked for.
    pub fn output_format(&self) -> Format {
        self.output_format
    }

    /// The `prompt` sent (empty when none was given).
    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    /// The `seed` sent, if any.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// The `output_quality` sent (95 unless another was given).
    pub fn output_quality(&self) -> u8 {
        self.output_quality
    }

    /// Whether `preserve_input_size` is on.
    pub fn preserve_input_size(&self) -> bool {
        self.preserve_input_size
    }

    /// How long the model is expected to compute, not counting queueing:
    /// about 2 s per garment, and with `turbo` 1 s per garment up to 4 s in
    /// all (the model maker's published ceilings; turbo is the fast mode). Polling is planned around it.
    pub fn expected_duration(&self) -> Duration {
        let garments = u32::try_from(self.garments.len().max(1)).unwrap_or(u32::MAX);
        let standard = Duration::from_secs(2) * garments;
        if self.turbo {
            // "Under 4 s in total" is a ceiling, not a floor: turbo is the
            // fast mode, planned at half the standard time per garment (1 s,
            // as the mock's realistic profile has it) up to that ceiling, so
            // a small turbo job is not polled late.
            (standard / 2).min(Duration::from_secs(4))
        } else {
            standard
        }
    }

    /// Whether any input is a local file or bytes (sent inline or uploaded).
    pub fn has_local_images(&self) -> bool {
        self.person.is_local()
            || self.garments.iter().any(Image::is_local)
            || self.reference_pose.as_ref().is_some_and(Image::is_local)
    }

    /// Reads and checks every image input exactly as a real send does
    /// (files read with the size cap, types from magic bytes, headers
    /// parsed, declared pixels against the limit), without a client and
    /// without sending anything. A dry run that calls this applies exactly
    /// the checks a real run applies: [`Client::submit`](crate::Client::submit)
    /// and [`Client::run_sync`](crate::Client::run_sync) go through the same
    /// code before their first byte goes out.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tryon_client::Error> {
    /// use tryon_client::{Image, TryOnRequest};
    /// let dir = std::env::temp_dir();
    /// let req = TryOnRequest::builder()
    ///     .person(Image::file(&dir)) // a directory, not an image
    ///     .garment(Image::url("https://example.com/shirt.jpg"))
    ///     .build()?; // files are read later, so this builds
    /// let err = req.preflight().await.unwrap_err();
    /// assert!(err.to_string().starts_with("person_image: "), "{err}");
    /// assert!(err.to_string().contains("not a regular file"), "{err}");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn preflight(&self) -> Result<Preflight> {
        self.load().await.map(|(_, preflight)| preflight)
    }

    /// Every image input, each read and checked, with the field it goes in.
    async fn load(&self) -> Result<(Vec<Wire>, Preflight)> {
        let mut fields = Vec::with_capacity(self.garments.len() + 2);
        fields.push(("person_image".to_string(), &self.person));
        for (i, g) in self.garments.iter().enumerate() {
            fields.push((format!("garment_images[{i}]"), g));
        }
        if let Some(pose) = &self.reference_pose {
            fields.push(("reference_pose".to_string(), pose));
        }
        let mut wires = Vec::with_capacity(fields.len());
        let mut local = Vec::new();
        for (field, image) in &fields {
            let loaded = image.load(field, self.limits).await?;
            wires.push(loaded.wire);
            local.extend(loaded.checked);
        }
        let preflight = Preflight {
            images: fields.len(),
            local,
        };
        Ok((wires, preflight))
    }

    /// Builds the wire body: the same reads and checks as
    /// [`preflight`](Self::preflight), `data:` URIs for local images, and,
    /// when `upload` is given, uploaded URLs in their place.
    pub(crate) async fn to_wire<F, Fut>(&self, upload: Option<F>) -> Result<TryOnInput>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<String>>>,
    {
        let (mut wires, _) = self.load().await?;
        if let Some(upload) = upload {
            let locals: Vec<usize> = wires
                .iter()
                .enumerate()
                .filter(|(_, w)| matches!(w, Wire::Local(_)))
                .map(|(i, _)| i)
                .collect();
            if !locals.is_empty() {
                let data: Vec<String> = locals
                    .iter()
                    .map(|&i| wires[i].clone().into_string())
                    .collect();
                let urls = upload(data).await?;
                if urls.len() != locals.len() {
                    return Err(Error::InvalidResponse {
                        request_id: None,
                        problem: format!(
                            "upload-asset returned {} URLs for {} images",
                            urls.len(),
                            locals.len()
                        ),
                    });
                }
                for (i, url) in locals.into_iter().zip(urls) {
                    wires[i] = Wire::Url(url);
                }
            }
        }
        let mut it = wires.into_iter().map(Wire::into_string);
        let person_image = it.next().unwrap_or_default();
        let garment_images: Vec<String> = it.by_ref().take(self.garments.len()).collect();
        let reference_pose = it.next();
        Ok(TryOnInput {
            person_image,
            garment_images,
            prompt: self.prompt.clone(),
            reference_pose,
            seed: self.seed,
            turbo: self.turbo,
            output_format: Some(self.output_format.wire()),
            output_quality: i64::from(self.output_quality),
            preserve_input_size: self.preserve_input_size,
        })
    }
}

/// Builder for [`TryOnRequest`]; [`build`](Self::build) checks everything.
#[derive(Debug, Clone)]
pub struct TryOnRequestBuilder {
    person: Option<Image>,
    garments: Vec<Image>,
    prompt: String,
    reference_pose: Option<Image>,
    seed: Option<u64>,
    turbo: bool,
    output_format: Format,
    output_quality: u32,
    preserve_input_size: bool,
    limits: Limits,
}

impl Default for TryOnRequestBuilder {
    fn default() -> Self {
        Self {
            person: None,
            garments: Vec::new(),
            prompt: String::new(),
            reference_pose: None,
            seed: None,
            turbo: false,
            output_format: Format::Png,
            output_quality: 95,
            preserve_input_size: false,
            limits: Limits {
                max_bytes: DEFAULT_MAX_IMAGE_BYTES,
                max_pixels: DEFAULT_MAX_IMAGE_PIXELS,
            },
        }
    }
}

impl TryOnRequestBuilder {
    /// The photo of the person to dress (`person_image`). Required.
    #[must_use]
    pub fn person(mut self, image: Image) -> Self {
        self.person = Some(image);
        self
    }

    /// Adds one garment (`garment_images`). One to eleven are required.
    #[must_use]
    pub fn garment(mut self, image: Image) -> Self {
        self.garments.push(image);
        self
    }

    /// Adds several garments.
    #[must_use]
    pub fn garments(mut self, images: impl IntoIterator<Item = Image>) -> Self {
        self.garments.extend(images);
        self
    }

    /// Text that says which garment to take from a busy image. Default empty.
    #[must_use]
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = prompt.into();
        self
    }

    /// Experimental: a pose to move the person into.
    #[must_use]
    pub fn reference_pose(mut self, image: Image) -> Self {
        self.reference_pose = Some(image);
        self
    }

    /// A fixed seed for repeatable output. Default: none (random).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Faster generation. Default `false`. With more than four garments the
    /// request is still sent (the API accepts it), but a warning is logged.
    #[must_use]
    pub fn turbo(mut self, turbo: bool) -> Self {
        self.turbo = turbo;
        self
    }

    /// Output format. Default [`Format::Png`].
    #[must_use]
    pub fn output_format(mut self, format: Format) -> Self {
        self.output_format = format;
        self
    }

    /// Output quality for jpg and webp, `0..=100`. Default 95. Takes a
    /// `u32` so an out-of-range value is reported by `build`, not truncated.
    #[must_use]
    pub fn output_quality(mut self, quality: u32) -> Self {
        self.output_quality = quality;
        self
    }

    /// Output at the person photo's own resolution. Default `false`.
    #[must_use]
    pub fn preserve_input_size(mut self, preserve: bool) -> Self {
        self.preserve_input_size = preserve;
        self
    }

    /// Largest accepted image input, in bytes after decoding. Default
    /// [`DEFAULT_MAX_IMAGE_BYTES`](crate::limits::DEFAULT_MAX_IMAGE_BYTES)
    /// (10 MiB).
    #[must_use]
    pub fn max_image_bytes(mut self, max: usize) -> Self {
        self.limits.max_bytes = max;
        self
    }

    /// Largest accepted image input in pixels (width × height, as its
    /// header declares). Default
    /// [`DEFAULT_MAX_IMAGE_PIXELS`](crate::limits::DEFAULT_MAX_IMAGE_PIXELS) (25
    /// megapixels; its doc says why).
    #[must_use]
    pub fn max_image_pixels(mut self, max: u64) -> Self {
        self.limits.max_pixels = max;
        self
    }

    /// Checks everything that can be checked without I/O and returns the
    /// request. Files given with [`Image::file`] are read and checked when
    /// the request is sent, still before any byte goes out.
    ///
    /// `turbo` with more than four garments is a **warning**, not an error:
    /// the API page only advises against it, the server accepts it, and a
    /// client that refused it would block a valid (if slower-than-hoped)
    /// request. The warning is logged through `tracing`.
    pub fn build(self) -> Result<TryOnRequest> {
        let max = self.limits;
        let person = self
            .person
            .ok_or_else(|| Error::invalid("person_image", "required, none given"))?;
        person.validate("person_image", max)?;
        let n = self.garments.len();
        if n == 0 {
            return Err(Error::invalid(
                "garment_images",
                format!("0 given, at least 1 required (at most {MAX_GARMENTS})"),
            ));
        }
        if n > MAX_GARMENTS {
            return Err(Error::invalid(
                "garment_images",
                format!("{n} given, at most {MAX_GARMENTS} allowed"),
            ));
        }
        for (i, g) in self.garments.iter().enumerate() {
            g.validate(&format!("garment_images[{i}]"), max)?;
        }
        if let Some(pose) = &self.reference_pose {
            pose.validate("reference_pose", max)?;
        }
        let output_quality = u8::try_from(self.output_quality)
            .ok()
            .filter(|q| *q <= MAX_OUTPUT_QUALITY)
            .ok_or_else(|| {
                Error::invalid(
                    "output_quality",
                    format!(
                        "{} given, must be between 0 and {MAX_OUTPUT_QUALITY}",
                        self.output_quality
                    ),
                )
            })?;
        if self.turbo && n > TURBO_ADVISED_MAX_GARMENTS {
            tracing::warn!(
                garments = n,
                advised_max = TURBO_ADVISED_MAX_GARMENTS,
                "turbo with more than {TURBO_ADVISED_MAX_GARMENTS} garments is not advised by the API; sending anyway"
            );
        }
        Ok(TryOnRequest {
            person,
            garments: self.garments,
            prompt: self.prompt,
            reference_pose: self.reference_pose,
            seed: self.seed,
            turbo: self.turbo,
            output_format: self.output_format,
            output_quality,
            preserve_input_size: self.preserve_input_size,
            limits: max,
        })
    }
}
