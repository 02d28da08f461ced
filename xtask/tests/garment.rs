//! The checked-in sample garment is exactly what `cargo xtask garment` draws.

#[test]
fn checked_in_garment_matches_the_drawing() {
    let path = xtask::codegen::workspace_root().join(xtask::garment::OUTPUT);
    let on_disk = image::open(&path)
        .expect("assets/garment.png decodes")
        .to_rgb8();
    let drawn = xtask::garment::draw();
    assert_eq!(on_disk.dimensions(), drawn.dimensions());
    assert!(
        on_disk.as_raw() == drawn.as_raw(),
        "assets/garment.png differs from the drawing; run `cargo xtask garment`"
    );
}
