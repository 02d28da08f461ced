//! `tryon batch --journal-repair`: the way out of a damaged journal that
//! never loses what the damage may have held.
//!
//! Every record that parses is kept, in order. A damaged line is dropped,
//! but first searched for a row id, a fingerprint and a request id: a row
//! named there gets an `ambiguous` record in the line's place (so it is
//! never taken for "never sent"), and a request id found there is printed
//! with the command that fetches its result. The damaged file is kept
//! beside the new one as `tryon-journal.jsonl.damaged-<unix seconds>`;
//! the new journal replaces the old one atomically
//! ([`crate::output::write_replacing`]), so a crash during the repair
//! leaves one or the other.

use std::fmt::Write as _;
use std::path::Path;

use super::event::{Event, Kind, now_secs};
use super::scan::{Damage, bytes_of, parse_record, scan};
use crate::term;

/// Repair the journal at `path` if it is damaged; returns a report for
/// stderr, or `None` when there was nothing to repair.
pub fn repair(path: &Path) -> Result<Option<String>, Damage> {
    let name = path
        .file_name()
        .map_or_else(|| "journal".into(), |n| n.to_string_lossy().into_owned());
    let io = |e: std::io::Error| Damage::io(path, &e);
    let bytes = bytes_of(path)?;
    if scan(path, &bytes).is_ok() {
        return Ok(None);
    }
    let mut kept = Vec::new();
    let mut report = String::new();
    let mut dropped = 0;
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if !line.contains(&0)
            && let Ok(event) = parse_record(line)
        {
            kept.push(event);
            continue;
        }
        dropped += 1;
        let text = String::from_utf8_lossy(line).replace('\0', "");
        let _ = write!(
            report,
            "\n  line {}: dropped `{}`",
            index + 1,
            term::inline(&text)
        );
        if let (Some(row), Some(fingerprint)) =
            (salvage(&text, "row"), salvage(&text, "fingerprint"))
        {
            let _ = write!(report, "; row `{}` marked ambiguous", term::inline(&row));
            kept.push(Event {
                reason: Some(format!(
                    "journal line {} was damaged and dropped by --journal-repair",
                    index + 1
                )),
                ..Event::new(Kind::Ambiguous, &row, &fingerprint)
            });
        }
        if let Some(id) = salvage(&text, "request_id") {
            let _ = write!(
                report,
                "; it names request id {id}: fetch its image with `tryon wait {id} -o FILE`",
                id = term::inline(&id)
            );
        }
    }
    let saved = path.with_file_name(format!("{name}.damaged-{}", now_secs()));
    std::fs::copy(path, &saved).map_err(io)?;
    let mut text = Vec::new();
    for event in &kept {
        serde_json::to_writer(&mut text, event).map_err(|e| io(std::io::Error::other(e)))?;
        text.push(b'\n');
    }
    crate::output::write_replacing(path, &text).map_err(io)?;
    Ok(Some(format!(
        "journal {}: repaired: kept {} records, dropped {dropped} damaged lines (the damaged file is saved as {}){report}",
        path.display(),
        kept.len(),
        saved.display()
    )))
}

/// The string value of `"key":"..."` in a damaged line, if it is there
/// whole.
fn salvage(line: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\":\"");
    let start = line.find(&needle)? + needle.len();
    let rest = &line[start..];
    let mut escaped = false;
    let end = rest.char_indices().find_map(|(i, c)| {
        let end = !escaped && c == '"';
        escaped = !escaped && c == '\\';
        end.then_some(i)
    })?;
    serde_json::from_str(&format!("\"{}\"", &rest[..end]))
        .ok()
        .filter(|v: &String| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salvage_finds_whole_values_only() {
        let line = r#"{"event":"submitted","row":"a\"b","fingerprint":"f1","request_id":"r-1"#;
        assert_eq!(salvage(line, "row").as_deref(), Some("a\"b"));
        assert_eq!(salvage(line, "fingerprint").as_deref(), Some("f1"));
        assert_eq!(salvage(line, "request_id"), None, "cut short: not whole");
    }
}
