//! Input validation with the contract's limits. Every message names the
//! field, the problem and the limit, e.g.
//! `garment_images: 12 given, at most 11 allowed`.

use serde_json::{Map, Value};
use tryon_api::MAX_GARMENTS;
use tryon_api::types::{TryOnInput, UploadAssetRequest, UploadAssetRequestDataUrlsItem};

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// Not JSON at all: 400.
    Malformed(String),
    /// JSON, but a field is missing or wrong: 422.
    Field(String),
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, Invalid> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| Invalid::Malformed(format!("request body is not valid JSON: {e}")))?;
    match value {
        Value::Object(m) => Ok(m),
        other => Err(Invalid::Field(format!(
            "body: expected a JSON object, got {}",
            type_name(&other)
        ))),
    }
}

fn is_image_ref(s: &str) -> bool {
    s.starts_with("data:") || s.starts_with("http://") || s.starts_with("https://")
}

fn image_field(name: &str, v: &Value) -> Result<(), Invalid> {
    match v {
        Value::String(s) if s.is_empty() => {
            Err(Invalid::Field(format!("{name}: must not be empty")))
        }
        Value::String(s) if !is_image_ref(s) => Err(Invalid::Field(format!(
            "{name}: expected an http(s) URL or a data: URI"
        ))),
        Value::String(_) => Ok(()),
        other => Err(Invalid::Field(format!(
            "{name}: expected a string, got {}",
            type_name(other)
        ))),
    }
}

fn expect_bool(name: &str, v: &Value) -> Result<(), Invalid> {
    if v.is_boolean() {
        Ok(())
    } else {
        Err(Invalid::Field(format!(
            "{name}: expected a boolean, got {}",
            type_name(v)
        )))
    }
}

/// Parses and checks a try-on body.
pub(crate) fn try_on_input(bytes: &[u8]) -> Result<TryOnInput, Invalid> {
    let map = parse_object(bytes)?;
    match map.get("person_image") {
        None | Some(Value::Null) => {
            return Err(Invalid::Field(
                "person_image: required field is missing".into(),
            ));
        }
        Some(v) => image_field("person_image", v)?,
    }
    match map.get("garment_images") {
        None | Some(Value::Null) => {
            return Err(Invalid::Field(
                "garment_images: required field is missing".into(),
            ));
        }
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(Invalid::Field(
                    "garment_images: 0 given, at least 1 required".into(),
                ));
            }
            if items.len() > MAX_GARMENTS {
                return Err(Invalid::Field(format!(
                    "garment_images: {} given, at most {MAX_GARMENTS} allowed",
                    items.len()
                )));
            }
            for (i, item) in items.iter().enumerate() {
                image_field(&format!("garment_images[{i}]"), item)?;
            }
        }
        Some(other) => {
            return Err(Invalid::Field(format!(
                "garment_images: expected an array, got {}",
                type_name(other)
            )));
        }
    }
    if let Some(v) = map.get("prompt")
        && !v.is_string()
    {
        return Err(Invalid::Field(format!(
            "prompt: expected a string, got {}",
            type_name(v)
        )));
    }
    if let Some(v) = map.get("reference_pose") {
        image_field("reference_pose", v)?;
    }
    if let Some(v) = map.get("seed")
        && v.as_u64().is_none()
    {
        return Err(Invalid::Field(format!(
            "seed: {v} given, an integer from 0 to {} required",
            u64::MAX
        )));
    }
    if let Some(v) = map.get("turbo") {
        expect_bool("turbo", v)?;
    }
    if let Some(v) = map.get("preserve_input_size") {
        expect_bool("preserve_input_size", v)?;
    }
    if let Some(v) = map.get("output_format") {
        match v.as_str() {
            Some("png" | "jpg" | "webp") => {}
            _ => {
                return Err(Invalid::Field(format!(
                    "output_format: {v} is not one of png, jpg, webp"
                )));
            }
        }
    }
    if let Some(v) = map.get("output_quality") {
        match v.as_i64() {
            Some(q) if q > 100 => {
                return Err(Invalid::Field(format!(
                    "output_quality: {q} given, at most 100 allowed"
                )));
            }
            Some(q) if q < 0 => {
                return Err(Invalid::Field(format!(
                    "output_quality: {q} given, at least 0 allowed"
                )));
            }
            Some(_) => {}
            None => {
                return Err(Invalid::Field(format!(
                    "output_quality: expected an integer from 0 to 100, got {v}"
                )));
            }
        }
    }
    serde_json::from_value(Value::Object(map)).map_err(|e| Invalid::Field(format!("body: {e}")))
}

/// Parses and checks an upload body; returns the data URIs.
pub(crate) fn upload_request(bytes: &[u8]) -> Result<UploadAssetRequest, Invalid> {
    let map = parse_object(bytes)?;
    match map.get("data_urls") {
        None | Some(Value::Null) => {
            return Err(Invalid::Field(
                "data_urls: required field is missing".into(),
            ));
        }
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(Invalid::Field(
                    "data_urls: 0 given, at least 1 required".into(),
                ));
            }
            // The spec's `pattern`, as the generated type checks it.
            for (i, item) in items.iter().enumerate() {
                if item
                    .as_str()
                    .is_none_or(|s| UploadAssetRequestDataUrlsItem::try_from(s).is_err())
                {
                    return Err(Invalid::Field(format!(
                        "data_urls[{i}]: expected a data:<mime>;base64,<data> URI with canonical (padded) base64"
                    )));
                }
            }
        }
        Some(other) => {
            return Err(Invalid::Field(format!(
                "data_urls: expected an array, got {}",
                type_name(other)
            )));
        }
    }
    serde_json::from_value(Value::Object(map)).map_err(|e| Invalid::Field(format!("body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_err(body: &str) -> String {
        match try_on_input(body.as_bytes()) {
            Err(Invalid::Field(m)) => m,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    const OK: &str = r#""person_image":"https://x/p.jpg","garment_images":["https://x/g.jpg"]"#;

    #[test]
    fn accepts_minimal_body() {
        let input = try_on_input(format!("{{{OK}}}").as_bytes()).unwrap();
        assert_eq!(input.output_quality, 95);
    }

    #[test]
    fn names_the_field() {
        let twelve = ["\"https://x/g.jpg\""; 12].join(",");
        assert_eq!(
            field_err(&format!(
                r#"{{"person_image":"https://x/p.jpg","garment_images":[{twelve}]}}"#
            )),
            "garment_images: 12 given, at most 11 allowed"
        );
        assert_eq!(
            field_err(&format!(r#"{{{OK},"output_quality":101}}"#)),
            "output_quality: 101 given, at most 100 allowed"
        );
        assert!(
            field_err(&format!(r#"{{{OK},"output_format":"gif"}}"#)).starts_with("output_format:")
        );
        assert!(
            field_err(r#"{"garment_images":["https://x/g.jpg"]}"#).starts_with("person_image:")
        );
        assert!(field_err(&format!(r#"{{{OK},"seed":"12"}}"#)).starts_with("seed:"));
        assert!(field_err(&format!(r#"{{{OK},"turbo":"yes"}}"#)).starts_with("turbo:"));
        assert!(
            field_err(r#"{"person_image":"https://x/p.jpg","garment_images":"x"}"#)
                .starts_with("garment_images:")
        );
    }

    #[test]
    fn malformed_json_is_not_a_field_error() {
        assert!(matches!(try_on_input(b"{nope"), Err(Invalid::Malformed(_))));
    }
}
