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

use serde::Serialize;
use serde_json::Value;

use crate::input::{self, Fields};

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
fn unknown_field(kind: &str, name: &str) -> String {
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
        row.base = base.to_path_buf();
        row.typed = Typed {
            person: row.person.trim().to_string(),
            garments: row.garments.iter().map(|g| g.trim().to_string()).collect(),
            reference_pose: row.reference_pose.as_deref().map(|p| p.trim().to_string()),
        };
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
pub fn resolve(base: &Path, value: &str) -> String {
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
        let mut row = jsonl_row(line).map_err(|m| (number, m))?;
        row.line = number;
        rows.push(row);
    }
    Ok(rows)
}

/// A JSON value as a message names it: `the string "42"`, `a list`.
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", crate::term::inline(&format!("{s:?}"))),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// One JSONL line as a row. Every key must be a known field (the nearest
/// one is suggested), and each value of its field's type; the message names
/// the field and what was found, as the CSV reader's do.
fn jsonl_row(line: &str) -> Result<Row, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| json_message(&e))?;
    let Value::Object(map) = value else {
        return Err(format!(
            "expected an object such as {{\"person\": \"p.png\", \"garments\": [\"g.png\"]}}, found {}",
            shown(&value)
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(unknown_field("field", unknown));
    }
    // Absent and null are the same: not given.
    let get = |name: &str| map.get(name).filter(|v| !v.is_null());
    let text = |name: &str| -> Result<Option<String>, String> {
        match get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("{name}: expected a string, found {}", shown(other))),
        }
    };
    let quoted = |name: &str, s: &str, what: &str| {
        format!(
            "{name}: expected {what}, found the string {}; write it without quotes",
            crate::term::inline(&format!("{s:?}"))
        )
    };
    let integer = |name: &str, max: u64, what: &str| -> Result<Option<u64>, String> {
        match get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64().filter(|v| *v <= max) {
                Some(v) => Ok(Some(v)),
                None => Err(format!("{name}: `{n}` is not {what}")),
            },
            Some(Value::String(s)) if s.trim().parse::<u64>().is_ok() => Err(quoted(name, s, what)),
            Some(other) => Err(format!("{name}: expected {what}, found {}", shown(other))),
        }
    };
    let flag = |name: &str| -> Result<Option<bool>, String> {
        match get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if parse_bool(name, s).is_ok() => {
                Err(quoted(name, s, "true or false"))
            }
            Some(other) => Err(format!(
                "{name}: expected true or false, found {}",
                shown(other)
            )),
        }
    };
    let person = text("person")?.ok_or("missing field `person`")?;
    let garments = match get("garments") {
        None => return Err("missing field `garments`".into()),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, g)| match g {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "garments[{i}]: expected a string, found {}",
                    shown(other)
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::String(s)) => {
            return Err(format!(
                "garments: expected a list of images, found {}; write [{}]",
                shown(&Value::String(s.clone())),
                crate::term::inline(&format!("{s:?}"))
            ));
        }
        Some(other) => {
            return Err(format!(
                "garments: expected a list of images, found {}",
                shown(other)
            ));
        }
    };
    let seed = integer("seed", u64::MAX, "a non-negative integer")?;
    let quality =
        integer("quality", 100, "an integer from 0 to 100")?.and_then(|q| u8::try_from(q).ok());
    Ok(Row {
        line: 0,
        id: text("id")?.unwrap_or_default(),
        person,
        garments,
        prompt: text("prompt")?,
        reference_pose: text("reference_pose")?,
        seed,
        turbo: flag("turbo")?,
        format: text("format")?,
        quality,
        preserve_input_size: flag("preserve_input_size")?,
        base: PathBuf::new(),
        typed: Typed::default(),
    })
}

fn json_message(e: &serde_json::Error) -> String {
    // Drop serde's line/column, which refer to the single line, not the
    // file; keep the column's place in words.
    let text = e.to_string();
    let text = match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    format!("not JSON ({text}, column {})", e.column())
}

fn parse_csv(text: &str) -> Result<Vec<Row>, (Option<usize>, String)> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| (None, format!("header: {e}")))?
        .clone();
    if let Some(unknown) = headers.iter().find(|h| !FIELDS.contains(h)) {
        return Err((
            None,
            format!("header: {}", unknown_field("column", unknown)),
        ));
    }
    for required in ["person", "garments"] {
        if !headers.iter().any(|h| h == required) {
            return Err((
                None,
                format!("header: required column `{required}` is missing"),
            ));
        }
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
            base: PathBuf::new(),
            typed: Typed::default(),
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
        assert_eq!(
            bad.to_string(),
            "m.jsonl row 1: quality: `300` is not an integer from 0 to 100",
            "the CSV reader's words"
        );
    }

    #[test]
    fn jsonl_refuses_unknown_fields_naming_the_nearest_and_types_naming_the_field() {
        let line = |json: &str| {
            parse(Path::new("m.jsonl"), json, Path::new("/m"))
                .unwrap_err()
                .to_string()
        };
        let base = r#""person":"p.png","garments":["g.png"]"#;
        let refused = [
            (
                format!("{{{base},\"sed\":7}}"),
                "unknown field `sed`; did you mean `seed`?",
            ),
            (
                format!("{{{base},\"promt\":\"red\"}}"),
                "unknown field `promt`; did you mean `prompt`?",
            ),
            (
                format!("{{{base},\"output_quality\":80}}"),
                "unknown field `output_quality`; did you mean `quality`?",
            ),
            (
                format!("{{{base},\"colour\":\"red\"}}"),
                "unknown field `colour` (known: id, person,",
            ),
            (
                r#"{"person":"p.png","garments":"g.png"}"#.to_string(),
                r#"garments: expected a list of images, found the string "g.png"; write ["g.png"]"#,
            ),
            (
                r#"{"person":"p.png","garments":["g.png",3]}"#.to_string(),
                "garments[1]: expected a string, found the number 3",
            ),
            (
                format!("{{{base},\"seed\":\"42\"}}"),
                r#"seed: expected a non-negative integer, found the string "42"; write it without quotes"#,
            ),
            (
                format!("{{{base},\"seed\":-1}}"),
                "seed: `-1` is not a non-negative integer",
            ),
            (
                format!("{{{base},\"turbo\":\"true\"}}"),
                r#"turbo: expected true or false, found the string "true"; write it without quotes"#,
            ),
            (
                format!("{{{base},\"id\":7}}"),
                "id: expected a string, found the number 7",
            ),
            (
                r#"["p.png",["g.png"]]"#.to_string(),
                "row 1: expected an object such as",
            ),
            (
                "{\"person\":".to_string(),
                "row 1: not JSON (EOF while parsing",
            ),
        ];
        for (json, expected) in refused {
            let message = line(&json);
            assert!(message.contains(expected), "{json}: {message}");
        }
        let ok = parse(
            Path::new("m.jsonl"),
            &format!("{{{base},\"seed\":null,\"turbo\":true,\"quality\":0}}"),
            Path::new("/m"),
        )
        .unwrap();
        assert_eq!(
            (ok[0].seed, ok[0].turbo, ok[0].quality),
            (None, Some(true), Some(0))
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
            csv("person,garment\np,g\n")
                .unwrap_err()
                .to_string()
                .contains("unknown column `garment`; did you mean `garments`?")
        );
        assert!(
            csv("person,garments,sed\np,g,1\n")
                .unwrap_err()
                .to_string()
                .contains("unknown column `sed`; did you mean `seed`?")
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
}
