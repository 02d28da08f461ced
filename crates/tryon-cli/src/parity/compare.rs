//! Differences of one step: the target against the spec (the proxy's
//! drift records) and against the reference mock's answer to the same
//! step; and the mock against the spec (a fault of the mock, listed too).

use serde::Serialize;
use serde_json::Value;

use super::scenario::{Answer, Observation};

/// Longest value shown in a difference.
const MAX_SHOWN: usize = 160;

/// One difference: a line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The step (`submit_1`, `poll_1`, …).
    pub step: String,
    /// What the target is held against: `spec` (the spec and the job
    /// lifecycle, through the validating proxy), `mock` (the reference
    /// mock's answer), `run` (the target gave no usable answer), or
    /// `mock-spec` (the mock itself departs from the spec).
    pub against: &'static str,
    /// Where: a JSON pointer into `{"status", "headers", "body"}`, or
    /// `/statuses` for a poll's sequence, `/` for the whole step.
    pub pointer: String,
    /// What the spec says, or what the mock answered.
    pub expected: String,
    /// What the target answered.
    pub actual: String,
}

/// Every difference of one step.
pub fn step(step: &str, target: &Observation, mock: &Observation) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut push = |against: &'static str, pointer: String, expected: String, actual: String| {
        out.push(Difference {
            step: step.to_string(),
            against,
            pointer,
            expected: shorten(&expected),
            actual: shorten(&actual),
        });
    };
    for r in &target.drift {
        push(
            "spec",
            r.pointer.clone(),
            r.expected.clone(),
            r.actual.clone(),
        );
    }
    for r in &mock.drift {
        push(
            "mock-spec",
            r.pointer.clone(),
            r.expected.clone(),
            r.actual.clone(),
        );
    }
    match (&target.problem, &mock.problem) {
        (Some(t), None) => push("run", "/".into(), "an answer".into(), t.clone()),
        (t, Some(m)) if target.problem != mock.problem => push(
            "mock",
            "/".into(),
            m.clone(),
            t.clone().unwrap_or_else(|| "an answer".into()),
        ),
        _ => {}
    }
    // A poll that never ran is listed once, above.
    let polled = !(target.statuses.is_empty() && target.problem.is_some());
    let path = lifecycle(&mock.statuses);
    if polled && !is_sample_of(&target.statuses, &path) {
        push(
            "mock",
            "/statuses".into(),
            format!("a sample of {}", sequence(&path)),
            sequence(&target.statuses),
        );
    }
    if let (Some(t), Some(m)) = (&target.answer, &mock.answer) {
        answers(t, m, &mut |p, e, a| push("mock", p, e, a));
    }
    out
}

/// The statuses a poll saw: `QUEUED -> PROCESSING -> COMPLETED`.
pub fn sequence(statuses: &[String]) -> String {
    if statuses.is_empty() {
        "no statuses".into()
    } else {
        statuses.join(" -> ")
    }
}

/// The lifecycle a job of the mock's went through: `QUEUED ->
/// PROCESSING ->` where it ended. (The mock's own poll is a sample too: a
/// job that finished while another was polled shows only its end.)
fn lifecycle(mock: &[String]) -> Vec<String> {
    match mock.last().map(String::as_str) {
        Some(end @ ("COMPLETED" | "FAILED" | "FAILED (HTTP 422)")) => {
            vec!["QUEUED".into(), "PROCESSING".into(), end.to_string()]
        }
        _ => mock.to_vec(),
    }
}

/// Polling samples a job's lifecycle, so a target may skip statuses (it
/// was quicker than a poll) but not add, reorder or end elsewhere: its
/// sequence must be a subsequence of `lifecycle`, ending where it ends.
fn is_sample_of(target: &[String], lifecycle: &[String]) -> bool {
    if target.last() != lifecycle.last() {
        return false;
    }
    let mut rest = lifecycle.iter();
    target.iter().all(|s| rest.any(|m| m == s))
}

/// Two answers to the same step. Answers with different statuses are
/// different kinds of answer: the status is the one difference listed.
fn answers(target: &Answer, mock: &Answer, push: &mut impl FnMut(String, String, String)) {
    if target.status != mock.status {
        push(
            "/status".into(),
            mock.status.to_string(),
            target.status.to_string(),
        );
        return;
    }
    if target.content_type != mock.content_type {
        let shown = |c: &Option<String>| c.clone().unwrap_or_else(|| "none".into());
        push(
            "/headers/content-type".into(),
            shown(&mock.content_type),
            shown(&target.content_type),
        );
    }
    if target.retry_after != mock.retry_after {
        let shown = |b: bool| if b { "present" } else { "absent" }.to_string();
        push(
            "/headers/retry-after".into(),
            shown(mock.retry_after),
            shown(target.retry_after),
        );
    }
    // Two bodies that are not JSON (images) differ in size only.
    if target.body.is_string() && mock.body.is_string() {
        return;
    }
    json("/body", &target.body, &mock.body, push);
}

/// Field-by-field differences of two normalised JSON values.
fn json(
    pointer: &str,
    target: &Value,
    mock: &Value,
    push: &mut impl FnMut(String, String, String),
) {
    match (target, mock) {
        (Value::Object(t), Value::Object(m)) => {
            let mut keys: Vec<&String> = t.keys().chain(m.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (t.get(k), m.get(k)) {
                    (Some(tv), Some(mv)) => json(&p, tv, mv, push),
                    (Some(tv), None) => push(p, "absent".into(), tv.to_string()),
                    (None, Some(mv)) => push(p, mv.to_string(), "absent".into()),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(t), Value::Array(m)) if t.len() == m.len() => {
            for (i, (tv, mv)) in t.iter().zip(m).enumerate() {
                json(&format!("{pointer}/{i}"), tv, mv, push);
            }
        }
        _ if target != mock => push(pointer.to_string(), mock.to_string(), target.to_string()),
        _ => {}
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_SHOWN {
        text.to_string()
    } else {
        let cut: String = text.chars().take(MAX_SHOWN).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_string()).collect()
    }

    #[test]
    fn a_poll_may_skip_statuses_but_not_reorder_or_end_elsewhere() {
        let mock = lifecycle(&s(&["COMPLETED"]));
        assert_eq!(mock, s(&["QUEUED", "PROCESSING", "COMPLETED"]));
        assert!(is_sample_of(&s(&["COMPLETED"]), &mock));
        assert!(is_sample_of(&s(&["QUEUED", "COMPLETED"]), &mock));
        assert!(is_sample_of(&mock, &mock));
        assert!(!is_sample_of(
            &s(&["PROCESSING", "QUEUED", "COMPLETED"]),
            &mock
        ));
        assert!(!is_sample_of(&s(&["QUEUED", "PROCESSING"]), &mock));
        assert!(!is_sample_of(&s(&["QUEUED", "FAILED"]), &mock));
        assert!(is_sample_of(&[], &[]));
    }

    #[test]
    fn json_differences_name_the_pointer_and_both_values() {
        let mut got = Vec::new();
        json(
            "/body",
            &serde_json::json!({"status": "QUEUED", "requestId": "job-1", "a/b": [1, 2]}),
            &serde_json::json!({"status": "QUEUED", "request_id": "<id>", "a/b": [1, 3]}),
            &mut |p, e, a| got.push(format!("{p}: {e} / {a}")),
        );
        assert_eq!(
            got,
            [
                "/body/a~1b/1: 3 / 2",
                "/body/requestId: absent / \"job-1\"",
                "/body/request_id: \"<id>\" / absent",
            ]
        );
    }
}
