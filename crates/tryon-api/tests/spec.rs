//! The hand-written constants beside the generated code agree with the
//! spec they come from.

use serde_json::Value;

#[test]
fn max_garments_is_the_specs_max_items() {
    let spec: Value = serde_yaml::from_str(tryon_api::SPEC).expect("tryon_api::SPEC parses");
    let garments = &spec["components"]["schemas"]["TryOnInput"]["properties"]["garment_images"];
    assert_eq!(
        garments["maxItems"].as_u64(),
        Some(tryon_api::MAX_GARMENTS as u64),
        "TryOnInput.garment_images.maxItems in openapi/segmind-tryon.yaml: {garments}"
    );
}
