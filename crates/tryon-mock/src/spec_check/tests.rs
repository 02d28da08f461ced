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
    let rate = schema("RateLimitRule");
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
    // A control operation's 401 is declared (components/responses/Unauthorized).
    assert_eq!(
        check_response("PUT", "/__mock/keys", 401, e),
        Ok(Checked::Documented)
    );
    assert!(check_response("PUT", "/__mock/keys", 401, br#"{"error":"no","x":1}"#).is_err());
    // A method the path does not declare: the token is checked first, by rule.
    assert_eq!(
        check_response("GET", "/__mock/keys", 401, e),
        Ok(Checked::Exception("GET /__mock/keys 401".into()))
    );
    // The readiness probe never needs the token: a 401 there is a violation.
    assert!(check_response("GET", "/__mock/health", 401, e).is_err());
    assert!(check_response("POST", "/__mock/health", 401, e).is_err());
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

/// `check` against an inline schema in an empty document.
fn against(schema: &Value, value: &Value) -> Vec<String> {
    check(&json!({}), schema, value)
}

#[test]
fn format_uri_asks_for_an_absolute_uri() {
    let uri = json!({"type": "string", "format": "uri"});
    for good in [
        "https://api.segmind.com/v2/requests/5b9f0e62/status",
        "http://127.0.0.1:8787/outputs/x.png?sig=a%2Fb#frag",
        "data:image/png;base64,iVBORw0KGgo=",
        "urn:uuid:5b9f0e62-8c51-4a64-9a3e-6ad1f2f0c9d4",
        "HTTPS://EXAMPLE.COM/",
    ] {
        assert_eq!(against(&uri, &json!(good)), Vec::<String>::new(), "{good}");
    }
    for bad in [
        "/v2/requests/abc/status",
        "//api.segmind.com/v2/requests/abc",
        "api.segmind.com/v2/requests/abc",
        "not a url",
        "",
        "https://",
        "https://api.segmind.com/a b.png",
        "https://api.segmind.com/a\\b.png",
        "https://api.segmind.com/%zz",
        "https://api.segmind.com/caf\u{e9}.png",
        "1http://x/",
        ":no-scheme",
    ] {
        let errs = against(&uri, &json!(bad));
        assert_eq!(errs.len(), 1, "{bad:?}: {errs:?}");
        assert!(
            errs[0].contains("expected an absolute URI (format uri)"),
            "{errs:?}"
        );
    }
    // Without a `type`, a non-string is refused by the format itself.
    assert_eq!(against(&json!({"format": "uri"}), &json!(3)).len(), 1);
}

#[test]
fn format_uint64_asks_for_an_unsigned_64_bit_integer() {
    let seed = json!({"type": "integer", "format": "uint64"});
    for good in [json!(0), json!(12345), json!(u64::MAX)] {
        assert_eq!(against(&seed, &good), Vec::<String>::new(), "{good}");
    }
    let negative = against(&seed, &json!(-1));
    assert_eq!(negative.len(), 1, "{negative:?}");
    assert!(
        negative[0].contains("expected an integer in 0..=18446744073709551615 (format uint64)"),
        "{negative:?}"
    );
    // Past u64::MAX serde_json reads a float: no longer an integer at all.
    let too_big: Value = serde_json::from_str("18446744073709551616").unwrap();
    assert!(!against(&seed, &too_big).is_empty());
    for bad in [json!(1.5), json!("12345")] {
        assert_eq!(
            against(&json!({"format": "uint64"}), &bad).len(),
            1,
            "{bad}"
        );
    }
}

#[test]
fn format_double_asks_for_a_number() {
    let time = json!({"type": "number", "format": "double"});
    for good in [json!(2.31), json!(0), json!(-1e300), json!(u64::MAX)] {
        assert_eq!(against(&time, &good), Vec::<String>::new(), "{good}");
    }
    let errs = against(&json!({"format": "double"}), &json!("2.31"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("expected a number (format double)"),
        "{errs:?}"
    );
}

#[test]
fn unknown_formats_are_ignored() {
    for format in ["binary", "date-time", "email", "made-up"] {
        let schema = json!({"type": "string", "format": format});
        assert_eq!(against(&schema, &json!("anything")), Vec::<String>::new());
    }
}

#[test]
fn a_format_departure_is_found_in_an_answer() {
    // A relative `status_url` and an `output` that is not a URL: the
    // departures the proxy reports from a real service.
    let submit = br#"{"request_id":"x","status":"QUEUED","status_url":"/v2/requests/x/status","response_url":"https://h/v2/requests/x"}"#;
    let errs = check_response("POST", "/v2/p-image-try-on", 200, submit).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("/status_url: expected an absolute URI (format uri)"),
        "{errs:?}"
    );
    let result = br#"{"status":"COMPLETED","output":"out.png"}"#;
    let errs = check_response("GET", "/v2/requests/x", 200, result).unwrap_err();
    assert!(
        errs[0].contains("/output: expected an absolute URI"),
        "{errs:?}"
    );
}

#[test]
fn pattern_is_matched_and_refused() {
    let doc = control();
    let entry = |fingerprint: Value| json!({"at": 0.0, "method": "GET", "path": "/", "key_fingerprint": fingerprint, "status": 200});
    let log_entry = schema("RequestLogEntry");
    assert_eq!(
        check(doc, &log_entry, &entry(json!("fp:2c1a9e0b7d3f4a56"))),
        Vec::<String>::new()
    );
    assert_eq!(
        check(doc, &log_entry, &entry(Value::Null)),
        Vec::<String>::new()
    );
    for bad in [
        "fp:2C1A9E0B7D3F4A56",
        "fp:2c1a",
        "sk-test",
        "xfp:2c1a9e0b7d3f4a56",
    ] {
        let errs = check(doc, &log_entry, &entry(json!(bad)));
        assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
        assert!(
            errs[0]
                .contains("/key_fingerprint: expected a string matching pattern ^fp:[0-9a-f]{16}$"),
            "{errs:?}"
        );
    }
    // Unanchored, as JSON Schema says: the pattern may match anywhere.
    let partial = json!({"type": "string", "pattern": "[0-9]+"});
    assert_eq!(against(&partial, &json!("abc123")), Vec::<String>::new());
    assert_eq!(against(&partial, &json!("abc")).len(), 1);
    // ECMA-262 syntax (a lookahead and a named group).
    let ecma = json!({"type": "string", "pattern": "^(?=a)(?<x>a+)$"});
    assert_eq!(against(&ecma, &json!("aaa")), Vec::<String>::new());
    assert_eq!(against(&ecma, &json!("aab")).len(), 1);
    // Only strings: a number is the `type`'s business.
    assert_eq!(
        against(&json!({"pattern": "^a$"}), &json!(3)),
        Vec::<String>::new()
    );
}

#[test]
fn a_pattern_that_does_not_compile_is_reported_once_naming_its_schema() {
    // A pattern no other test uses: the cache is per process.
    let doc = json!({"components": {"schemas": {"Broken": {
        "type": "object",
        "properties": {"id": {"type": "string", "pattern": "^(unclosed-in-this-test$"}}
    }}}});
    let broken = schema("Broken");
    let first = check(&doc, &broken, &json!({"id": "x"}));
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        first[0].starts_with(
            "v /id: expected a pattern that compiles (ECMA-262) at \
             #/components/schemas/Broken/properties/id/pattern, got \"^(unclosed-in-this-test$\", which does not:"
        ),
        "{first:?}"
    );
    // Reported once: later values are neither refused nor re-reported.
    assert_eq!(
        check(&doc, &broken, &json!({"id": "y"})),
        Vec::<String>::new()
    );
}

/// Every `pattern` in both documents compiles, so the once-only report of
/// a bad one can never be the only sign of it.
#[test]
fn every_pattern_in_the_documents_compiles() {
    fn collect<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                if let Some(p) = map.get("pattern").and_then(Value::as_str) {
                    out.push(p);
                }
                map.values().for_each(|v| collect(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    for doc in [spec(), control()] {
        collect(doc, &mut found);
    }
    assert!(found.len() >= 2, "{found:?}");
    for p in found {
        assert!(regress::Regex::new(p).is_ok(), "{p}");
    }
}
