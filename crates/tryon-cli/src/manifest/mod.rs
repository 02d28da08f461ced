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
//! An unknown column or key is refused in both, naming the nearest known
//! field (`sed`: did you mean `seed`?), and a value of the wrong type is
//! refused naming its field ([`from_csv`], [`from_jsonl`]).
//!
//! Relative file paths are resolved against the manifest's own folder, so a
//! manifest and its images can move together.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

mod from_csv;
mod from_jsonl;
mod row;

pub use row::{Row, Typed};

use crate::input;

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

/// The most bytes of a manifest read: 256 MiB, a million rows of a
/// catalog's URLs with room to spare. A larger file is refused before
/// anything is parsed, and so is anything but a regular file (a FIFO, a
/// device such as `/dev/zero`), which would never end.
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;

/// Read and check a manifest. Every row is returned or the first problem is
/// reported; nothing is sent anywhere.
pub fn load(path: &Path) -> Result<Vec<Row>, ManifestError> {
    let whole = |message: String| ManifestError {
        path: path.to_path_buf(),
        line: None,
        message,
    };
    let bytes = tryon_client::tryon_api::file::read_regular(path, MAX_MANIFEST_BYTES)
        .map_err(|e| whole(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        whole(format!(
            "not UTF-8 text (byte {} is not part of a character)",
            e.utf8_error().valid_up_to() + 1
        ))
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
        Kind::Jsonl => from_jsonl::parse(text).map_err(|(line, m)| err(Some(line), m))?,
        Kind::Csv => from_csv::parse(text).map_err(|(line, m)| err(line, m))?,
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
