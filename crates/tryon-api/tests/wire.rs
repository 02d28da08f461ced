//! Wire tests of the generated client against `httpmock` on loopback: each
//! operation sends the right method, path, `x-api-key` header and JSON body,
//! and decodes every documented response without panicking.

use futures::TryStreamExt as _;
use httpmock::Method::{GET, POST};
use httpmock::MockServer;
use serde_json::json;
use tryon_api::types::{
    ErrorBody, JobStatus, OutputFormat, ResultResponse, StatusResponse, SubmitResponse, TryOnInput,
    UploadAssetRequest,
};
use tryon_api::{Client, Error};

const KEY: &str = "sk-test-key";
const ID: &str = "5b9f0e62-8c51-4a64-9a3e-6ad1f2f0c9d4";

/// A generated client whose reqwest client carries the key, as the
/// hand-written layer does.
fn client(server: &MockServer) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut key = reqwest::header::HeaderValue::from_static(KEY);
    key.set_sensitive(true);
    headers.insert("x-api-key", key);
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("reqwest client");
    Client::new_with_client(&server.base_url(), http)
}

/// `GET /v2/requests/{id}/status`, which must succeed.
async fn get_status(server: &MockServer, id: &str) -> StatusResponse {
    client(server)
        .get_status()
        .request_id(id)
        .send()
        .await
        .expect("status")
        .into_inner()
}

/// `GET /v2/requests/{id}`, which must succeed.
async fn get_result(server: &MockServer, id: &str) -> ResultResponse {
    client(server)
        .get_result()
        .request_id(id)
        .send()
        .await
        .expect("result")
        .into_inner()
}

fn input() -> TryOnInput {
    TryOnInput::builder()
        .person_image("https://example.com/person.jpg")
        .garment_images(vec![
            "https://example.com/shirt.jpg".to_string(),
            "https://example.com/trousers.jpg".to_string(),
        ])
        .seed(Some(12345))
        .output_format(Some(OutputFormat::Webp))
        .output_quality(90)
        .try_into()
        .expect("valid input")
}

fn failed_body() -> serde_json::Value {
    json!({
        "status": "FAILED",
        "error": "Content blocked by the safety filter",
        "request_id": ID,
        "metrics": {"inference_time": 1.42}
    })
}

#[tokio::test]
async fn submit_sends_method_path_key_and_body() {
    let server = MockServer::start_async().await;
    let body = serde_json::to_value(input()).expect("serialize");
    insta::assert_json_snapshot!("submit_body", body);
    let mock = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/v2/p-image-try-on")
                .header("x-api-key", KEY)
                .header("content-type", "application/json")
                .json_body(body.clone());
            then.status(200).json_body(json!({
                "request_id": ID,
                "status": "QUEUED",
                "poll_url": format!("https://api.segmind.com/v1/requests/{ID}"),
                "status_url": format!("https://api.segmind.com/v2/requests/{ID}/status"),
                "response_url": format!("https://api.segmind.com/v2/requests/{ID}"),
            }));
        })
        .await;

    let resp = client(&server)
        .submit_try_on()
        .body(input())
        .send()
        .await
        .expect("submit succeeds");
    mock.assert_async().await;
    let submitted: SubmitResponse = resp.into_inner();
    assert_eq!(submitted.request_id, ID);
    assert_eq!(submitted.status, JobStatus::Queued);
    assert!(submitted.status_url.ends_with("/status"));
}

#[tokio::test]
async fn defaults_fill_in_when_only_required_fields_are_given() {
    let minimal: TryOnInput = serde_json::from_value(json!({
        "person_image": "https://example.com/p.jpg",
        "garment_images": ["https://example.com/g.jpg"]
    }))
    .expect("minimal body decodes");
    insta::assert_json_snapshot!("minimal_body", minimal);
}

#[tokio::test]
async fn status_decodes_queued_and_completed() {
    let server = MockServer::start_async().await;
    let queued = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("/v2/requests/{ID}/status"))
                .header("x-api-key", KEY);
            then.status(200)
                .json_body(json!({"status": "QUEUED", "request_id": ID, "metrics": {}}));
        })
        .await;
    let status: StatusResponse = get_status(&server, ID).await;
    queued.assert_async().await;
    assert_eq!(status.status, JobStatus::Queued);
    assert_eq!(status.metrics.and_then(|m| m.inference_time), None);

    let other = "0d5a7c70-0000-4000-8000-000000000001";
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("/v2/requests/{other}/status"));
            then.status(200).json_body(json!({
                "status": "COMPLETED", "request_id": other, "metrics": {"inference_time": 2.31}
            }));
        })
        .await;
    let done = get_status(&server, other).await;
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.metrics.and_then(|m| m.inference_time), Some(2.31));
}

#[tokio::test]
async fn result_decodes_output_and_null_error() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("/v2/requests/{ID}"))
                .header("x-api-key", KEY);
            then.status(200).json_body(json!({
                "status": "COMPLETED",
                "error": null,
                "metrics": {"inference_time": 2.31},
                "output": "https://cdn.example.com/out.png"
            }));
        })
        .await;
    let result: ResultResponse = get_result(&server, ID).await;
    mock.assert_async().await;
    assert_eq!(result.status, JobStatus::Completed);
    assert_eq!(result.error, None);
    assert_eq!(
        result.output.as_deref(),
        Some("https://cdn.example.com/out.png")
    );
}

/// Answers `method path` with `status`, `headers` and a JSON `body`.
async fn answer(
    server: &MockServer,
    method: httpmock::Method,
    path: String,
    status: u16,
    headers: &[(&'static str, &'static str)],
    body: serde_json::Value,
) {
    let headers = headers.to_vec();
    server
        .mock_async(move |when, then| {
            when.method(method).path(path);
            let mut then = then.status(status);
            for (name, value) in headers {
                then = then.header(name, value);
            }
            then.json_body(body);
        })
        .await;
}

/// The typed error a status poll of `ID` gets from `server`.
async fn status_error(server: &MockServer) -> tryon_api::ResponseValue<ErrorBody> {
    error_response(
        client(server)
            .get_status()
            .request_id(ID)
            .send()
            .await
            .expect_err("an error answer"),
    )
}

/// Unwraps an `ErrorResponse`, failing the test on any other variant.
fn error_response(err: Error<ErrorBody>) -> tryon_api::ResponseValue<ErrorBody> {
    match err {
        Error::ErrorResponse(resp) => resp,
        other => panic!("expected ErrorResponse, got {other:?}"),
    }
}

#[tokio::test]
async fn failed_job_is_a_typed_422_on_status_and_result() {
    let server = MockServer::start_async().await;
    for path in [
        format!("/v2/requests/{ID}/status"),
        format!("/v2/requests/{ID}"),
    ] {
        answer(&server, GET, path, 422, &[], failed_body()).await;
    }
    let api = client(&server);

    let status_err = error_response(api.get_status().request_id(ID).send().await.unwrap_err());
    let result_err = error_response(api.get_result().request_id(ID).send().await.unwrap_err());
    for resp in [status_err, result_err] {
        assert_eq!(resp.status().as_u16(), 422);
        let body = resp.into_inner();
        assert_eq!(body.status, Some(JobStatus::Failed));
        assert_eq!(body.error, "Content blocked by the safety filter");
        assert_eq!(body.request_id.as_deref(), Some(ID));
        assert_eq!(body.metrics.and_then(|m| m.inference_time), Some(1.42));
    }
}

#[tokio::test]
async fn unknown_or_expired_id_is_404_with_error_text() {
    let server = MockServer::start_async().await;
    let path = format!("/v2/requests/{ID}/status");
    let body = json!({"error": "request not found or expired"});
    answer(&server, GET, path, 404, &[], body).await;
    let resp = status_error(&server).await;
    assert_eq!(resp.status().as_u16(), 404);
    let body = resp.into_inner();
    assert_eq!(body.error, "request not found or expired");
    assert_eq!(body.status, None);
}

#[tokio::test]
async fn rate_limit_429_exposes_retry_after_header() {
    let server = MockServer::start_async().await;
    let path = format!("/v2/requests/{ID}/status");
    let body = json!({"error": "Too many requests"});
    answer(&server, GET, path, 429, &[("retry-after", "7")], body).await;
    let resp = status_error(&server).await;
    assert_eq!(resp.status().as_u16(), 429);
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok());
    assert_eq!(retry_after, Some("7"));
    assert_eq!(resp.into_inner().error, "Too many requests");
}

#[tokio::test]
async fn out_of_credits_406_on_submit() {
    let server = MockServer::start_async().await;
    let body = json!({"error": "Insufficient credits"});
    answer(&server, POST, "/v2/p-image-try-on".into(), 406, &[], body).await;
    let resp = error_response(
        client(&server)
            .submit_try_on()
            .body(input())
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(resp.status().as_u16(), 406);
    assert_eq!(resp.into_inner().error, "Insufficient credits");
}

#[tokio::test]
async fn body_that_is_not_json_is_a_clear_error() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/v2/requests/{ID}/status"));
            then.status(200)
                .header("content-type", "text/html")
                .body("<html>502 Bad Gateway</html>");
        })
        .await;
    let err = client(&server)
        .get_status()
        .request_id(ID)
        .send()
        .await
        .unwrap_err();
    match &err {
        Error::InvalidResponsePayload(bytes, e) => {
            assert_eq!(&bytes[..], b"<html>502 Bad Gateway</html>");
            assert!(e.is_syntax(), "a syntax error is expected, got {e}");
        }
        other => panic!("expected InvalidResponsePayload, got {other:?}"),
    }
    assert!(
        err.to_string()
            .to_lowercase()
            .contains("invalid response payload"),
        "message: {err}"
    );
}

#[tokio::test]
async fn undeclared_503_is_an_unexpected_response_with_its_status() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v2/p-image-try-on");
            then.status(503).body("overloaded");
        })
        .await;
    let err = submit_error(&server).await;
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
    assert!(matches!(err, Error::UnexpectedResponse(_)), "{err:?}");
}

#[tokio::test]
async fn sync_run_returns_image_bytes() {
    let server = MockServer::start_async().await;
    let png: &[u8] = b"\x89PNG\r\n\x1a\nnot-really-a-png";
    let body = serde_json::to_value(input()).expect("serialize");
    let mock = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/v1/p-image-try-on")
                .header("x-api-key", KEY)
                .json_body(body);
            then.status(200)
                .header("content-type", "image/png")
                .body(png);
        })
        .await;
    let resp = client(&server)
        .run_try_on_sync()
        .body(input())
        .send()
        .await
        .expect("sync run");
    mock.assert_async().await;
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/png")
    );
    let chunks: Vec<bytes::Bytes> = resp
        .into_inner()
        .into_inner()
        .try_collect()
        .await
        .expect("stream");
    assert_eq!(chunks.concat(), png);
}

#[tokio::test]
async fn upload_asset_sends_data_urls_and_decodes_file_urls() {
    let server = MockServer::start_async().await;
    let data_url = "data:image/png;base64,iVBORw0KGgo=";
    let request = UploadAssetRequest {
        data_urls: vec![data_url.try_into().expect("matches the spec's pattern")],
    };
    // The spec's `pattern` is enforced by the generated type: only data:
    // URIs with canonical base64 (padded, no stray bits) are representable.
    for bad in [
        "",
        "https://example.com/a.png",
        "data:image/png;base64,iVBORw0KGgp=",
        "data:image/png;base64,iVBORw0KGg",
    ] {
        assert!(
            tryon_api::types::UploadAssetRequestDataUrlsItem::try_from(bad).is_err(),
            "{bad:?} accepted"
        );
    }
    insta::assert_json_snapshot!("upload_body", request);
    let mock = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/upload-asset")
                .header("x-api-key", KEY)
                .json_body(json!({"data_urls": [data_url]}));
            then.status(200).json_body(json!({
                "file_urls": ["https://cdn.example.com/u/1.png"],
                "message": "Files uploaded successfully"
            }));
        })
        .await;
    let resp = client(&server)
        .upload_asset()
        .body(request)
        .send()
        .await
        .expect("upload")
        .into_inner();
    mock.assert_async().await;
    assert_eq!(resp.file_urls, vec!["https://cdn.example.com/u/1.png"]);
    assert_eq!(resp.message.as_deref(), Some("Files uploaded successfully"));
}

#[test]
fn every_example_in_the_contract_decodes() {
    let submit: SubmitResponse = serde_json::from_value(json!({
        "request_id": ID, "status": "QUEUED",
        "poll_url": "https://api.segmind.com/v1/requests/x",
        "status_url": "https://api.segmind.com/v2/requests/x/status",
        "response_url": "https://api.segmind.com/v2/requests/x"
    }))
    .expect("submit");
    assert_eq!(submit.status, JobStatus::Queued);
    let waiting: StatusResponse = serde_json::from_value(json!({
        "status": "PROCESSING", "request_id": ID, "metrics": {},
        "status_url": "https://api.segmind.com/v2/requests/x/status",
        "response_url": "https://api.segmind.com/v2/requests/x"
    }))
    .expect("status while waiting");
    assert_eq!(waiting.status, JobStatus::Processing);
    let failed: ErrorBody = serde_json::from_value(failed_body()).expect("failed body");
    assert_eq!(failed.status, Some(JobStatus::Failed));
    let plain: ErrorBody =
        serde_json::from_value(json!({"error": "Unauthorized"})).expect("plain error");
    assert_eq!(plain.error, "Unauthorized");
    // A status the spec does not know is a decode error, not a silent default.
    assert!(serde_json::from_value::<StatusResponse>(json!({"status": "PAUSED"})).is_err());
}

/// A submit to `server` that must fail.
async fn submit_error(server: &MockServer) -> Error<ErrorBody> {
    client(server)
        .submit_try_on()
        .body(input())
        .send()
        .await
        .expect_err("the submit fails")
}

/// The reason the answer reader gave for a body error.
fn unreadable(err: &Error<ErrorBody>) -> tryon_api::UnreadableAnswer {
    match err {
        Error::ResponseBodyError(e) => tryon_api::UnreadableAnswer::find(e)
            .cloned()
            .unwrap_or_else(|| panic!("no reason in {e:?}")),
        other => panic!("expected ResponseBodyError, got {other:?}"),
    }
}

#[tokio::test]
async fn an_error_page_that_is_not_the_services_error_body_keeps_its_status() {
    // Without the answer reader this was InvalidResponsePayload, which has
    // no status: a gateway's 502 page looked like an unreadable 200.
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v2/p-image-try-on");
            then.status(502)
                .header("content-type", "text/html")
                .header("retry-after", "3")
                .body("<html>502 Bad Gateway</html>");
        })
        .await;
    let err = submit_error(&server).await;
    match unreadable(&err) {
        tryon_api::UnreadableAnswer::NotServiceError {
            status,
            headers,
            body,
        } => {
            assert_eq!(status, 502);
            assert_eq!(headers["retry-after"], "3");
            assert_eq!(&body[..], b"<html>502 Bad Gateway</html>");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_json_answer_over_the_cap_is_not_read() {
    let server = MockServer::start_async().await;
    let big = format!(
        r#"{{"status":"QUEUED","request_id":"{ID}","pad":"{}"}}"#,
        "x".repeat(tryon_api::MAX_JSON_BYTES)
    );
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/v2/requests/{ID}/status"));
            then.status(200)
                .header("content-type", "application/json")
                .body(big);
        })
        .await;
    let err = client(&server)
        .get_status()
        .request_id(ID)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        unreadable(&err),
        tryon_api::UnreadableAnswer::TooLarge {
            operation: "get_status",
            status: 200,
            limit: tryon_api::MAX_JSON_BYTES,
        }
    );
    assert!(
        unreadable(&err)
            .to_string()
            .contains("over 1048576 bytes, the most a JSON answer may hold"),
        "{err}"
    );
}
