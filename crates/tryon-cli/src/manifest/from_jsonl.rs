//! JSONL manifests: one JSON object per line, each key a known field and
//! each value of its field's type.

use std::path::PathBuf;

use serde_json::Value;

use super::row::{FIELDS, Row, Typed, parse_bool, unknown_field};

pub(super) fn parse(text: &str) -> Result<Vec<Row>, (usize, String)> {
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
