//! The control API under `/__mock/`: one table of routes, each handler a
//! thin layer over the same [`State`] methods [`MockServer`](crate::MockServer)
//! calls. Every value is checked (422 naming the field and the bound).

use std::time::Duration;

use bytes::Bytes;
use hyper::header;
use hyper::{Method, Request, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Reply, error, json_response, method_not_allowed, read_body};
use crate::config::{FailRule, RateLimitRule, ResultBeforeCompletion};
use crate::fault::Fault;
use crate::state::{PlacedRow, State};

/// Largest control request body: 1 MiB.
const MAX_CONTROL_BODY: usize = 1024 * 1024;

/// What a control handler gets: the query string and the body.
struct Call<'a> {
    query: &'a str,
    body: &'a Bytes,
}

type Handler = fn(&State, &Call<'_>) -> Reply;

/// Every control route: method, path, handler. The only list; the control
/// document (`CONTROL_SPEC`) documents exactly these (a unit test below).
const ROUTES: &[(&str, &str, Handler)] = &[
    ("GET", "/__mock/health", health),
    ("GET", "/__mock/now", now),
    ("POST", "/__mock/advance", advance),
    ("POST", "/__mock/reset", reset),
    ("GET", "/__mock/request_log", request_log),
    // The request log's first name, kept for existing callers.
    ("GET", "/__mock/journal", request_log),
    ("GET", "/__mock/drift", drift),
    ("GET", "/__mock/billing", billing),
    ("GET", "/__mock/faults", list_faults),
    ("POST", "/__mock/faults", add_faults),
    ("DELETE", "/__mock/faults", clear_faults),
    ("PUT", "/__mock/fail_rules", fail_rules),
    ("PUT", "/__mock/rate_limit", rate_limit),
    ("PUT", "/__mock/keys", keys),
    ("POST", "/__mock/history", place_history),
    ("PUT", "/__mock/history_landing", history_landing),
    (
        "PUT",
        "/__mock/result_before_completion",
        result_before_completion,
    ),
];

/// Whether the request carries the control token (`Authorization: Bearer
/// <token>`), when one is set.
fn authorized(state: &State, req: &Request<hyper::body::Incoming>) -> bool {
    carries_token(state.control_token.as_deref(), req.headers())
}

/// Whether `headers` carry `token` as `Authorization: Bearer <token>`
/// (compared in constant time); always true when no token is set. The one
/// check for the mock's and the proxy's control routes.
pub(crate) fn carries_token(token: Option<&str>, headers: &header::HeaderMap) -> bool {
    let Some(token) = token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) async fn handle(state: &State, req: Request<hyper::body::Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let on_path: Vec<&(&str, &str, Handler)> =
        ROUTES.iter().filter(|(_, p, _)| *p == path).collect();
    if on_path.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            format!("no control endpoint {method} {path}"),
        );
    }
    if path != "/__mock/health" && !authorized(state, &req) {
        return error(
            StatusCode::UNAUTHORIZED,
            "control API: missing or wrong `Authorization: Bearer <control token>`",
        );
    }
    let Some((_, _, handler)) = on_path.iter().find(|(m, _, _)| *m == method.as_str()) else {
        let allow: Vec<&str> = on_path.iter().map(|(m, _, _)| *m).collect();
        return method_not_allowed(&allow.join(", "));
    };
    let query = req.uri().query().unwrap_or_default().to_string();
    let body = if method == Method::GET || method == Method::DELETE {
        Bytes::new()
    } else {
        match read_body(MAX_CONTROL_BODY, req).await {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
    handler(
        state,
        &Call {
            query: &query,
            body: &body,
        },
    )
}

fn ok(v: &Value) -> Reply {
    json_response(StatusCode::OK, v)
}

fn unprocessable(text: impl Into<String>) -> Reply {
    error(StatusCode::UNPROCESSABLE_ENTITY, text)
}

/// The body as JSON (`null` when empty); 400 if it is not JSON.
fn json_body(call: &Call<'_>, what: &str) -> Result<Value, Reply> {
    if call.body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(call.body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("{what}: not JSON: {e}")))
}

/// The body as a `T`; 422 naming `what` if it has the wrong shape.
fn typed<T: DeserializeOwned>(call: &Call<'_>, what: &str) -> Result<T, Reply> {
    serde_json::from_value(json_body(call, what)?)
        .map_err(|e| unprocessable(format!("{what}: {e}")))
}

/// One value or a list of them.
fn one_or_many<T: DeserializeOwned>(call: &Call<'_>, what: &str) -> Result<Vec<T>, Reply> {
    match json_body(call, what)? {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                serde_json::from_value(v).map_err(|e| unprocessable(format!("{what}[{i}]: {e}")))
            })
            .collect(),
        v => serde_json::from_value(v)
            .map(|t| vec![t])
            .map_err(|e| unprocessable(format!("{what}: {e}"))),
    }
}

fn clock_now(state: &State) -> Value {
    json!({ "now": state.clock.now().as_secs_f64() })
}

fn health(_: &State, _: &Call<'_>) -> Reply {
    ok(&json!({ "status": "ok" }))
}

/// A plain mock has no upstream, so no drift (the proxy serves the real list).
fn drift(_: &State, _: &Call<'_>) -> Reply {
    ok(&json!({ "count": 0, "dropped": 0, "records": [] }))
}

fn now(state: &State, _: &Call<'_>) -> Reply {
    ok(&clock_now(state))
}

fn advance(state: &State, call: &Call<'_>) -> Reply {
    let body = match json_body(call, "advance") {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(seconds) = body.get("seconds").and_then(Value::as_f64) else {
        return unprocessable(format!(
            "seconds: expected a number of seconds, got {}",
            body.get("seconds").unwrap_or(&Value::Null)
        ));
    };
    match state.advance_by_secs(seconds) {
        Ok(_) => ok(&clock_now(state)),
        Err(e) => unprocessable(e),
    }
}

fn reset(state: &State, _: &Call<'_>) -> Reply {
    state.reset();
    ok(&clock_now(state))
}

fn request_log(state: &State, _: &Call<'_>) -> Reply {
    json_response(StatusCode::OK, &state.request_log())
}

fn billing(state: &State, call: &Call<'_>) -> Reply {
    // Percent-decoded: a key may hold `+`, `&`, `%` or spaces.
    let key = form_urlencoded::parse(call.query.as_bytes())
        .find_map(|(name, value)| (name == "key").then_some(value));
    let billing = state.billing(key.as_deref());
    let mut v = json!({ "billed_submits": billing.total });
    if let Some(k) = billing.key {
        v["billed_submits_for_key"] = k.billed.into();
        if let Some(b) = k.balance {
            v["balance"] = b.into();
        }
    }
    ok(&v)
}

fn list_faults(state: &State, _: &Call<'_>) -> Reply {
    json_response(StatusCode::OK, &state.faults())
}

fn add_faults(state: &State, call: &Call<'_>) -> Reply {
    let faults = match one_or_many::<Fault>(call, "faults") {
        Ok(f) => f,
        Err(r) => return r,
    };
    match state.push_faults(faults) {
        Ok(n) => ok(&json!({ "faults": n })),
        Err(e) => unprocessable(e),
    }
}

fn clear_faults(state: &State, _: &Call<'_>) -> Reply {
    state.clear_faults();
    ok(&json!({ "faults": 0 }))
}

fn fail_rules(state: &State, call: &Call<'_>) -> Reply {
    let rules = match one_or_many::<FailRule>(call, "fail_rules") {
        Ok(r) => r,
        Err(r) => return r,
    };
    match state.set_fail_rules(rules) {
        Ok(()) => ok(&json!({})),
        Err(e) => unprocessable(e),
    }
}

fn rate_limit(state: &State, call: &Call<'_>) -> Reply {
    let rate = match typed::<Option<RateLimitRule>>(call, "rate_limit") {
        Ok(r) => r,
        Err(r) => return r,
    };
    match state.set_rate_limit(rate) {
        Ok(()) => ok(&json!({})),
        Err(e) => unprocessable(e),
    }
}

fn result_before_completion(state: &State, call: &Call<'_>) -> Reply {
    match typed::<ResultBeforeCompletion>(call, "result_before_completion") {
        Ok(answer) => {
            state.set_result_before_completion(answer);
            ok(&json!({}))
        }
        Err(r) => r,
    }
}

fn keys(state: &State, call: &Call<'_>) -> Reply {
    let keys = match typed::<Option<Vec<String>>>(call, "keys") {
        Ok(k) => k,
        Err(r) => return r,
    };
    match state.set_keys(keys) {
        Ok(()) => ok(&json!({})),
        Err(e) => unprocessable(e),
    }
}

/// Most rows one call places.
const MAX_PLACED_ROWS: usize = 1000;

fn place_history(state: &State, call: &Call<'_>) -> Reply {
    let rows = match one_or_many::<PlacedRow>(call, "history") {
        Ok(r) => r,
        Err(r) => return r,
    };
    if rows.len() > MAX_PLACED_ROWS {
        return unprocessable(format!(
            "history: {} rows given, at most {MAX_PLACED_ROWS} a call",
            rows.len()
        ));
    }
    match state.place_history(rows) {
        Ok(placed) => json_response(StatusCode::OK, &json!({ "placed": placed })),
        Err(e) => unprocessable(format!("history{e}")),
    }
}

/// `{"delay": seconds, "partial": bool}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Landing {
    #[serde(default)]
    delay: f64,
    #[serde(default)]
    partial: bool,
}

fn history_landing(state: &State, call: &Call<'_>) -> Reply {
    let landing = match typed::<Landing>(call, "history_landing") {
        Ok(l) => l,
        Err(r) => return r,
    };
    let max = crate::limits::MAX_DURATION_SECS;
    #[allow(clippy::cast_precision_loss)]
    let delay =
        match crate::checks::finite("delay", landing.delay, 0.0, max as f64).and_then(|()| {
            Duration::try_from_secs_f64(landing.delay).map_err(|e| format!("delay: {e}"))
        }) {
            Ok(d) => d,
            Err(e) => return unprocessable(e),
        };
    match state.set_history_landing(delay, landing.partial) {
        Ok(()) => ok(&json!({ "delay": delay.as_secs_f64(), "partial": landing.partial })),
        Err(e) => unprocessable(e),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Moved from `tests/control_spec.rs` (which read the table through a
    /// public `control_routes()` kept only for it).
    #[test]
    fn every_control_route_the_mock_serves_is_documented_and_nothing_else() {
        let doc: serde_json::Value = serde_yaml::from_str(crate::CONTROL_SPEC).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "delete", "patch"] {
                if item.get(method).is_some() {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let served: BTreeSet<(String, String)> = super::ROUTES
            .iter()
            .map(|(m, p, _)| ((*m).to_string(), (*p).to_string()))
            .collect();
        assert_eq!(served.len(), super::ROUTES.len(), "a route listed twice");
        assert_eq!(
            served, documented,
            "the mock's control routes and tryon_mock::CONTROL_SPEC differ"
        );
    }
}
