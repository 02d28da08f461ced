//! The account's own records: the credit balance, the request history
//! (paged, de-duplicated, bounded) and one history entry, against httpmock
//! (a scripted server for the 429 that is retried), in virtual time.
#![allow(clippy::unwrap_used, clippy::float_cmp, missing_docs)]

mod common;

use std::time::Duration;

use common::{KEY, Reply, builder, serve};
use futures::StreamExt as _;
use httpmock::prelude::*;
use jiff::civil::date;
use serde_json::{Value, json};
use tryon_client::test_util::VirtualClock;
use tryon_client::{
    Clock as _, DEFAULT_HISTORY_BASE_URL, Error, HistoryEntry, HistoryQuery, HistoryStatus,
};

const HISTORY: &str = "/inference-request/request-history";

fn row(id: &str, cost: f64) -> Value {
    json!({
        "request_id": id,
        "model_name": "p-image-try-on",
        "model_status": "COMPLETED",
        "credits_deduction": cost,
        "request_body": {"seed": 1},
        "generation_url": format!("https://cdn.example/{id}.png"),
        "latency_ms": 2310.0,
        "error": null,
        "created_at": "2026-03-02T10:00:00Z",
        "updated_at": "2026-03-02T10:00:03Z",
    })
}

fn page(rows: &[Value], n: u32, per_page: u32, total: Option<u64>) -> Value {
    let mut v = json!({"data": rows, "page": n, "per_page": per_page});
    if let Some(t) = total {
        v["total"] = json!(t);
    }
    v
}

/// A client whose API and history hosts are both `server`.
fn on(server: &MockServer, clock: &VirtualClock) -> tryon_client::Client {
    builder(&server.base_url(), clock)
        .history_base_url(server.base_url())
        .build()
        .unwrap()
}

async fn collect(
    client: &tryon_client::Client,
    query: &HistoryQuery,
) -> Vec<tryon_client::Result<HistoryEntry>> {
    client.history(query).collect().await
}

fn ids(items: &[tryon_client::Result<HistoryEntry>]) -> Vec<&str> {
    items
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|e| e.request_id.as_str())
        .collect()
}

#[tokio::test]
async fn credits_are_read_from_the_api_host_with_the_key() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/v1/get-user-credits")
                .header("x-api-key", KEY);
            then.status(200)
                .json_body(json!({"credits": 1.25, "free-credits": 0.0185}));
        })
        .await;
    let clock = VirtualClock::new();
    let credits = on(&server, &clock).credits().await.unwrap();
    assert_eq!(credits.credits, 1.25);
    assert_eq!(credits.free_credits, 0.0185);
    assert!((credits.total() - 1.2685).abs() < 1e-12);
    m.assert_calls_async(1).await;
}

#[tokio::test]
async fn history_pages_to_the_short_page_and_dedupes_requests() {
    let server = MockServer::start_async().await;
    let q = |when: httpmock::When, n: &str| {
        when.method(GET)
            .path(HISTORY)
            .header("x-api-key", KEY)
            .query_param("page", n)
            .query_param("per_page", "2")
            .query_param("from_date", "2026-03-01")
            .query_param("to_date", "2026-03-31")
            .query_param("status", "COMPLETED")
    };
    let p1 = server
        .mock_async(|when, then| {
            q(when, "1");
            then.status(200)
                .json_body(page(&[row("a", 0.015), row("b", 0.023)], 1, 2, None));
        })
        .await;
    // `b` had two outputs: its second row is on the next page.
    let p2 = server
        .mock_async(|when, then| {
            q(when, "2");
            then.status(200)
                .json_body(page(&[row("b", 0.023), row("c", 0.015)], 2, 2, None));
        })
        .await;
    let p3 = server
        .mock_async(|when, then| {
            q(when, "3");
            then.status(200)
                .json_body(page(&[row("d", 0.031)], 3, 2, None));
        })
        .await;
    let p4 = server
        .mock_async(|when, then| {
            q(when, "4");
            then.status(500);
        })
        .await;
    let clock = VirtualClock::new();
    let query = HistoryQuery::new()
        .since(date(2026, 3, 1))
        .until(date(2026, 3, 31))
        .status(HistoryStatus::Completed)
        .per_page(2);
    let items = collect(&on(&server, &clock), &query).await;
    assert_eq!(ids(&items), ["a", "b", "c", "d"]);
    assert!(items.iter().all(Result::is_ok));
    let b = items[1].as_ref().unwrap();
    assert_eq!(b.credits_deduction, Some(0.023));
    assert_eq!(
        b.generation_url.as_deref(),
        Some("https://cdn.example/b.png")
    );
    assert_eq!(b.request_body.as_ref().unwrap()["seed"], json!(1));
    p1.assert_calls_async(1).await;
    p2.assert_calls_async(1).await;
    p3.assert_calls_async(1).await;
    p4.assert_calls_async(0).await;
}

#[tokio::test]
async fn history_stops_at_the_total_and_at_max_rows() {
    let server = MockServer::start_async().await;
    let full = |n: u32| {
        let rows: Vec<Value> = (0..3).map(|i| row(&format!("p{n}-{i}"), 0.01)).collect();
        page(&rows, n, 3, Some(6))
    };
    let mut pages = Vec::new();
    for n in 1..=3u32 {
        let body = full(n);
        pages.push(
            server
                .mock_async(move |when, then| {
                    when.method(GET)
                        .path(HISTORY)
                        .query_param("page", n.to_string());
                    then.status(200).json_body(body);
                })
                .await,
        );
    }
    let clock = VirtualClock::new();
    let client = on(&server, &clock);
    // `total` 6 is reached at the end of page 2: page 3 is never asked.
    let items = collect(&client, &HistoryQuery::new().per_page(3)).await;
    assert_eq!(items.len(), 6);
    assert!(items.iter().all(Result::is_ok));
    pages[0].assert_calls_async(1).await;
    pages[1].assert_calls_async(1).await;
    pages[2].assert_calls_async(0).await;
    // 4 requests: the second page is read, and its last two rows dropped.
    let items = collect(&client, &HistoryQuery::new().per_page(3).max_rows(4)).await;
    assert_eq!(ids(&items), ["p1-0", "p1-1", "p1-2", "p2-0"]);
    pages[0].assert_calls_async(2).await;
    pages[1].assert_calls_async(2).await;
    pages[2].assert_calls_async(0).await;
}

#[tokio::test]
async fn an_endless_server_is_stopped_by_the_page_bound() {
    let server = MockServer::start_async().await;
    // Every page full, the same rows, no total: it never ends by itself.
    let endless = server
        .mock_async(|when, then| {
            when.method(GET).path(HISTORY);
            then.status(200)
                .json_body(page(&[row("x", 0.01), row("y", 0.01)], 1, 2, None));
        })
        .await;
    let clock = VirtualClock::new();
    let client = on(&server, &clock);
    // max_rows 10 at 2 a page: twice the 5 pages needed.
    let items = collect(&client, &HistoryQuery::new().per_page(2).max_rows(10)).await;
    assert_eq!(ids(&items), ["x", "y"]);
    assert_eq!(items.len(), 3);
    let Some(Err(Error::InvalidResponse { problem, .. })) = items.last() else {
        panic!("the cut is said: {items:?}");
    };
    assert!(problem.contains("after 10 pages"), "{problem}");
    endless.assert_calls_async(10).await;
    // An explicit bound.
    let items = collect(&client, &HistoryQuery::new().per_page(2).max_pages(3)).await;
    assert!(items.last().unwrap().is_err());
    endless.assert_calls_async(13).await;
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_through_the_executor() {
    let script = serve(|req, n| {
        assert_eq!(req.header("x-api-key"), Some(KEY));
        match (req.path.as_str(), n) {
            ("/v1/get-user-credits", 0) => common::too_many("slow down", 3),
            ("/v1/get-user-credits", _) => {
                Reply::Json(200, json!({"credits": 2.0, "free-credits": 0.5}))
            }
            (p, 0) if p.starts_with(HISTORY) => Reply::JsonWith(
                503,
                json!({"error": "busy"}),
                vec![("retry-after", "2".into())],
            ),
            (p, _) if p.starts_with(HISTORY) => Reply::Json(
                200,
                json!({"data": [row("r1", 0.015)], "page": 1, "per_page": 100}),
            ),
            _ => Reply::Json(404, json!({"error": "no"})),
        }
    })
    .await;
    let clock = VirtualClock::new();
    let client = builder(&script.url, &clock)
        .history_base_url(script.url.as_str())
        .build()
        .unwrap();
    let credits = client.credits().await.unwrap();
    assert_eq!(credits.total(), 2.5);
    assert_eq!(script.count("GET", "/v1/get-user-credits"), 2);
    assert!(clock.now() >= Duration::from_secs(3), "{:?}", clock.now());
    // The 429 taught the limiter a budget; a 503's Retry-After is honoured too.
    let before = clock.now();
    let items = collect(&client, &HistoryQuery::new()).await;
    assert_eq!(ids(&items), ["r1"]);
    let history_calls = script
        .requests()
        .iter()
        .filter(|r| r.path.starts_with(HISTORY))
        .count();
    assert_eq!(history_calls, 2);
    assert!(clock.now().saturating_sub(before) >= Duration::from_secs(2));
}

#[tokio::test]
async fn an_unknown_entry_is_none_and_a_known_one_is_read() {
    let server = MockServer::start_async().await;
    let known = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("{HISTORY}/known-id"))
                .header("x-api-key", KEY);
            then.status(200).json_body(row("known-id", 0.015));
        })
        .await;
    let unknown = server
        .mock_async(|when, then| {
            when.method(GET).path(format!("{HISTORY}/other-id"));
            then.status(404).json_body(json!({"error": "not found"}));
        })
        .await;
    let clock = VirtualClock::new();
    let client = on(&server, &clock);
    let entry = client.history_entry("known-id").await.unwrap().unwrap();
    assert_eq!(entry.request_id, "known-id");
    assert_eq!(entry.model_status.as_deref(), Some("COMPLETED"));
    assert!(client.history_entry("other-id").await.unwrap().is_none());
    known.assert_calls_async(1).await;
    unknown.assert_calls_async(1).await;
    // A 404 is not retried; an empty id is refused unsent.
    assert!(matches!(
        client.history_entry(" ").await,
        Err(Error::Invalid { .. })
    ));
}

#[tokio::test]
async fn the_key_goes_to_the_history_host_only_when_it_is_the_configured_one() {
    let api = MockServer::start_async().await;
    let history = MockServer::start_async().await;
    let elsewhere = MockServer::start_async().await;
    let anything_elsewhere = elsewhere
        .mock_async(|_when, then| {
            then.status(200).json_body(json!({"data": []}));
        })
        .await;
    let history_on_api = api
        .mock_async(|when, then| {
            when.method(GET).path_prefix(HISTORY);
            then.status(200).json_body(json!({"data": []}));
        })
        .await;
    let listed = history
        .mock_async(|when, then| {
            when.method(GET).path(HISTORY).header("x-api-key", KEY);
            then.status(200)
                .json_body(page(&[row("h1", 0.01)], 1, 100, Some(1)));
        })
        .await;
    // The history host sends the entry read to another origin: not followed.
    let redirected = history
        .mock_async(|when, then| {
            when.method(GET).path(format!("{HISTORY}/h1"));
            then.status(302)
                .header("location", format!("{}{HISTORY}/h1", elsewhere.base_url()));
        })
        .await;
    let clock = VirtualClock::new();
    let client = builder(&api.base_url(), &clock)
        .history_base_url(history.base_url())
        .build()
        .unwrap();
    assert_eq!(
        client.history_base_url().as_str().trim_end_matches('/'),
        history.base_url()
    );
    let items = collect(&client, &HistoryQuery::new()).await;
    assert_eq!(ids(&items), ["h1"]);
    assert!(client.history_entry("h1").await.is_err());
    listed.assert_calls_async(1).await;
    redirected.assert_calls_async(1).await;
    history_on_api.assert_calls_async(0).await;
    anything_elsewhere.assert_calls_async(0).await;
    // Never shown.
    let shown = format!("{client:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains(&history.base_url()), "{shown}");
    // Not configured: Segmind's own history host, not the API's base URL.
    let default = builder(&api.base_url(), &clock).build().unwrap();
    assert_eq!(
        default.history_base_url().as_str().trim_end_matches('/'),
        DEFAULT_HISTORY_BASE_URL
    );
    // A history URL in clear text to a remote host is refused.
    let err = builder(&api.base_url(), &clock)
        .history_base_url("http://history.example")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("history_base_url"), "{err}");
}

#[tokio::test]
async fn bad_queries_are_refused_before_anything_is_sent() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|_when, then| {
            then.status(200).json_body(json!({"data": []}));
        })
        .await;
    let clock = VirtualClock::new();
    let client = on(&server, &clock);
    let cases = [
        (
            HistoryQuery::new()
                .since(date(2026, 1, 1))
                .until(date(2026, 2, 1)),
            "until",
            "at most 31 days",
        ),
        (
            HistoryQuery::new()
                .since(date(2026, 3, 5))
                .until(date(2026, 3, 4)),
            "since",
            "is after until",
        ),
        (HistoryQuery::new().per_page(0), "per_page", "1 to 100"),
        (HistoryQuery::new().per_page(101), "per_page", "1 to 100"),
        (HistoryQuery::new().max_rows(0), "max_rows", "at least 1"),
        // `since` alone runs to today (the virtual clock's: 2023-11-14).
        (
            HistoryQuery::new().since(date(2023, 10, 1)),
            "since",
            "at most 31 days",
        ),
    ];
    for (query, field, limit) in cases {
        let items = collect(&client, &query).await;
        assert_eq!(items.len(), 1, "{query:?}");
        match &items[0] {
            Err(e @ Error::Invalid { field: f, .. }) => {
                assert_eq!(f, field, "{e}");
                assert!(e.to_string().contains(limit), "{e}");
            }
            other => panic!("{query:?}: {other:?}"),
        }
        assert!(query.validate().is_err(), "{query:?}");
    }
    any.assert_calls_async(0).await;
    assert!(
        tryon_client::parse_history_date("until", "2026-13-01")
            .unwrap_err()
            .to_string()
            .starts_with("until: ")
    );
}
