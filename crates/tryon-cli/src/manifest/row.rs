//! A manifest row ([`Row`]), the fields it may have, and the messages for
//! a field nobody knows.

use std::path::PathBuf;

use serde::Serialize;

use crate::input::Fields;

/// The fields a row may have: the CSV columns and the JSONL keys alike.
pub const FIELDS: [&str; 10] = [
    "id",
    "person",
    "garments",
    "prompt",
    "reference_pose",
    "seed",
    "turbo",
    "format",
    "quality",
    "preserve_input_size",
];

/// The API's names for fields a row names otherwise, for suggestions.
const API_NAMES: [(&str, &str); 4] = [
    ("person_image", "person"),
    ("garment_images", "garments"),
    ("output_format", "format"),
    ("output_quality", "quality"),
];

/// One try-on to run, as the manifest gives it.
///
/// Its JSON form (`Serialize`) is what older versions of tryon hashed into
/// a row's fingerprint ([`crate::fingerprint::legacy`]): keep its fields,
/// their order and their `skip` rules as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// 1-based line (JSONL) or record number (CSV, header excluded) in the
    /// manifest, for error messages.
    #[serde(skip)]
    pub line: usize,
    /// The row's name: the `id` field, or `row-<line>` when absent. Unique
    /// within a manifest; the journal keys on it.
    pub id: String,
    /// The person image: a URL or a path (resolved against the manifest's
    /// folder).
    pub person: String,
    /// The garment images, in order.
    pub garments: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// `reference_pose`: a URL or a path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_pose: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turbo: Option<bool>,
    /// `output_format` by name (`png`, `jpg`, `webp`); checked when the
    /// request is built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preserve_input_size: Option<bool>,
    /// The manifest's folder as typed (relative paths are joined to it).
    #[serde(skip)]
    pub base: PathBuf,
    /// The image values as the manifest wrote them (trimmed), before they
    /// were joined to `base`.
    #[serde(skip)]
    pub typed: Typed,
}

/// A row's image values as written in the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Typed {
    pub person: String,
    pub garments: Vec<String>,
    pub reference_pose: Option<String>,
}

impl Row {
    /// The row's fields, for building its request.
    pub fn fields(&self) -> Result<Fields<'_>, tryon_client::Error> {
        Ok(Fields {
            person: &self.person,
            garments: self.garments.iter().map(String::as_str).collect(),
            prompt: self.prompt.as_deref(),
            reference_pose: self.reference_pose.as_deref(),
            seed: self.seed,
            turbo: self.turbo.unwrap_or(false),
            format: self.format.as_deref().map(str::parse).transpose()?,
            quality: self.quality,
            preserve_input_size: self.preserve_input_size.unwrap_or(false),
        })
    }
}

/// The message for a field nobody knows, with the nearest known one.
pub(super) fn unknown_field(kind: &str, name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let nearest = API_NAMES
        .iter()
        .find(|(api, _)| *api == lower)
        .map(|(_, ours)| *ours)
        .or_else(|| {
            FIELDS
                .iter()
                .map(|f| (strsim::damerau_levenshtein(&lower, f), *f))
                .filter(|(distance, f)| *distance <= (f.len() / 3).max(1))
                .min_by_key(|(distance, _)| *distance)
                .map(|(_, f)| f)
        });
    let hint = nearest.map_or_else(String::new, |f| format!("; did you mean `{f}`?"));
    format!(
        "unknown {kind} `{}`{hint} (known: {})",
        crate::term::inline(name),
        FIELDS.join(", ")
    )
}

pub(super) fn parse_bool(field: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("{field}: `{value}` is not true or false")),
    }
}
