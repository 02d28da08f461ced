//! The API's handlers: submit, v1 run, status, result, upload, the
//! output and upload files, and the account's records (credits, request
//! history).

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use tryon_api::types::{
    CreditsResponse, ErrorBody, JobStatus, Metrics, ResultResponse, StatusResponse, SubmitResponse,
    UploadAssetResponse,
};

use super::routes::Endpoint;
use super::{
    Departure, Reply, error, json_response, method_not_allowed, read_body, with_retry_after,
};
use crate::config::ResultBeforeCompletion;
use crate::render::{self, RenderInput};
use crate::state::{Accepted, HistoryQuery, JobView, Refusal, State, canonical_id};
use crate::sync::lock;
use crate::validate::{self, Invalid};

type Incoming = Request<hyper::body::Incoming>;

fn refusal(r: Refusal) -> Reply {
    match r {
        Refusal::Unauthorized(text) => error(StatusCode::UNAUTHORIZED, text),
        Refusal::RateLimited { retry_after_secs } => with_retry_after(
            error(StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
            &retry_after_secs.to_string(),
        ),
        Refusal::NoCredits => error(StatusCode::NOT_ACCEPTABLE, "Insufficient credits"),
    }
}

fn invalid(i: Invalid) -> Reply {
    match i {
        Invalid::Malformed(m) => error(StatusCode::BAD_REQUEST, m),
        Invalid::Field(m) => error(StatusCode::UNPROCESSABLE_ENTITY, m),
    }
}

pub(crate) async fn dispatch(
    state: &State,
    endpoint: Endpoint<'_>,
    key: Option<&str>,
    req: Incoming,
) -> Reply {
    match endpoint {
        Endpoint::NotFound => return error(StatusCode::NOT_FOUND, "Not found"),
        Endpoint::MethodNotAllowed(allow) => return method_not_allowed(allow),
        Endpoint::Output(name) => return output(state, name).await,
        Endpoint::Asset(id) => return asset(state, id),
        _ => {}
    }
    let billed = matches!(endpoint, Endpoint::Submit | Endpoint::Run);
    if let Err(r) = state.admit(key, billed) {
        return refusal(r);
    }
    let key = key.unwrap_or_default();
    match endpoint {
        Endpoint::Submit => submit(state, key, req).await,
        Endpoint::Run => run(state, key, req).await,
        Endpoint::Status(id) => status(state, id),
        Endpoint::Result(id) => result(state, id),
        Endpoint::Upload => upload(state, req).await,
        Endpoint::Credits => credits(state, key),
        Endpoint::History => history(state, key, req.uri().query().unwrap_or_default()),
        Endpoint::HistoryEntry(id) => history_entry(state, key, id),
        _ => error(StatusCode::NOT_FOUND, "Not found"),
    }
}

/// 415 unless the body is declared JSON (`application/json`, with or
/// without parameters, or a `+json` type). A missing `Content-Type` is
/// read as JSON, as lenient servers do.
fn json_content_type(req: &Incoming) -> Result<(), Reply> {
    let Some(ct) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = ct
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content-type: {} given, application/json required",
                String::from_utf8_lossy(ct.as_bytes())
            ),
        ))
    }
}

fn urls(base: &str, id: &str) -> (String, String, String) {
    (
        format!("{base}/v2/requests/{id}/status"),
        format!("{base}/v2/requests/{id}"),
        format!("{base}/v1/requests/{id}"),
    )
}

/// The body of either POST, read, validated, paid for and accepted: the
/// steps a submit and a synchronous run share. The images the mock holds
/// (inline or uploaded) are taken out of the body here, their declared
/// sizes checked before anything is billed; the accepted job gets its
/// history row. Returns the job and whether it holds image bytes.
async fn paid_and_accepted(
    state: &State,
    key: &str,
    req: Incoming,
) -> Result<(Accepted, bool), Reply> {
    json_content_type(&req)?;
    let limit = lock(&state.settings).max_body_bytes;
    let bytes = read_body(limit, req).await?;
    let input = validate::try_on_input(&bytes).map_err(invalid)?;
    let body = serde_json::from_slice::<Value>(&bytes).unwrap_or_default();
    drop(bytes);
    let mut fields = vec![("person_image".to_string(), input.person_image.as_str())];
    fields.extend(
        input
            .garment_images
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("garment_images[{i}]"), g.as_str())),
    );
    if let Some(pose) = &input.reference_pose {
        fields.push(("reference_pose".to_string(), pose.as_str()));
    }
    // Each image the mock holds, resolved once and its size checked.
    let mut held = std::collections::HashMap::new();
    for (field, reference) in fields {
        if let Some(bytes) = state.resolve_image(reference) {
            render::check_dimensions(&field, &bytes)
                .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e))?;
            held.insert(reference, bytes);
        }
    }
    let size = lock(&state.settings).output_size;
    let render = RenderInput::new(&input, size, &|r| held.get(r).cloned());
    drop(held);
    let cost = state
        .charge(key, input.garment_images.len())
        .map_err(refusal)?;
    let holds_images = render.holds_images();
    let accepted = state.accept(&input, render);
    state.record_history(key, accepted.id, body, cost);
    Ok((accepted, holds_images))
}

async fn submit(state: &State, key: &str, req: Incoming) -> Reply {
    let (accepted, holds_images) = match paid_and_accepted(state, key, req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    state.bill(key);
    // Render at once when the job holds image bytes, so they are let go.
    if holds_images && let Some(render) = accepted.render {
        tokio::spawn(async move { render.bytes().await });
    }
    let id = accepted.id.to_string();
    let (status_url, response_url, poll_url) = urls(&state.base_url, &id);
    json_response(
        StatusCode::OK,
        &SubmitResponse {
            poll_url: Some(poll_url),
            request_id: id,
            response_url,
            status: JobStatus::Queued,
            status_url,
        },
    )
}

fn failed_body(id: &str, error: String, inference_time: f64) -> Reply {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &ErrorBody {
            error,
            metrics: Some(Metrics {
                inference_time: Some(inference_time),
            }),
            request_id: Some(id.to_string()),
            status: Some(JobStatus::Failed),
        },
    )
}

fn not_found() -> Reply {
    error(StatusCode::NOT_FOUND, "request not found or expired")
}

fn status(state: &State, id: &str) -> Reply {
    let Some(job) = state.job(id) else {
        return not_found();
    };
    match job.status {
        JobStatus::Failed => failed_body(id, job.failure.unwrap_or_default(), job.inference_time),
        JobStatus::Completed => json_response(
            StatusCode::OK,
            &StatusResponse {
                error: None,
                metrics: Some(Metrics {
                    inference_time: Some(job.inference_time),
                }),
                request_id: Some(id.to_string()),
                response_url: None,
                status: JobStatus::Completed,
                status_url: None,
            },
        ),
        waiting => {
            let (status_url, response_url, _) = urls(&state.base_url, id);
            json_response(
                StatusCode::OK,
                &StatusResponse {
                    error: None,
                    metrics: Some(Metrics {
                        inference_time: None,
                    }),
                    request_id: Some(id.to_string()),
                    response_url: Some(response_url),
                    status: waiting,
                    status_url: Some(status_url),
                },
            )
        }
    }
}

fn output_url(base: &str, id: &str, job: &JobView) -> String {
    format!("{base}/outputs/{id}.{}", render::extension(job.format))
}

/// The result URL's answer before the job is final, when the mock was told
/// to depart from the contract's assumption (`200` with the current
/// status): marked [`Departure`] so the spec check takes it as a fault a
/// test asked for.
fn early_result(state: &State, id: &str) -> Option<Reply> {
    let answer = lock(&state.settings).result_before_completion;
    let mut reply = match answer {
        ResultBeforeCompletion::Status => return None,
        ResultBeforeCompletion::NotFound => not_found(),
        ResultBeforeCompletion::Accepted => {
            error(StatusCode::ACCEPTED, "request is still being processed")
        }
        ResultBeforeCompletion::NoStatus => json_response(
            StatusCode::OK,
            &ErrorBody {
                error: "request is still being processed".to_string(),
                metrics: None,
                request_id: Some(id.to_string()),
                status: None,
            },
        ),
    };
    reply.extensions_mut().insert(Departure);
    Some(reply)
}

fn result(state: &State, id: &str) -> Reply {
    let Some(job) = state.job(id) else {
        return not_found();
    };
    if matches!(job.status, JobStatus::Queued | JobStatus::Processing)
        && let Some(reply) = early_result(state, id)
    {
        return reply;
    }
    let (output, metrics) = match job.status {
        JobStatus::Failed => {
            return failed_body(
                id,
                job.failure.clone().unwrap_or_default(),
                job.inference_time,
            );
        }
        JobStatus::Completed => (
            Some(output_url(&state.base_url, id, &job)),
            Some(job.inference_time),
        ),
        _ => (None, None),
    };
    let body = ResultResponse {
        error: None,
        metrics: Some(Metrics {
            inference_time: metrics,
        }),
        output,
        request_id: Some(id.to_string()),
        status: job.status,
    };
    // The service's result carries `"error": null` when nothing failed;
    // the generated type leaves an absent optional field out.
    let mut body = serde_json::to_value(&body).unwrap_or_default();
    if let Some(fields) = body.as_object_mut() {
        fields.entry("error").or_insert(serde_json::Value::Null);
    }
    json_response(StatusCode::OK, &body)
}

/// A file body with a content type the mock chose and `nosniff`.
fn file(bytes: Bytes, content_type: &'static str) -> Reply {
    let mut r = Response::new(bytes);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn rendered(job: &JobView) -> Reply {
    let Some(render) = &job.render else {
        return error(StatusCode::NOT_FOUND, "output not found or expired");
    };
    match render.bytes().await {
        Ok(bytes) => file(bytes, render::content_type(job.format)),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// A completed job's output: from the job while its status is kept, then
/// from the history until the output retention has passed.
async fn output(state: &State, name: &str) -> Reply {
    let id = name.split_once('.').map_or(name, |(id, _)| id);
    match state.job(id) {
        Some(job) if job.status == JobStatus::Completed => rendered(&job).await,
        Some(_) => error(StatusCode::NOT_FOUND, "output not found or expired"),
        None => match state.kept_output(id) {
            Some((render, format)) => match render.bytes().await {
                Ok(bytes) => file(bytes, render::content_type(format)),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            },
            None => error(StatusCode::NOT_FOUND, "output not found or expired"),
        },
    }
}

fn asset(state: &State, id: &str) -> Reply {
    let found = canonical_id(id).and_then(|id| {
        lock(&state.assets)
            .get(&id)
            .map(|a| (a.bytes.clone(), a.mime))
    });
    match found {
        Some((bytes, mime)) => file(bytes, mime),
        None => error(StatusCode::NOT_FOUND, "asset not found"),
    }
}

async fn run(state: &State, key: &str, req: Incoming) -> Reply {
    let (accepted, _) = match paid_and_accepted(state, key, req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    // In real time the call is held for the job's duration; with a virtual
    // clock it answers at once (nothing would ever advance it mid-call).
    if !state.clock.is_virtual() {
        tokio::time::sleep(
            accepted
                .stages
                .queued
                .saturating_add(accepted.stages.processing),
        )
        .await;
    }
    let id = accepted.id.to_string();
    let Some(job) = state.job(&id) else {
        return not_found();
    };
    if let Some(error) = accepted.failure {
        return failed_body(&id, error, job.inference_time);
    }
    state.bill(key);
    rendered(&job).await
}

async fn upload(state: &State, req: Incoming) -> Reply {
    if let Err(r) = json_content_type(&req) {
        return r;
    }
    let limit = lock(&state.settings).max_body_bytes;
    let bytes = match read_body(limit, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request = match validate::upload_request(&bytes) {
        Ok(r) => r,
        Err(e) => return invalid(e),
    };
    drop(bytes);
    let mut decoded = Vec::with_capacity(request.data_urls.len());
    for (i, uri) in request.data_urls.iter().enumerate() {
        match render::decode_data_uri(uri) {
            Some((_, bytes)) => decoded.push(bytes),
            None => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("data_urls[{i}]: base64 data does not decode"),
                );
            }
        }
    }
    let file_urls = state
        .store_uploads(decoded)
        .into_iter()
        .map(|id| format!("{}/assets/{id}", state.base_url))
        .collect();
    json_response(
        StatusCode::OK,
        &UploadAssetResponse {
            file_urls,
            message: Some("Files uploaded successfully".to_string()),
        },
    )
}

/// The key's balance: all of it paid credits (the mock keeps no free
/// credits apart).
fn credits(state: &State, key: &str) -> Reply {
    json_response(
        StatusCode::OK,
        &CreditsResponse {
            credits: state.credits_of(key),
            free_credits: 0.0,
        },
    )
}

/// Every field the service sends, `null` where it has no value (the
/// generated type leaves an absent optional field out).
const ENTRY_FIELDS: [&str; 10] = [
    "request_id",
    "model_name",
    "model_status",
    "credits_deduction",
    "request_body",
    "generation_url",
    "latency_ms",
    "error",
    "created_at",
    "updated_at",
];

fn with_nulls(entry: &mut Value) {
    if let Some(fields) = entry.as_object_mut() {
        for f in ENTRY_FIELDS {
            fields.entry(f).or_insert(Value::Null);
        }
    }
}

fn history(state: &State, key: &str, query: &str) -> Reply {
    let page = HistoryQuery::parse(query).and_then(|q| state.history_page(key, &q));
    match page {
        Ok(page) => {
            let mut body = serde_json::to_value(&page).unwrap_or_default();
            if let Some(rows) = body.get_mut("data").and_then(Value::as_array_mut) {
                rows.iter_mut().for_each(with_nulls);
            }
            json_response(StatusCode::OK, &body)
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

fn history_entry(state: &State, key: &str, id: &str) -> Reply {
    match state.history_entry(key, id) {
        Some(entry) => {
            let mut body = serde_json::to_value(&entry).unwrap_or_default();
            with_nulls(&mut body);
            json_response(StatusCode::OK, &body)
        }
        None => error(
            StatusCode::NOT_FOUND,
            "request not found in this account's history",
        ),
    }
}
