//! Unit tests of the validator (private, so tested from inside).

use super::*;

#[test]
fn documented_bodies_pass_and_drift_is_caught() {
    let ok = br#"{"status":"COMPLETED","request_id":"x","metrics":{"inference_time":2.0}}"#;
    assert_eq!(
        check_response("GET", "/v2/requests/abc/status", 200, ok),
        Ok(Checked::Documented)
    );
    let extra = br#"{"status":"COMPLETED","request_id":"x","surprise":1}"#;
    let errs = check_response("GET", "/v2/requests/abc/status", 200, extra).unwrap_err();
    assert!(
        errs[0].contains("/surprise: expected no such property (undeclared property)"),
        "{errs:?}"
    );
    let bad_enum = br#"{"status":"DONE","request_id":"x"}"#;
    assert!(check_response("GET", "/v2/requests/abc/status", 200, bad_enum).is_err());
}

#[test]
fn exceptions_are_explicit() {
    let e = br#"{"error":"Method Not Allowed"}"#;
    assert_eq!(
        check_response("GET", "/v2/p-image-try-on", 405, e),
        Ok(Checked::Exception("GET /v2/p-image-try-on 405".into()))
    );
    // Not listed: an undocumented status the mock made up is a violation.
    assert!(check_response("POST", "/v2/p-image-try-on", 503, e).is_err());
    // Injected by a test: only the body is checked.
    assert_eq!(
        check_injected("POST", "/v2/p-image-try-on", 503, e),
        Ok(Checked::Injected("POST /v2/p-image-try-on 503".into()))
    );
    assert!(check_injected("POST", "/v2/p-image-try-on", 503, b"{}").is_err());
    assert_eq!(
        check_response("GET", "/outputs/x.png", 404, e),
        Ok(Checked::OffSpec)
    );
}

fn check(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    validate(doc, schema, value, "", &mut errors);
    messages("v", errors)
}

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

#[test]
fn the_validator_rejects_what_the_control_schemas_exclude() {
    let doc = control();
    let fault = schema("Fault");
    let good = json!({"route": "status", "kind": {"status": {"code": 503, "retry_after": null}}, "times": null});
    assert_eq!(check(doc, &fault, &good), Vec::<String>::new());
    let with_retry = json!({"route": "status", "kind": {"status": {"code": 503, "retry_after": {"seconds": 2}}}});
    assert_eq!(check(doc, &fault, &with_retry), Vec::<String>::new());
    for bad in [
        json!({"route": "nowhere", "kind": "not_json"}),
        json!({"route": "status", "kind": "explode"}),
        json!({"route": "status", "kind": {"status": {"code": 503}, "latency": 1.0}}),
        json!({"route": "status", "kind": {"latency": -1.0}}),
        json!({"route": "status", "kind": {"status": {"code": 503, "retry_after": {"minutes": 1}}}}),
        json!({"route": "status", "kind": "not_json", "extra": 1}),
        json!({"kind": "not_json"}),
    ] {
        assert!(!check(doc, &fault, &bad).is_empty(), "{bad}");
    }
    assert!(!check(doc, &schema("Now"), &json!({"now": "3"})).is_empty());
    assert!(!check(doc, &schema("Now"), &json!({"now": -1.0})).is_empty());
    let rate = schema("RateLimit");
    assert!(!check(doc, &rate, &json!({"per_second": 0, "burst": 1})).is_empty());
    assert!(check(doc, &rate, &json!({"per_second": 0.5, "burst": 1})).is_empty());
    assert!(check(doc, &rate, &Value::Null).is_empty());
    assert!(!check(doc, &schema("Empty"), &json!({"x": 1})).is_empty());
    let dangling = check(doc, &schema("Nowhere"), &json!({}));
    assert!(dangling[0].contains("dangling $ref"), "{dangling:?}");
}

/// Every example in both documents (request bodies, responses,
/// parameters) matches its own schema, so a client generated from a
/// document and the mock agree on them.
#[test]
fn every_example_in_the_documents_matches_its_schema() {
    for doc in [spec(), control()] {
        let mut errors = Vec::new();
        let mut examples = 0;
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let body = resolve(doc, &op["requestBody"]);
                let responses = op["responses"].as_object().into_iter().flatten();
                let media = std::iter::once(("request".to_string(), body))
                    .chain(responses.map(|(code, r)| (code.clone(), resolve(doc, r))))
                    .filter_map(|(what, r)| Some((what, r["content"].get("application/json")?)));
                let params = op["parameters"].as_array().into_iter().flatten();
                let params = params.map(|p| (format!("parameter {}", p["name"]), p));
                for (what, m) in media.chain(params) {
                    if let Some(example) = m.get("example") {
                        examples += 1;
                        let at = format!("{method} {path} {what} example");
                        let mut found = Vec::new();
                        validate(doc, &m["schema"], example, "", &mut found);
                        errors.extend(messages(&at, found));
                    }
                }
            }
        }
        assert!(errors.is_empty(), "{}: {errors:#?}", document_name(doc));
        assert!(
            examples >= 10,
            "{}: {examples} examples",
            document_name(doc)
        );
    }
}

#[test]
fn control_answers_are_checked_against_the_control_document() {
    assert_eq!(
        check_response("GET", "/__mock/now", 200, br#"{"now":3.0}"#),
        Ok(Checked::Documented)
    );
    let errs = check_response("GET", "/__mock/now", 200, br#"{"time":3.0}"#).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.contains("/now: expected required property now")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("/time: expected no such property (undeclared property)")),
        "{errs:?}"
    );
    let errs = check_response("GET", "/__mock/now", 500, br#"{"error":"x"}"#).unwrap_err();
    assert!(
        errs[0].contains("tryon-mock-control.yaml does not document 500"),
        "{errs:?}"
    );
    let e = br#"{"error":"no"}"#;
    assert_eq!(
        check_response("PUT", "/__mock/keys", 401, e),
        Ok(Checked::Exception("PUT /__mock/keys 401".into()))
    );
    assert!(check_response("GET", "/__mock/health", 401, e).is_err());
    assert_eq!(
        check_response("GET", "/__mock/advance", 405, e),
        Ok(Checked::Exception("GET /__mock/advance 405".into()))
    );
    // The control document's ErrorBody has nothing but `error`.
    assert!(
        check_response(
            "GET",
            "/__mock/bogus",
            404,
            br#"{"error":"x","status":"y"}"#
        )
        .is_err()
    );
    assert_eq!(
        check_response("GET", "/__mock/bogus", 404, e),
        Ok(Checked::OffSpec)
    );
}
