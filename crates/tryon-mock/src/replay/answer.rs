//! Which recorded answer a request gets.
//!
//! - A `POST` (submit, v1 run, upload) matches a recorded request of the
//!   same route and key presence whose body is the same under the one rule
//!   of [`record::body`](crate::record::body). Recorded jobs with the same
//!   request are handed out in order; a miss names the nearest request.
//! - A status or result `GET` for a recorded job answers what the route
//!   answered when the job was in the status its timeline gives for the time
//!   since its replayed submit (scaled by the speed).
//! - An output path answers the recorded output bytes.
//! - Anything else answers the last recorded exchange with the same method
//!   and path, or what the mock answers (401 with no key, 404).

use bytes::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::Value;

use super::{Replay, Shared};
use crate::http::{Reply, error, json_response};
use crate::proxy::{OUTPUT_PREFIX, job_id, rewrite};
use crate::record::body::{differences, normalize};
use crate::record::{Body, Exchange};
use crate::sync::lock;

/// One request, read.
pub(super) struct Asked<'a> {
    pub(super) method: &'a str,
    pub(super) path: &'a str,
    pub(super) query: Option<&'a str>,
    /// The caller's key: only its presence matters, and it is masked in the
    /// body as the recorder masked it.
    pub(super) key: Option<&'a str>,
    pub(super) body: &'a Bytes,
}

pub(super) fn answer(shared: &Shared, asked: &Asked<'_>) -> Reply {
    if asked.path.starts_with(OUTPUT_PREFIX) {
        return output(shared, asked.path);
    }
    let same_route = |e: &&Exchange| {
        e.request.method == asked.method
            && e.request.path == asked.path
            && e.request.api_key == asked.key.is_some()
    };
    if asked.method == "POST" {
        return post(shared, asked, same_route);
    }
    if asked.key.is_some()
        && let Some(id) = job_id(asked.path, None)
        && shared.recording.jobs.iter().any(|j| j.request_id == id)
    {
        return job(shared, &id, asked.path);
    }
    // The query as the recorder stored it.
    let query = asked.query.map(|q| {
        let mut keys = lock(&shared.keys);
        keys.learn(asked.key);
        keys.mask_query(q)
    });
    let recorded = shared
        .recording
        .exchanges
        .iter()
        .filter(same_route)
        .rfind(|e| e.request.query == query);
    match recorded {
        Some(e) => serve(shared, e),
        None if asked.key.is_none() => error(StatusCode::UNAUTHORIZED, "Missing x-api-key header"),
        None if job_id(asked.path, None).is_some() => {
            error(StatusCode::NOT_FOUND, "request not found or expired")
        }
        None => error(
            StatusCode::NOT_FOUND,
            format!("not in the recording: {} {}", asked.method, asked.path),
        ),
    }
}

/// A submit, v1 run or upload: matched by body.
fn post(shared: &Shared, asked: &Asked<'_>, same_route: impl Fn(&&Exchange) -> bool) -> Reply {
    let mut raw = asked.body.to_vec();
    {
        let mut keys = lock(&shared.keys);
        keys.learn(asked.key);
        keys.mask(&mut raw);
    }
    let got = normalize(&raw, &mut |_, _, _| {});
    let candidates: Vec<&Exchange> = shared
        .recording
        .exchanges
        .iter()
        .filter(same_route)
        .collect();
    let matching: Vec<&Exchange> = candidates
        .iter()
        .copied()
        .filter(|e| differences(&e.request.body, &got).is_empty())
        .collect();
    if matching.is_empty() {
        if asked.key.is_none() {
            return error(StatusCode::UNAUTHORIZED, "Missing x-api-key header");
        }
        return miss(asked, &candidates, &got);
    }
    // A recorded job is handed out once, in order; other answers (errors,
    // uploads, v1 runs) as often as asked.
    let jobs: Vec<&Exchange> = matching
        .iter()
        .copied()
        .filter(|e| e.job.is_some())
        .collect();
    if jobs.is_empty() {
        return matching
            .last()
            .map_or_else(|| miss(asked, &candidates, &got), |e| serve(shared, e));
    }
    let mut handed = lock(&shared.handed);
    let Some(next) = jobs.iter().find(|e| !handed.contains(&e.seq)) else {
        return error(
            StatusCode::from_u16(Replay::MISS_STATUS).unwrap_or(StatusCode::CONFLICT),
            format!(
                "replay: all {} recorded job(s) for this {} {} were handed out already",
                jobs.len(),
                asked.method,
                asked.path
            ),
        );
    };
    handed.insert(next.seq);
    drop(handed);
    if let Some(job) = &next.job {
        lock(&shared.started).insert(job.request_id.clone(), shared.clock.now());
    }
    serve(shared, next)
}

/// The near-miss error: the nearest recorded request of the route and each
/// field that differs.
fn miss(asked: &Asked<'_>, candidates: &[&Exchange], got: &Body) -> Reply {
    let status = StatusCode::from_u16(Replay::MISS_STATUS).unwrap_or(StatusCode::CONFLICT);
    let nearest = candidates
        .iter()
        .map(|e| (e, differences(&e.request.body, got)))
        .min_by_key(|(_, d)| d.len());
    let Some((e, diffs)) = nearest else {
        return error(
            status,
            format!(
                "replay: no recorded request {} {} (with{} an API key)",
                asked.method,
                asked.path,
                if asked.key.is_some() { "" } else { "out" }
            ),
        );
    };
    let which = e
        .job
        .as_ref()
        .map_or_else(String::new, |j| format!(", request_id {}", j.request_id));
    error(
        status,
        format!(
            "replay: no recorded request matches {} {}; nearest is exchanges/{} (seq {}{which}): {}",
            asked.method,
            asked.path,
            crate::record::exchange_name(e.seq),
            e.seq,
            diffs.join("; ")
        ),
    )
}

/// The status the job's timeline gives at the replayed time since its
/// submit, scaled by the speed.
fn status_now(shared: &Shared, id: &str) -> Option<(String, u64)> {
    let timeline = &shared
        .recording
        .jobs
        .iter()
        .find(|j| j.request_id == id)?
        .timeline;
    let started = lock(&shared.started).get(id).copied().unwrap_or_default();
    let elapsed = shared.clock.now().saturating_sub(started).as_secs_f64() * shared.speed;
    let ms = std::time::Duration::try_from_secs_f64(elapsed).map_or(u64::MAX, |d| {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    });
    let seen = timeline
        .iter()
        .rfind(|s| s.offset_ms <= ms)
        .or_else(|| timeline.first())?;
    Some((seen.status.clone(), ms))
}

/// A status or result read of a recorded job.
fn job(shared: &Shared, id: &str, path: &str) -> Reply {
    let Some((status, ms)) = status_now(shared, id) else {
        return error(StatusCode::NOT_FOUND, "request not found or expired");
    };
    let on_route: Vec<&Exchange> = shared
        .recording
        .exchanges
        .iter()
        .filter(|e| {
            e.request.path == path
                && e.request.api_key
                && e.job.as_ref().is_some_and(|j| j.request_id == id)
                && e.job_status() == Some(status.as_str())
        })
        .collect();
    let pick = on_route
        .iter()
        .rfind(|e| e.job.as_ref().is_some_and(|j| j.offset_ms <= ms))
        .or_else(|| on_route.first());
    match pick {
        Some(e) => serve(shared, e),
        // The route was not read in that status while recording: the
        // waiting answer the mock gives.
        None => json_response(
            StatusCode::OK,
            &serde_json::json!({"request_id": id, "status": status}),
        ),
    }
}

/// A recorded output, by the upstream URL its proxy path stands for.
fn output(shared: &Shared, path: &str) -> Reply {
    let url = lock(&shared.outputs).original(path);
    let recorded = url.and_then(|url| {
        shared
            .recording
            .exchanges
            .iter()
            .rfind(|e| e.request.upstream_url.as_deref() == Some(url.as_str()))
    });
    match recorded {
        Some(e) => serve(shared, e),
        None => error(
            StatusCode::NOT_FOUND,
            "output not in the recording (it was not fetched while recording)",
        ),
    }
}

/// A recorded response, its URLs rewritten to the replay.
fn serve(shared: &Shared, e: &Exchange) -> Reply {
    let body = match &e.response.body {
        Body::Empty => Bytes::new(),
        Body::Json(v) => {
            let mut v: Value = v.clone();
            rewrite(&mut v, &shared.base, false, &mut lock(&shared.outputs));
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
        }
        Body::Text(t) => Bytes::from(t.clone()),
        Body::File(f) => shared.recording.files.get(f).cloned().unwrap_or_default(),
    };
    let mut reply = Response::new(body);
    *reply.status_mut() =
        StatusCode::from_u16(e.response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &e.response.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            reply.headers_mut().insert(n, v);
        }
    }
    if !reply.headers().contains_key(header::CONTENT_TYPE)
        && matches!(e.response.body, Body::Json(_))
    {
        reply.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    reply
}
