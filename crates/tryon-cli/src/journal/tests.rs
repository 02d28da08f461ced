use std::collections::HashMap;

use super::scan::Tail;
use super::*;

fn fp(rows: &[(&str, &str)]) -> HashMap<String, String> {
    rows.iter()
        .map(|(r, f)| ((*r).to_string(), (*f).to_string()))
        .collect()
}

/// The current state of each row, `current` giving each row's fingerprint.
fn states(events: &[Event], current: &HashMap<String, String>) -> HashMap<String, RowState> {
    fold(events, |row, f| current.get(row).is_some_and(|c| c == f))
        .into_iter()
        .filter_map(|(row, history)| history.current.map(|state| (row, state)))
        .collect()
}

fn event(kind: Kind, row: &str) -> Event {
    Event {
        at: 1,
        ..Event::new(kind, row, "1")
    }
}

#[test]
fn fold_keeps_the_last_event_per_row_and_ignores_edited_rows() {
    let events = vec![
        event(Kind::Submitting, "a"),
        event(Kind::Submitted, "a").request_id("r-a"),
        event(Kind::Submitting, "b"),
        Event {
            fingerprint: "old".into(),
            ..event(Kind::Submitted, "c").request_id("r-c")
        },
        event(Kind::Submitted, "d").request_id("r-d"),
        event(Kind::Completed, "d")
            .request_id("r-d")
            .output(Path::new("d.png"), 9),
    ];
    let current = fp(&[("a", "1"), ("b", "1"), ("c", "new"), ("d", "1")]);
    let histories = fold(&events, |row, f| current[row] == f);
    let states = states(&events, &current);
    assert_eq!(
        states["a"],
        RowState::Live {
            request_id: "r-a".into(),
            at: 1
        }
    );
    assert!(matches!(states["b"], RowState::Ambiguous { .. }));
    assert!(!states.contains_key("c"), "an edited row is new");
    assert_eq!(
        histories["c"].earlier,
        [Version {
            fingerprint: "old".into(),
            state: Some(RowState::Live {
                request_id: "r-c".into(),
                at: 1
            }),
            inputs: None,
        }],
        "and its earlier job is not forgotten"
    );
    assert!(histories["d"].owns(Path::new("d.png"), "1"));
    assert_eq!(
        states["d"],
        RowState::Completed {
            output: "d.png".into(),
            request_id: "r-d".into(),
            at: 1,
        }
    );
}

#[test]
fn the_format_is_the_one_older_versions_wrote() {
    let line = r#"{"event":"submitted","row":"a","fingerprint":"f","request_id":"r","at":7}"#;
    let parsed = scan::parse_record(line.as_bytes()).unwrap();
    assert_eq!(parsed.kind, Kind::Submitted);
    assert_eq!(serde_json::to_string(&parsed).unwrap(), line);
}

/// A journal as a real run writes it: rows in every state.
fn real_journal() -> (Vec<u8>, Vec<Event>) {
    let events = vec![
        event(Kind::Submitting, "a"),
        event(Kind::Submitting, "b"),
        event(Kind::Submitted, "a").request_id("r-a"),
        event(Kind::Submitting, "c"),
        event(Kind::Submitted, "b").request_id("r-b"),
        event(Kind::Rejected, "c").reason("406 no credits"),
        event(Kind::Completed, "a")
            .request_id("r-a")
            .output(Path::new("o/a.png"), 10),
        event(Kind::Submitting, "d"),
        event(Kind::Ambiguous, "d").reason("connection dropped"),
        event(Kind::Submitting, "e"),
        event(Kind::Submitted, "e").request_id("r-e"),
        event(Kind::Failed, "e")
            .request_id("r-e")
            .reason("no person"),
        event(Kind::Submitting, "f"),
    ];
    let mut bytes = Vec::new();
    for e in &events {
        bytes.extend(serde_json::to_vec(e).unwrap());
        bytes.push(b'\n');
    }
    (bytes, events)
}

#[test]
fn every_prefix_of_a_real_journal_opens_safely() {
    let (bytes, events) = real_journal();
    let current = fp(&[
        ("a", "1"),
        ("b", "1"),
        ("c", "1"),
        ("d", "1"),
        ("e", "1"),
        ("f", "1"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    for cut in 0..=bytes.len() {
        let prefix = &bytes[..cut];
        let scanned = scan(&path, prefix).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        // The records wholly inside the prefix (their JSON, newline or not).
        let mut end = 0;
        let whole: Vec<&Event> = events
            .iter()
            .take_while(|e| {
                end += serde_json::to_vec(e).unwrap().len();
                let fits = end <= cut;
                end += 1;
                fits
            })
            .collect();
        assert_eq!(
            scanned.events.iter().collect::<Vec<_>>(),
            whole,
            "cut {cut}"
        );
        let states = states(&scanned.events, &current);
        for record in &whole {
            // A row with an intent or an accepted id on disk is never
            // taken for one that was never sent (unless the service
            // provably refused it).
            let refused_later = whole
                .iter()
                .any(|e| e.row == record.row && e.kind == Kind::Rejected);
            if !refused_later {
                assert!(
                    states.contains_key(&record.row),
                    "cut {cut}: row {} would be resubmitted",
                    record.row
                );
            }
            if record.kind == Kind::Submitted {
                assert!(
                    matches!(
                        states[&record.row],
                        RowState::Live { .. }
                            | RowState::Completed { .. }
                            | RowState::Failed { .. }
                    ),
                    "cut {cut}: the accepted id of row {} is kept",
                    record.row
                );
            }
        }
        // What the repair leaves on disk reads back as the same records,
        // ending cleanly, so the next append starts a fresh line.
        std::fs::write(&path, prefix).unwrap();
        scanned.repair_file(&path, prefix).unwrap();
        let repaired = std::fs::read(&path).unwrap();
        let again = scan(&path, &repaired).unwrap();
        assert_eq!(again.tail, Tail::Clean, "cut {cut}");
        assert_eq!(again.events, scanned.events, "cut {cut}");
    }
}

#[test]
fn damage_other_than_a_torn_tail_is_refused_with_its_line() {
    let (bytes, _) = real_journal();
    let text = String::from_utf8(bytes).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let path = Path::new("o/tryon-journal.jsonl");
    let cases = [
        // A bad line in the middle.
        (format!("{}\ngarbage\n{}\n", lines[0], lines[1]), 2),
        // A whole last line (it has its newline) that does not parse.
        (
            format!("{}\n{}\n{{\"event\":\"subm\n", lines[0], lines[1]),
            3,
        ),
        // A record missing what its kind needs.
        (
            format!(
                "{}\n{{\"event\":\"submitted\",\"row\":\"a\",\"fingerprint\":\"1\",\"at\":1}}\n",
                lines[0]
            ),
            2,
        ),
        // Zeros where a write never reached the disk.
        (format!("{}\n\0\0\0\0\n{}\n", lines[0], lines[1]), 2),
        // A cut line in the middle (a line was lost, not torn at the end).
        (
            format!("{}\n{}\n{}\n", lines[0], &lines[2][..20], lines[3]),
            2,
        ),
    ];
    for (text, line) in cases {
        let damage = scan(path, text.as_bytes()).unwrap_err();
        assert_eq!(damage.line, Some(line), "{text:?}: {damage}");
        let message = damage.to_string();
        assert!(
            message.contains(&format!("tryon-journal.jsonl line {line}")),
            "{message}"
        );
        assert!(message.contains("--journal-repair"), "{message}");
    }
}

#[tokio::test]
async fn a_last_record_without_newline_is_kept_and_a_torn_one_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let live = r#"{"event":"submitted","row":"a","fingerprint":"1","request_id":"r-a","at":1}"#;
    std::fs::write(
        &path,
        format!(
            "{}\n{live}",
            r#"{"event":"submitting","row":"a","fingerprint":"1","at":1}"#
        ),
    )
    .unwrap();
    let (writer, events, note) = open(dir.path()).unwrap();
    assert!(note.unwrap().contains("kept it"));
    assert_eq!(events[1].request_id.as_deref(), Some("r-a"));
    writer.append(event(Kind::Submitting, "b")).await.unwrap();
    drop(writer);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("{live}\n")), "the live id is kept");

    // A crash in the middle of the next record: it is cut off, and the
    // next append starts on a fresh line.
    std::fs::write(&path, format!("{text}{{\"event\":\"submitted\",\"ro")).unwrap();
    let (writer, events, note) = open(dir.path()).unwrap();
    assert!(note.unwrap().contains("cut off"));
    assert_eq!(events.len(), 3);
    writer.append(event(Kind::Submitting, "c")).await.unwrap();
    drop(writer);
    let (_, events, note) = open(dir.path()).unwrap();
    assert!(note.is_none());
    assert_eq!(events.len(), 4);
    let states = states(&events, &fp(&[("a", "1"), ("b", "1"), ("c", "1")]));
    assert!(matches!(states["b"], RowState::Ambiguous { .. }));
}

#[test]
fn repair_keeps_parseable_records_and_marks_named_rows_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let (bytes, _) = real_journal();
    let text = String::from_utf8(bytes).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // Damage row b's accepted record (line 5) and row a's intent (line 1).
    lines[4] = lines[4].replace("\"at\":1}", "\"at\":1,,}");
    lines[0] = "\0\0\0".to_string();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    assert!(read(dir.path()).is_err());
    let report = repair(dir.path()).unwrap().unwrap();
    assert!(report.contains("dropped 2 damaged lines"), "{report}");
    assert!(report.contains("row `b` marked ambiguous"), "{report}");
    assert!(report.contains("tryon wait r-b -o FILE"), "{report}");
    let events = read(dir.path()).unwrap();
    let states = states(&events, &fp(&[("a", "1"), ("b", "1")]));
    assert!(
        matches!(states["b"], RowState::Ambiguous { .. }),
        "{states:?}"
    );
    assert!(matches!(states["a"], RowState::Completed { .. }));
    let saved = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".damaged-")
        })
        .count();
    assert_eq!(saved, 1, "the damaged file is kept");
    assert!(
        repair(dir.path()).unwrap().is_none(),
        "nothing left to repair"
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_failed_write_refuses_every_later_record() {
    // /dev/full answers every write with ENOSPC, like a full disk.
    let writer = Writer::start(Path::new("/dev/full")).unwrap();
    let first = writer.append(event(Kind::Submitting, "a")).await;
    assert!(first.unwrap_err().contains("/dev/full"));
    assert!(writer.failure().is_some());
    assert!(writer.append(event(Kind::Submitting, "b")).await.is_err());
}

#[test]
fn a_second_run_on_the_same_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, _, _) = open(dir.path()).unwrap();
    let refused = open(dir.path()).unwrap_err();
    assert!(
        refused.to_string().contains("another `tryon batch`"),
        "{refused}"
    );
    drop(writer);
    assert!(
        open(dir.path()).is_ok(),
        "free again once the first run ends"
    );
}
