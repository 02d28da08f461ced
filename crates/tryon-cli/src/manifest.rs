//! Batch manifests: one try-on per CSV record or JSONL line.
//!
//! CSV has a header row; `person` and `garments` are required columns, and
//! `garments` holds one or more images separated by `|`. JSONL has one object
//! per line with the same names, `garments` as an array. Optional fields in
//! both: `id`, `prompt`, `reference_pose`, `seed`, `turbo`, `format` (`png`|`jpg`|`webp`),
//! `quality` (0..=100), `preserve_input_size`.
//!
//! ```text
//! id,person,garments,prompt,seed,turbo,format,quality
//! look-1,assets/person.png,assets/garment.png,,42,false,png,95
//! look-2,https://example.com/p.jpg,https://example.com/a.jpg|https://example.com/b.jpg,,,,webp,90
//! ```
//!
//! Relative file paths are resolved against the manifest's own folder, so a
//! manifest and its images can move together.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::input::{self, Fields};
use crate::names;

/// One try-on to run, as the manifest gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// 1-based line (JSONL) or record number (CSV, header excluded) in the
    /// manifest, for error messages.
    #[serde(skip)]
    pub line: usize,
    /// The row's name: the `id` field, or `row-<line>` when absent. Unique
    /// within a manifest; the journal keys on it.
    #[serde(default)]
    pub id: String,
    /// The person image: a URL or a path.
    pub person: String,
    /// The garment images, in order.
    pub garments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// `reference_pose`: a URL or a path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_pose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turbo: Option<bool>,
    /// `output_format` by name (`png`, `jpg`, `webp`); checked when the
    /// request is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_input_size: Option<bool>,
}

impl Row {
    /// A stable fingerprint of what the row asks for (FNV-1a over its
    /// canonical JSON). The journal stores it so that a row edited between
    /// two runs is treated as a new job instead of re-attaching to the old
    /// one.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        format!("{:016x}", names::fnv1a(&canonical))
    }

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

/// A manifest that could not be read; names the line and the field.
#[derive(Debug)]
pub struct ManifestError {
    /// The manifest's path.
    pub path: PathBuf,
    /// The 1-based line or record, when the problem is in one.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} row {line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ManifestError {}

/// The format of a manifest file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Csv,
    Jsonl,
}

fn kind_of(path: &Path, text: &str) -> Kind {
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => Kind::Csv,
        Some("jsonl" | "ndjson" | "json") => Kind::Jsonl,
        _ if text.trim_start().starts_with('{') => Kind::Jsonl,
        _ => Kind::Csv,
    }
}

/// Read and check a manifest. Every row is returned or the first problem is
/// reported; nothing is sent anywhere.
pub fn load(path: &Path) -> Result<Vec<Row>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
        path: path.to_path_buf(),
        line: None,
        message: format!("cannot read: {e}"),
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    parse(path, &text, base)
}

/// Parse manifest text; relative paths are resolved against `base`.
pub fn parse(path: &Path, text: &str, base: &Path) -> Result<Vec<Row>, ManifestError> {
    let err = |line: Option<usize>, message: String| ManifestError {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut rows = match kind_of(path, text) {
        Kind::Jsonl => parse_jsonl(text).map_err(|(line, m)| err(Some(line), m))?,
        Kind::Csv => parse_csv(text).map_err(|(line, m)| err(line, m))?,
    };
    if rows.is_empty() {
        return Err(err(None, "no rows".to_string()));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for row in &mut rows {
        if row.person.trim().is_empty() {
            return Err(err(Some(row.line), "person: empty".to_string()));
        }
        if row.garments.is_empty() {
            return Err(err(
                Some(row.line),
                "garments: at least 1 required".to_string(),
            ));
        }
        if row.id.is_empty() {
            row.id = format!("row-{}", row.line);
        }
        if let Some(first) = seen.insert(row.id.clone(), row.line) {
            return Err(err(
                Some(row.line),
                format!(
                    "id: `{}` appears more than once (also row {first})",
                    crate::term::inline(&row.id)
                ),
            ));
        }
        row.person = resolve(base, &row.person);
        if let Some(pose) = &mut row.reference_pose {
            *pose = resolve(base, pose);
        }
        for garment in &mut row.garments {
            *garment = resolve(base, garment);
        }
    }
    Ok(rows)
}

/// URLs pass through; anything else is a path, made relative to `base`.
fn resolve(base: &Path, value: &str) -> String {
    let value = value.trim();
    if input::is_url(value) || Path::new(value).is_absolute() {
        value.to_string()
    } else {
        base.join(value).to_string_lossy().into_owned()
    }
}

fn parse_jsonl(text: &str) -> Result<Vec<Row>, (usize, String)> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut row: Row = serde_json::from_str(line).map_err(|e| (number, json_message(&e)))?;
        row.line = number;
        rows.push(row);
    }
    Ok(rows)
}

fn json_message(e: &serde_json::Error) -> String {
    // serde's text already names the field ("missing field `person`",
    // "invalid type: string \"x\", expected u64"); drop its line/column,
    // which refer to the single line, not the file.
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn parse_csv(text: &str) -> Result<Vec<Row>, (Option<usize>, String)> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| (None, format!("header: {e}")))?
        .clone();
    for required in ["person", "garments"] {
        if !headers.iter().any(|h| h == required) {
            return Err((
                None,
                format!("header: required column `{required}` is missing"),
            ));
        }
    }
    let known = [
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
    if let Some(unknown) = headers.iter().find(|h| !known.contains(h)) {
        return Err((
            None,
            format!(
                "header: unknown column `{unknown}` (known: {})",
                known.join(", ")
            ),
        ));
    }
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let number = index + 1;
        let record = record.map_err(|e| (Some(number), e.to_string()))?;
        let get = |name: &str| -> Option<&str> {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| record.get(i))
                .filter(|v| !v.is_empty())
        };
        let at = |message: String| (Some(number), message);
        let row = Row {
            line: number,
            id: get("id").unwrap_or_default().to_string(),
            person: get("person").unwrap_or_default().to_string(),
            garments: get("garments")
                .map(|g| {
                    g.split('|')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            prompt: get("prompt").map(str::to_string),
            reference_pose: get("reference_pose").map(str::to_string),
            seed: get("seed")
                .map(|v| {
                    v.parse()
                        .map_err(|_| at(format!("seed: `{v}` is not a non-negative integer")))
                })
                .transpose()?,
            turbo: get("turbo")
                .map(|v| parse_bool("turbo", v).map_err(at))
                .transpose()?,
            format: get("format").map(str::to_string),
            quality: get("quality")
                .map(|v| {
                    v.parse()
                        .map_err(|_| at(format!("quality: `{v}` is not an integer from 0 to 100")))
                })
                .transpose()?,
            preserve_input_size: get("preserve_input_size")
                .map(|v| parse_bool("preserve_input_size", v).map_err(at))
                .transpose()?,
        };
        rows.push(row);
    }
    Ok(rows)
}

fn parse_bool(field: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("{field}: `{value}` is not true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> Result<Vec<Row>, ManifestError> {
        parse(Path::new("m.csv"), text, Path::new("/data"))
    }

    #[test]
    fn csv_rows_resolve_paths_and_split_garments() {
        let rows = csv("id,person,garments,seed,turbo\n\
                        a,p.png,g1.png|https://x.test/g2.jpg,7,true\n\
                        ,https://x.test/p.jpg,g.png,,\n")
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].id, "a");
        assert_eq!(rows[0].person, "/data/p.png");
        assert_eq!(
            rows[0].garments,
            vec!["/data/g1.png", "https://x.test/g2.jpg"]
        );
        assert_eq!(rows[0].seed, Some(7));
        assert_eq!(rows[0].turbo, Some(true));
        assert_eq!(rows[1].id, "row-2");
        assert_eq!(rows[1].person, "https://x.test/p.jpg");
        assert_eq!(rows[1].seed, None);
    }

    #[test]
    fn jsonl_rows_parse_and_errors_name_line_and_field() {
        let path = Path::new("m.jsonl");
        let ok = parse(
            path,
            "{\"person\":\"p.png\",\"garments\":[\"g.png\"],\"quality\":80}\n\n{\"id\":\"x\",\"person\":\"https://a.test/p\",\"garments\":[\"https://a.test/g\"]}\n",
            Path::new("/m"),
        )
        .unwrap();
        assert_eq!(ok[0].id, "row-1");
        assert_eq!(ok[0].quality, Some(80));
        assert_eq!(ok[1].line, 3);

        let bad = parse(path, "{\"person\":\"p\"}\n", Path::new("/m")).unwrap_err();
        assert_eq!(bad.to_string(), "m.jsonl row 1: missing field `garments`");
        let bad = parse(
            path,
            "{\"person\":\"p\",\"garments\":[\"g\"],\"quality\":300}\n",
            Path::new("/m"),
        )
        .unwrap_err();
        assert!(
            bad.to_string()
                .starts_with("m.jsonl row 1: invalid value: integer `300`"),
            "{bad}"
        );
    }

    #[test]
    fn csv_errors_name_the_field() {
        assert_eq!(
            csv("person,garments,seed\np,g,abc\n")
                .unwrap_err()
                .to_string(),
            "m.csv row 1: seed: `abc` is not a non-negative integer"
        );
        assert_eq!(
            csv("person,garments\np,\n").unwrap_err().to_string(),
            "m.csv row 1: garments: at least 1 required"
        );
        assert_eq!(
            csv("person\np\n").unwrap_err().to_string(),
            "m.csv: header: required column `garments` is missing"
        );
        assert!(
            csv("person,garments,colour\np,g,red\n")
                .unwrap_err()
                .to_string()
                .contains("unknown column `colour`")
        );
        assert!(
            csv("id,person,garments\na,p,g\na,p,g\n")
                .unwrap_err()
                .to_string()
                .contains("appears more than once (also row 1)")
        );
        assert_eq!(
            csv("person,garments\n").unwrap_err().to_string(),
            "m.csv: no rows"
        );
    }

    #[test]
    fn urls_pass_through_and_other_values_are_paths() {
        // `ééé` puts a char boundary off byte 5: slicing `value[..5]` to
        // compare with `data:` would panic on it.
        let rows = csv(
            "person,garments\nftp://x.test/p.png,\"ééé/chemise.png|DATA:image/png;base64,AA\"\n",
        )
        .unwrap();
        assert_eq!(
            rows[0].person, "ftp://x.test/p.png",
            "left for the client to refuse"
        );
        assert_eq!(
            rows[0].garments,
            vec!["/data/ééé/chemise.png", "DATA:image/png;base64,AA"]
        );
    }

    #[test]
    fn fingerprint_changes_with_content_only() {
        let rows = csv("id,person,garments\na,p,g\n").unwrap();
        let mut edited = rows[0].clone();
        assert_eq!(rows[0].fingerprint(), edited.fingerprint());
        edited.line = 99;
        assert_eq!(
            rows[0].fingerprint(),
            edited.fingerprint(),
            "line is not content"
        );
        edited.seed = Some(1);
        assert_ne!(rows[0].fingerprint(), edited.fingerprint());
    }
}
