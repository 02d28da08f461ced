//! Turning command-line and manifest values into a validated request.

use tryon_client::{Format, Image, TryOnRequest};

use crate::cli::{FormatArg, JobArgs};
use crate::manifest::Row;

/// Whether an image value is a URL rather than a local path: a `data:` URI
/// or anything with a scheme (`ftp://` too, so the client refuses it naming
/// the field instead of the CLI looking for a file of that name).
pub fn is_url(value: &str) -> bool {
    let lower = value.trim_start().to_ascii_lowercase();
    lower.starts_with("data:") || lower.contains("://")
}

/// A URL (see [`is_url`]) or, failing that, a local file.
pub fn image(value: &str) -> Image {
    if is_url(value) {
        Image::url(value.trim())
    } else {
        Image::file(value)
    }
}

/// The fields of one try-on, from whichever source.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    /// Person image.
    pub person: &'a str,
    /// Garment images.
    pub garments: Vec<&'a str>,
    /// Prompt.
    pub prompt: Option<&'a str>,
    /// Pose image.
    pub reference_pose: Option<&'a str>,
    /// Seed.
    pub seed: Option<u64>,
    /// Turbo.
    pub turbo: bool,
    /// Format.
    pub format: Option<Format>,
    /// Quality.
    pub quality: Option<u8>,
    /// Preserve input size.
    pub preserve_input_size: bool,
}

impl Fields<'_> {
    /// Build and validate the request (the client checks every limit and
    /// names the field in its error).
    pub fn build(&self) -> Result<TryOnRequest, tryon_client::Error> {
        let mut builder = TryOnRequest::builder()
            .person(image(self.person))
            .garments(self.garments.iter().map(|g| image(g)))
            .turbo(self.turbo)
            .preserve_input_size(self.preserve_input_size);
        if let Some(prompt) = self.prompt {
            builder = builder.prompt(prompt);
        }
        if let Some(pose) = self.reference_pose {
            builder = builder.reference_pose(image(pose));
        }
        if let Some(seed) = self.seed {
            builder = builder.seed(seed);
        }
        if let Some(format) = self.format {
            builder = builder.output_format(format);
        }
        if let Some(quality) = self.quality {
            builder = builder.output_quality(u32::from(quality));
        }
        builder.build()
    }
}

/// The format a `--format` flag names.
pub fn format(arg: FormatArg) -> Format {
    match arg {
        FormatArg::Png => Format::Png,
        FormatArg::Jpg => Format::Jpg,
        FormatArg::Webp => Format::Webp,
    }
}

/// The fields of `tryon run` / `tryon submit`.
pub fn from_args(args: &JobArgs) -> Fields<'_> {
    Fields {
        person: &args.person,
        garments: args.garments.iter().map(String::as_str).collect(),
        prompt: args.prompt.as_deref(),
        reference_pose: args.reference_pose.as_deref(),
        seed: args.seed,
        turbo: args.turbo,
        format: args.format.map(format),
        quality: args.quality,
        preserve_input_size: args.preserve_input_size,
    }
}

/// The fields of one manifest row.
pub fn from_row(row: &Row) -> Result<Fields<'_>, tryon_client::Error> {
    Ok(Fields {
        person: &row.person,
        garments: row.garments.iter().map(String::as_str).collect(),
        prompt: row.prompt.as_deref(),
        reference_pose: row.reference_pose.as_deref(),
        seed: row.seed,
        turbo: row.turbo.unwrap_or(false),
        format: row.format.as_deref().map(str::parse).transpose()?,
        quality: row.quality,
        preserve_input_size: row.preserve_input_size.unwrap_or(false),
    })
}
