//! `cargo xtask garment`: draw `assets/garment.png`, the sample garment the
//! README's main command uses, so the repo ships no third-party image for it.
//!
//! The drawing is pure arithmetic over pixels (no fonts, no randomness), so
//! the PNG is identical on every run and machine.

use std::path::PathBuf;

use image::{ImageBuffer, Rgb, RgbImage};

/// Where the garment goes, relative to the workspace root.
pub const OUTPUT: &str = "assets/garment.png";

const SIZE: u32 = 256;

/// The T-shirt outline, in a 256×256 square, clockwise.
const SHIRT: &[(f32, f32)] = &[
    (96.0, 28.0),
    (112.0, 40.0),
    (128.0, 44.0),
    (144.0, 40.0),
    (160.0, 28.0),
    (212.0, 52.0),
    (240.0, 104.0),
    (204.0, 120.0),
    (188.0, 96.0),
    (188.0, 232.0),
    (68.0, 232.0),
    (68.0, 96.0),
    (52.0, 120.0),
    (16.0, 104.0),
    (44.0, 52.0),
];

/// Even-odd point-in-polygon test.
fn inside(x: f32, y: f32, poly: &[(f32, f32)]) -> bool {
    let mut hit = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let (xi, yi) = poly[i];
        let (xj, yj) = poly[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            hit = !hit;
        }
        j = i;
    }
    hit
}

/// Draw the garment: a navy T-shirt with white breton stripes on a light
/// grey background, as a flat-lay photo would show it.
pub fn draw() -> RgbImage {
    ImageBuffer::from_fn(SIZE, SIZE, |x, y| {
        #[allow(clippy::cast_precision_loss)] // 0..256 is exact in f32
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        if inside(fx, fy, SHIRT) {
            if y > 70 && (y / 12) % 2 == 0 {
                Rgb([236, 236, 240])
            } else {
                Rgb([28, 42, 92])
            }
        } else {
            Rgb([214, 214, 210])
        }
    })
}

/// Draw and write `assets/garment.png`; returns the path written.
pub fn write() -> Result<PathBuf, image::ImageError> {
    let path = crate::codegen::workspace_root().join(OUTPUT);
    draw().save(&path)?;
    Ok(path)
}
