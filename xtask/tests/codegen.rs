//! The checked-in generated files must match their documents: a stale
//! `generated.rs` (from the API spec) or `control_routes.json` (from the
//! control API's document) fails `cargo test` as well as `cargo xtask
//! codegen --check`.

use xtask::codegen::{self, Check};

#[test]
fn generated_files_are_up_to_date() {
    match codegen::check().expect("codegen runs") {
        Check::UpToDate => {}
        Check::Stale { diff } => {
            panic!("{diff}\ngenerated files are stale; run `cargo xtask codegen`")
        }
    }
}

#[test]
fn generation_is_deterministic() {
    let a = codegen::generate().expect("first run");
    let b = codegen::generate().expect("second run");
    assert_eq!(a, b, "two runs of codegen gave different bytes");
    assert!(a.starts_with(codegen::HEADER), "header line missing");
}

#[test]
fn editing_a_description_is_detected() {
    let root = codegen::workspace_root();
    let spec = std::fs::read_to_string(root.join(codegen::SPEC)).expect("spec");
    let edited = spec.replacen(
        "Return the output at the person photo's own resolution.",
        "Return the output at the person photo's own size (edited).",
        1,
    );
    assert_ne!(
        spec, edited,
        "the description to edit was not found in the spec"
    );
    let fresh = codegen::generate_from(&edited).expect("edited spec generates");
    let current = codegen::generate().expect("spec generates");
    match codegen::compare(&current, &fresh) {
        Check::Stale { diff } => {
            assert!(diff.contains("(edited)"), "diff misses the edit:\n{diff}");
        }
        Check::UpToDate => panic!("an edited description was not detected"),
    }
}

#[test]
fn spec_parses_as_openapi_3_0() {
    let root = codegen::workspace_root();
    let text = std::fs::read_to_string(root.join(codegen::SPEC)).expect("spec");
    let spec: openapiv3::OpenAPI = serde_yaml::from_str(&text).expect("spec parses with openapiv3");
    assert!(
        spec.openapi.starts_with("3.0."),
        "progenitor needs OpenAPI 3.0.x, got {}",
        spec.openapi
    );
    let ops: Vec<_> = spec
        .operations()
        .filter_map(|(path, method, op)| {
            op.operation_id
                .clone()
                .map(|id| (path.to_string(), method.to_string(), id))
        })
        .collect();
    let ids: Vec<&str> = ops.iter().map(|(_, _, id)| id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "submit_try_on",
            "get_status",
            "get_result",
            "run_try_on_sync",
            "upload_asset",
            "get_user_credits",
            "list_request_history",
            "get_request_history_entry",
        ],
        "the try-on, upload and account operations, in the document's order: {ops:?}"
    );
    for name in [
        "TryOnInput",
        "SubmitResponse",
        "StatusResponse",
        "ResultResponse",
        "JobStatus",
        "Metrics",
        "ErrorBody",
        "UploadAssetRequest",
        "UploadAssetResponse",
        "OutputFormat",
        "CreditsResponse",
        "HistoryPage",
        "HistoryEntry",
        "HistoryStatus",
        "HistorySortBy",
        "SortOrder",
    ] {
        let schema = spec
            .components
            .as_ref()
            .and_then(|c| c.schemas.get(name))
            .unwrap_or_else(|| panic!("schema {name} missing"));
        let openapiv3::ReferenceOr::Item(schema) = schema else {
            panic!("{name} is a bare $ref")
        };
        assert!(
            schema.schema_data.example.is_some(),
            "schema {name} has no example"
        );
    }
}

#[test]
fn the_python_route_table_is_every_current_operation_of_the_control_document() {
    let root = codegen::workspace_root();
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join(codegen::CONTROL_SPEC)).unwrap())
            .unwrap();
    let mut documented = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for (method, op) in item.as_mapping().unwrap() {
            if op["deprecated"] == serde_yaml::Value::Bool(true) {
                continue;
            }
            let id = op["operationId"].as_str().unwrap().to_string();
            let method = method.as_str().unwrap().to_uppercase();
            documented.insert(id, (method, path.as_str().unwrap().to_string()));
        }
    }
    let table: serde_json::Value =
        serde_json::from_str(&codegen::control_routes().unwrap()).unwrap();
    let generated: std::collections::BTreeMap<String, (String, String)> =
        serde_json::from_value(table["routes"].clone()).unwrap();
    assert!(documented.len() >= 11, "{documented:?}");
    assert_eq!(generated, documented);
    assert_eq!(
        generated["advance"],
        ("POST".to_string(), "/__mock/advance".to_string())
    );
}

#[test]
fn a_control_operation_added_to_the_document_makes_the_route_table_stale() {
    let root = codegen::workspace_root();
    let doc = std::fs::read_to_string(root.join(codegen::CONTROL_SPEC)).unwrap();
    let edited = doc.replacen(
        "paths:\n",
        "paths:\n  /__mock/extra:\n    get:\n      operationId: getExtra\n",
        1,
    );
    assert_ne!(doc, edited, "`paths:` was not found in the document");
    let fresh = codegen::control_routes_from(&edited).unwrap();
    assert!(
        fresh.contains(r#""getExtra": ["GET", "/__mock/extra"]"#),
        "{fresh}"
    );
    assert_ne!(fresh, codegen::control_routes().unwrap());
}
