//! CSV manifests: a header row of known columns, `garments` split by `|`.

use std::path::PathBuf;

use super::row::{FIELDS, Row, Typed, parse_bool, unknown_field};

pub(super) fn parse(text: &str) -> Result<Vec<Row>, (Option<usize>, String)> {
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
