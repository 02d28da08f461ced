//! The account's records: the credit balance, the request history (rows
//! per key, landing, paging, the date window, filters, sorting), outputs
//! kept past the status retention, and the control calls that shape them.
#![allow(
    clippy::unwrap_used,
    clippy::float_cmp,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tryon_mock::{Credits, FailRule, Fault, FaultRoute, JobMatch, MockServer};

const HISTORY: &str = "/inference-request/request-history";

async fn get_with_key(key: &str, url: &str) -> (u16, Value) {
    let r = client()
        .get(url)
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

async fn credits(uri: &str, key: &str) -> Value {
    let (code, v) = get_with_key(key, &format!("{uri}/v1/get-user-credits")).await;
    assert_eq!(code, 200, "{v}");
    v
}

async fn history(uri: &str, key: &str, query: &str) -> (u16, Value) {
    get_with_key(key, &format!("{uri}{HISTORY}?{query}")).await
}

async fn rows(uri: &str, query: &str) -> Vec<Value> {
    let (code, v) = history(uri, KEY, query).await;
    assert_eq!(code, 200, "{v}");
    v["data"].as_array().unwrap().clone()
}

async fn entry(uri: &str, key: &str, id: &str) -> (u16, Value) {
    get_with_key(key, &format!("{uri}{HISTORY}/{id}")).await
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn the_balance_falls_with_each_accepted_job_and_a_short_one_is_refused() {
    let server = MockServer::builder()
        .virtual_time()
        .credits(Credits::with_balance(0.05))
        .start()
        .await;
    let uri = server.uri();
    let before = credits(&uri, KEY).await;
    assert_eq!(before, json!({"credits": 0.05, "free-credits": 0.0}));
    // 0.015 + 0.008 a job of two garments.
    submit_id(&uri, &body(2)).await;
    submit_id(&uri, &body(2)).await;
    let after = credits(&uri, KEY).await["credits"].as_f64().unwrap();
    assert!(close(after, 0.05 - 2.0 * 0.023), "{after}");
    assert_eq!(submit_status(&uri, &body(2)).await, 406);
    assert_eq!(
        credits(&uri, KEY).await["credits"].as_f64().unwrap(),
        after,
        "a refused job costs nothing"
    );
    // Another key has its own balance.
    assert_eq!(credits(&uri, "sk-other").await["credits"], 0.05);
    server.verify();
}

#[tokio::test]
async fn without_credits_configured_the_balance_is_unmetered() {
    let server = MockServer::builder().virtual_time().start().await;
    submit_id(&server.uri(), &body(1)).await;
    assert_eq!(
        credits(&server.uri(), KEY).await,
        json!({"credits": 1_000_000.0, "free-credits": 0.0})
    );
    let r = get_without_key(&format!("{}/v1/get-user-credits", server.uri())).await;
    assert_eq!(r.status(), 401, "the balance needs the key");
}

#[tokio::test]
async fn every_accepted_job_has_a_row_with_its_body_cost_state_and_output() {
    let server = MockServer::builder()
        .virtual_time()
        .stages(Duration::from_secs(1), Duration::from_secs(2))
        .fail(FailRule::new(JobMatch::Seed(13), "Content blocked"))
        .start()
        .await;
    let uri = server.uri();
    let mut sent = body(3);
    sent["prompt"] = json!("a red coat");
    let id = submit_id(&uri, &sent).await;
    let mut failing = body(1);
    failing["seed"] = json!(13);
    let failed = submit_id(&uri, &failing).await;

    let listed = rows(&uri, "").await;
    assert_eq!(ids(&listed), [failed.clone(), id.clone()], "newest first");
    let row = &listed[1];
    assert_eq!(row["model_name"], "p-image-try-on");
    assert_eq!(row["model_status"], "PENDING");
    assert_eq!(row["request_body"], sent, "the body as sent");
    assert!(close(
        row["credits_deduction"].as_f64().unwrap(),
        0.015 + 2.0 * 0.008
    ));
    assert_eq!(row["generation_url"], Value::Null);
    assert_eq!(row["latency_ms"], Value::Null);
    assert_eq!(
        row["error"],
        Value::Null,
        "every field is sent, null when empty"
    );
    let created = row["created_at"].as_str().unwrap();
    assert!(created.parse::<jiff::Timestamp>().is_ok(), "{created}");

    server.advance(Duration::from_secs(3));
    let (code, done) = entry(&uri, KEY, &id).await;
    assert_eq!(code, 200, "{done}");
    assert_eq!(done["model_status"], "COMPLETED");
    assert_eq!(done["latency_ms"], 2000.0);
    let url = done["generation_url"].as_str().unwrap();
    let image = get_without_key(url).await;
    assert_eq!(image.status(), 200, "the output needs no key");
    assert_eq!(image.headers()["content-type"], "image/png");
    let updated: jiff::Timestamp = done["updated_at"].as_str().unwrap().parse().unwrap();
    let created: jiff::Timestamp = created.parse().unwrap();
    assert_eq!(
        updated.duration_since(created),
        jiff::SignedDuration::from_secs(3)
    );

    let (_, failed_row) = entry(&uri, KEY, &failed).await;
    assert_eq!(failed_row["model_status"], "FAILED");
    assert_eq!(failed_row["error"], "Content blocked");
    assert_eq!(failed_row["generation_url"], Value::Null);
    server.verify();
}

#[tokio::test]
async fn inline_images_are_kept_as_their_hash() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    let person = png_data_uri(8, 8, [1, 2, 3]);
    let id = submit_id(
        &uri,
        &json!({"person_image": person, "garment_images": ["https://example.com/g.png"]}),
    )
    .await;
    let (_, row) = entry(&uri, KEY, &id).await;
    let kept = row["request_body"]["person_image"].as_str().unwrap();
    let bytes = tryon_api::body::decode_data_uri(&person).unwrap().1;
    assert_eq!(
        kept,
        format!("sha256:{}", tryon_api::body::sha256_hex(&bytes))
    );
    assert_eq!(
        row["request_body"]["garment_images"][0],
        "https://example.com/g.png"
    );
}

#[tokio::test]
async fn a_row_lands_after_the_delay_absent_or_partial_before() {
    let server = MockServer::builder()
        .virtual_time()
        .history_landing(Duration::from_secs(30), false)
        .start()
        .await;
    let uri = server.uri();
    let id = submit_id(&uri, &body(1)).await;
    assert!(rows(&uri, "").await.is_empty());
    assert_eq!(entry(&uri, KEY, &id).await.0, 404);
    server.advance(Duration::from_secs(29));
    assert_eq!(entry(&uri, KEY, &id).await.0, 404);
    server.advance(Duration::from_secs(1));
    assert_eq!(ids(&rows(&uri, "").await), [id.clone()]);
    assert_eq!(entry(&uri, KEY, &id).await.0, 200);

    // Partial: listed before it lands, with nulls; the filters skip it.
    let r = client()
        .put(format!("{uri}/__mock/history_landing"))
        .json(&json!({"delay": 10, "partial": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"delay": 10.0, "partial": true})
    );
    let late = submit_id(&uri, &body(1)).await;
    let (code, row) = entry(&uri, KEY, &late).await;
    assert_eq!(code, 200);
    assert_eq!(row["model_status"], Value::Null);
    assert_eq!(row["request_body"], Value::Null);
    assert_eq!(row["credits_deduction"], Value::Null);
    assert!(row["created_at"].is_string());
    assert_eq!(rows(&uri, "").await.len(), 2);
    assert_eq!(ids(&rows(&uri, "status=COMPLETED").await), [id.clone()]);
    server.advance(Duration::from_secs(10));
    assert_eq!(entry(&uri, KEY, &late).await.1["model_status"], "COMPLETED");
    server.verify();
}

#[tokio::test]
async fn pages_filters_and_sorting() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    let mut made = Vec::new();
    for garments in [1, 3, 2, 1, 2] {
        made.push(submit_id(&uri, &body(garments)).await);
        server.advance(Duration::from_secs(1));
    }
    let (code, page) = history(&uri, KEY, "per_page=2&page=2").await;
    assert_eq!(code, 200);
    assert_eq!(
        (page["page"].as_u64(), page["per_page"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(page["total"], 5);
    assert_eq!(
        ids(page["data"].as_array().unwrap()),
        [made[2].clone(), made[1].clone()]
    );
    let (_, last) = history(&uri, KEY, "per_page=2&page=3").await;
    assert_eq!(ids(last["data"].as_array().unwrap()), [made[0].clone()]);
    let (_, beyond) = history(&uri, KEY, "per_page=2&page=4").await;
    assert_eq!(beyond["data"], json!([]));
    assert_eq!(beyond["total"], 5);

    let asc = rows(&uri, "sort_order=asc").await;
    assert_eq!(ids(&asc), made);
    let by_cost = rows(&uri, "sort_by=credits_deduction&sort_order=asc").await;
    let costs: Vec<f64> = by_cost
        .iter()
        .map(|r| r["credits_deduction"].as_f64().unwrap())
        .collect();
    assert!(costs.windows(2).all(|w| w[0] <= w[1]), "{costs:?}");
    assert_eq!(
        ids(&by_cost)[..2],
        [made[0].clone(), made[3].clone()],
        "ties in the order they were made"
    );
    let by_cost_desc = rows(&uri, "sort_by=credits_deduction").await;
    assert_eq!(ids(&by_cost_desc)[0], made[1], "the costliest first");

    assert_eq!(rows(&uri, "model_name=image-try").await.len(), 5);
    assert!(rows(&uri, "model_name=flux").await.is_empty());
    assert_eq!(rows(&uri, "status=COMPLETED").await.len(), 5);
    assert!(rows(&uri, "status=FAILED").await.is_empty());
    server.verify();
}

#[tokio::test]
async fn bad_queries_are_400_naming_the_parameter() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    for (query, names) in [
        ("per_page=0", "per_page: \"0\" given, must be from 1 to 100"),
        ("per_page=101", "per_page"),
        ("page=0", "page"),
        ("page=-1", "page"),
        (
            "from_date=2026-13-01",
            "from_date: \"2026-13-01\" is not a calendar date",
        ),
        (
            "to_date=26-1-1",
            "to_date: \"26-1-1\" given, a date YYYY-MM-DD required",
        ),
        (
            "status=DONE",
            "status: \"DONE\" given, one of PENDING, COMPLETED, FAILED required",
        ),
        ("sort_by=size", "sort_by"),
        ("sort_order=up", "sort_order"),
        (
            "from_date=2026-01-10&to_date=2026-01-01",
            "from_date: 2026-01-10 is after to_date",
        ),
        (
            "from_date=2026-01-01&to_date=2026-02-01",
            "spans more than 31 days, at most 31 allowed",
        ),
    ] {
        let (code, v) = history(&uri, KEY, query).await;
        assert_eq!(code, 400, "{query}: {v}");
        let text = v["error"].as_str().unwrap();
        assert!(text.contains(names), "{query}: {text}");
    }
    // 31 days is the most a window spans.
    let (code, _) = history(&uri, KEY, "from_date=2026-01-01&to_date=2026-01-31").await;
    assert_eq!(code, 200);
    server.verify();
}

#[tokio::test]
async fn the_default_window_is_the_last_seven_days_and_a_lookup_has_no_window() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    let id = submit_id(&uri, &body(1)).await;
    let (_, row) = entry(&uri, KEY, &id).await;
    let created: jiff::Timestamp = row["created_at"].as_str().unwrap().parse().unwrap();
    let day = jiff::tz::Offset::UTC.to_datetime(created).date();
    server.advance(Duration::from_hours(8 * 24));
    assert!(
        rows(&uri, "").await.is_empty(),
        "8 days on, outside the default window"
    );
    assert_eq!(
        ids(&rows(&uri, &format!("from_date={day}")).await),
        [id.clone()]
    );
    assert_eq!(
        ids(&rows(&uri, &format!("from_date={day}&to_date={day}")).await),
        [id.clone()]
    );
    assert_eq!(entry(&uri, KEY, &id).await.0, 200, "by id, of any age");
}

#[tokio::test]
async fn another_keys_records_are_not_found() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    let mine = submit_id(&uri, &body(1)).await;
    let theirs = post_with_key("sk-other", &uri, "/v2/p-image-try-on", &body(1))
        .await
        .json::<Value>()
        .await
        .unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ids(&rows(&uri, "").await), [mine.clone()]);
    assert_eq!(entry(&uri, KEY, &theirs).await.0, 404);
    assert_eq!(entry(&uri, "sk-other", &mine).await.0, 404);
    assert_eq!(entry(&uri, KEY, "not-a-uuid").await.0, 404);
    let (code, v) = history(&uri, "sk-other", "").await;
    assert_eq!(
        (code, ids(v["data"].as_array().unwrap())),
        (200, vec![theirs])
    );
    assert_eq!(
        get_without_key(&format!("{uri}{HISTORY}")).await.status(),
        401
    );
}

#[tokio::test]
async fn outputs_outlive_the_status_retention_until_the_output_retention() {
    let server = MockServer::builder()
        .virtual_time()
        .retention(Duration::from_hours(1))
        .output_retention(Duration::from_hours(48))
        .start()
        .await;
    let uri = server.uri();
    let id = submit_id(&uri, &body(1)).await;
    server.advance(Duration::from_secs(5));
    let output = result_of(&uri, &id).await.1["output"]
        .as_str()
        .unwrap()
        .to_string();
    let first = get(&output).await.bytes().await.unwrap();
    server.advance(Duration::from_hours(2));
    assert_eq!(status_of(&uri, &id).await.0, 404, "the status has expired");
    let (_, row) = entry(&uri, KEY, &id).await;
    assert_eq!(row["generation_url"], output.as_str());
    let kept = get_without_key(&output).await;
    assert_eq!(kept.status(), 200);
    assert_eq!(kept.bytes().await.unwrap(), first, "the same output");
    server.advance(Duration::from_hours(47));
    assert_eq!(
        get(&output).await.status(),
        404,
        "past the output retention"
    );
    assert_eq!(entry(&uri, KEY, &id).await.0, 200, "the record stays");
}

#[tokio::test]
async fn placed_rows_list_under_their_key_and_bad_ones_name_the_field() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    let look_alike = json!({"person_image": "https://example.com/person.jpg", "garment_images": ["https://example.com/shirt.jpg"], "seed": 2});
    let r = control_post(
        &uri,
        "/__mock/history",
        &json!([
            {"key": KEY, "request_body": look_alike, "age": 60, "credits_deduction": 0.015},
            {"key": KEY, "status": "PENDING", "lands_in": 5},
            {"key": "sk-other", "status": "FAILED", "error": "boom"},
        ]),
    )
    .await;
    assert_eq!(r.status(), 200);
    let placed = r.json::<Value>().await.unwrap()["placed"].clone();
    let first = placed[0]["request_id"].as_str().unwrap().to_string();
    let listed = rows(&uri, "").await;
    assert_eq!(
        ids(&listed),
        [first.clone()],
        "the pending row lands in 5 s"
    );
    assert_eq!(listed[0]["request_body"], look_alike);
    assert_eq!(listed[0]["model_status"], "COMPLETED");
    server.advance(Duration::from_secs(5));
    let both = rows(&uri, "").await;
    assert_eq!(both.len(), 2);
    assert_eq!(both[0]["model_status"], "PENDING");
    assert_eq!(billed(&uri).await, 0, "placed rows bill nothing");
    // Any time, as another client's clock would have it.
    let dated = server
        .place_history(json!({"key": KEY, "created_at": "2026-01-02T03:04:05Z"}))
        .unwrap();
    let (_, row) = entry(&uri, KEY, &dated).await;
    assert_eq!(row["created_at"], "2026-01-02T03:04:05Z");

    for (bad, names) in [
        (json!({"key": ""}), "history[0].key"),
        (json!({"key": KEY, "age": -1}), "history[0].age"),
        (
            json!({"key": KEY, "request_id": "X"}),
            "history[0].request_id",
        ),
        (
            json!({"key": KEY, "request_id": first}),
            "already in the history",
        ),
        (json!({"key": KEY, "colour": "red"}), "unknown field"),
        (
            json!({"key": KEY, "created_at": "yesterday"}),
            "history[0].created_at",
        ),
    ] {
        let r = control_post(&uri, "/__mock/history", &bad).await;
        let (code, text) = error_of(r).await;
        assert_eq!(code, 422, "{bad}");
        assert!(text.contains(names), "{bad}: {text}");
    }
    // All or none: a good row before a bad one is not placed either.
    let before = rows(&uri, "").await.len();
    let r = control_post(
        &uri,
        "/__mock/history",
        &json!([{"key": KEY}, {"key": KEY, "age": -1}]),
    )
    .await;
    let (code, text) = error_of(r).await;
    assert_eq!(code, 422);
    assert!(text.starts_with("history[1].age"), "{text}");
    assert_eq!(rows(&uri, "").await.len(), before, "nothing placed");
    let r = client()
        .put(format!("{uri}/__mock/history_landing"))
        .json(&json!({"delay": -3}))
        .send()
        .await
        .unwrap();
    let (code, text) = error_of(r).await;
    assert_eq!(code, 422);
    assert!(text.starts_with("delay: -3 given"), "{text}");
    server.verify();
}

async fn billed(uri: &str) -> u64 {
    control_get(uri, "/__mock/billing").await["billed_submits"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn faults_reach_the_account_routes() {
    let server = MockServer::builder()
        .virtual_time()
        .fault(Fault::server_error(FaultRoute::History, 503).times(1))
        .fault(Fault::rate_limited(FaultRoute::Credits).times(1))
        .start()
        .await;
    let uri = server.uri();
    let id = submit_id(&uri, &body(1)).await;
    assert_eq!(entry(&uri, KEY, &id).await.0, 503);
    assert_eq!(entry(&uri, KEY, &id).await.0, 200);
    let (code, _) = get_with_key(KEY, &format!("{uri}/v1/get-user-credits")).await;
    assert_eq!(code, 429);
    assert_eq!(credits(&uri, KEY).await["free-credits"], 0.0);
}

#[tokio::test]
async fn reset_forgets_the_history() {
    let server = MockServer::builder().virtual_time().start().await;
    let uri = server.uri();
    let id = submit_id(&uri, &body(1)).await;
    server.reset();
    assert_eq!(entry(&uri, KEY, &id).await.0, 404);
    assert!(rows(&uri, "").await.is_empty());
}
