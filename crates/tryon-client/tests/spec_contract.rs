//! What progenitor drops from the spec, the client must enforce itself.
//!
//! `tryon-api`'s types derive `schemars::JsonSchema`, so `schema_for!` tells
//! exactly which constraints the generated types still carry (an `enum`, the
//! `minimum: 0` of a `u64`). The spec tells what the contract says. Every
//! constraint in the spec that the generated schema lacks (`minItems`,
//! `maxItems`, `maximum`, `format: uri`, ...) must be enforced by the client's
//! own validation: this test finds each one and proves it with a request that
//! breaks it by exactly one step (refused, naming the field) and one that sits
//! on the bound (accepted). A constraint added to the spec without a check in
//! the client fails here, naming the field and keyword.
//!
//! The other direction (every request field of the spec reaches the wire
//! through the builder) is `wire.rs`'s exact-body test.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use serde_json::Value;
use tryon_client::{Error, Image, TryOnRequest, TryOnRequestBuilder};

/// Keywords that constrain a value (as opposed to describing it).
const CONSTRAINTS: &[&str] = &[
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "enum",
    "uniqueItems",
];

fn spec() -> Value {
    serde_yaml::from_str(tryon_api::SPEC).unwrap()
}

/// Follows one local `$ref` (`#/a/b/c`) inside `root`.
fn resolve<'a>(root: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => root.pointer(r.trim_start_matches('#')).unwrap(),
        None => v,
    }
}

/// `(property path, keyword) -> value` for every constraint in `schema`,
/// descending into array items as `name[]`.
fn constraints(root: &Value, schema: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    let props = schema["properties"].as_object().unwrap();
    for (name, prop) in props {
        let mut todo = vec![(name.clone(), resolve(root, prop))];
        while let Some((path, s)) = todo.pop() {
            // `Option<T>` and defaults wrap a `$ref` in `anyOf`/`allOf`.
            for key in ["allOf", "anyOf", "oneOf"] {
                for sub in s.get(key).and_then(Value::as_array).into_iter().flatten() {
                    todo.push((path.clone(), resolve(root, sub)));
                }
            }
            for kw in CONSTRAINTS {
                if let Some(v) = s.get(*kw) {
                    out.push((path.clone(), (*kw).to_string(), v.clone()));
                }
            }
            if let Some(items) = s.get("items") {
                todo.push((format!("{path}[]"), resolve(root, items)));
            }
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

/// The generated type's own schema, as schemars derives it.
fn generated() -> Value {
    serde_json::to_value(schemars::schema_for!(tryon_api::types::TryOnInput)).unwrap()
}

/// Whether the generated schema keeps a constraint at least as strict as
/// the spec's.
fn kept(generated: &[(String, String, Value)], path: &str, kw: &str, want: &Value) -> bool {
    generated.iter().any(|(p, k, v)| {
        p == path
            && k == kw
            && match (kw, v.as_f64(), want.as_f64()) {
                ("minimum", Some(got), Some(want)) => got >= want,
                ("maximum", Some(got), Some(want)) => got <= want,
                _ => v == want,
            }
    })
}

fn url(n: usize) -> Image {
    Image::url(format!("https://example.com/{n}.jpg"))
}

fn base() -> TryOnRequestBuilder {
    TryOnRequest::builder().person(url(0)).garment(url(1))
}

fn with_garments(n: usize) -> TryOnRequestBuilder {
    TryOnRequest::builder()
        .person(url(0))
        .garments((1..=n).map(url))
}

/// The field an `Error::Invalid` names, or a failure naming what came back.
fn refused_field(r: tryon_client::Result<TryOnRequest>) -> String {
    match r {
        Err(Error::Invalid { field, .. }) => field,
        Err(other) => panic!("expected Error::Invalid, got {other}"),
        Ok(_) => panic!("expected Error::Invalid, the request was accepted"),
    }
}

fn as_u64(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{v} is not a non-negative integer"))
}

/// One probe per dropped constraint: break it by one step and sit on it.
/// Returns a description of how it is enforced.
fn probe(path: &str, kw: &str, bound: &Value) -> String {
    match (path, kw) {
        ("garment_images", "maxItems") => {
            let max = usize::try_from(as_u64(bound)).unwrap();
            assert_eq!(refused_field(with_garments(max + 1).build()), path);
            with_garments(max).build().unwrap();
            format!("{} garments refused, {max} accepted", max + 1)
        }
        ("garment_images", "minItems") => {
            let min = usize::try_from(as_u64(bound)).unwrap();
            assert!(min >= 1, "minItems {min}: nothing to break");
            assert_eq!(refused_field(with_garments(min - 1).build()), path);
            with_garments(min).build().unwrap();
            format!("{} garments refused, {min} accepted", min - 1)
        }
        ("output_quality", "maximum") => {
            let max = u32::try_from(as_u64(bound)).unwrap();
            assert_eq!(refused_field(base().output_quality(max + 1).build()), path);
            base().output_quality(max).build().unwrap();
            format!("{} refused, {max} accepted", max + 1)
        }
        ("output_quality", "minimum") => {
            // The builder takes a `u32`: nothing below 0 can be expressed,
            // so the bound holds only while the spec's minimum is 0.
            assert_eq!(as_u64(bound), 0, "{path} minimum moved: add a check");
            base().output_quality(0).build().unwrap();
            "by the builder's u32 type; 0 accepted".into()
        }
        ("seed", "maximum") => {
            // The builder takes a `u64`: the spec's maximum must be u64::MAX.
            assert_eq!(bound.as_u64(), Some(u64::MAX), "{path} maximum moved");
            base().seed(u64::MAX).build().unwrap();
            "by the builder's u64 type; u64::MAX accepted".into()
        }
        ("person_image" | "reference_pose" | "garment_images[]", "format") => {
            assert_eq!(bound, "uri", "{path}: format {bound} is new: add a check");
            let bad = Image::url("not a uri");
            let (refused, field) = match path {
                "person_image" => (
                    TryOnRequest::builder().person(bad).garment(url(1)).build(),
                    "person_image",
                ),
                "reference_pose" => (base().reference_pose(bad).build(), "reference_pose"),
                _ => (
                    TryOnRequest::builder().person(url(0)).garment(bad).build(),
                    "garment_images[0]",
                ),
            };
            assert_eq!(refused_field(refused), field);
            base().reference_pose(url(2)).build().unwrap();
            "\"not a uri\" refused, https URL accepted".into()
        }
        _ => panic!(
            "the spec constrains {path} with {kw}: {bound}, the generated type does not, \
             and the client has no check for it here: add the check to the client's \
             validation and a probe to this test"
        ),
    }
}

#[test]
fn every_constraint_progenitor_drops_is_enforced_by_the_client() {
    let spec = spec();
    let input = &spec["components"]["schemas"]["TryOnInput"];
    let from_spec = constraints(&spec, input);
    let generated = generated();
    let from_types = constraints(&generated, &generated);

    let dropped: Vec<_> = from_spec
        .iter()
        .filter(|(p, k, v)| !kept(&from_types, p, k, v))
        .collect();
    // The generated types must still drop what we expect them to (if
    // progenitor starts keeping a constraint, this list shrinks and the
    // client's own check becomes a second line of defence, which is fine);
    // but the test must have found something to prove.
    assert!(
        dropped.len() >= 5,
        "expected progenitor to drop the spec's bounds, found only {dropped:?}"
    );
    let mut table = Vec::new();
    for (path, kw, bound) in &dropped {
        let how = probe(path, kw, bound);
        table.push(format!(
            "{path:<18} {kw:<9} {:<22} {how}",
            bound.to_string()
        ));
    }
    // Constraints the generated type keeps need no probe; list them too, so
    // the printed table accounts for every constraint in the spec.
    for (path, kw, bound) in from_spec.iter().filter(|c| !dropped.contains(c)) {
        table.push(format!(
            "{path:<18} {kw:<9} {:<22} by the generated type",
            bound.to_string()
        ));
    }
    println!("{}", table.join("\n"));
    assert_eq!(table.len(), from_spec.len());
}
