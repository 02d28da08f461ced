//! Turning command-line and manifest values into a validated request.

use tryon_client::{Format, Image, TryOnRequest};

use crate::cli::{FormatArg, JobArgs};

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

/// The fields of one try-on, from the command line ([`from_args`]) or a
/// manifest row (`Row::fields`), before the client validates them. Image
/// values are URLs or local paths (see [`image()`]); each field means what
/// the API field of the same name means (`person` is `person_image`,
/// `format` is `output_format`, `quality` is `output_quality`).
#[allow(missing_docs)] // the fields are the API's own, documented above
#[derive(Debug, Default)]
pub struct Fields<'a> {
    pub person: &'a str,
    pub garments: Vec<&'a str>,
    pub prompt: Option<&'a str>,
    pub reference_pose: Option<&'a str>,
    pub seed: Option<u64>,
    pub turbo: bool,
    pub format: Option<Format>,
    pub quality: Option<u8>,
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
