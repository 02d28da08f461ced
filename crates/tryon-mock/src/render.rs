//! Real, deterministic output images: the person photo (or a placeholder)
//! with the garments composited on it, encoded in the requested format.

use std::io::Cursor;

use base64::Engine as _;
use image::{ImageEncoder, Rgba, RgbaImage, imageops};
use tryon_api::types::{OutputFormat, TryOnInput};

/// Size of the generated image when the person photo is unknown or its size
/// is not preserved. Small on purpose, so tests stay fast.
pub const PLACEHOLDER_SIZE: (u32, u32) = (64, 96);
/// Longest side of an output with `preserve_input_size`; larger photos are
/// scaled down to this.
pub const MAX_SIDE: u32 = 2048;

/// FNV-1a, stable across Rust versions (unlike `DefaultHasher`).
pub(crate) fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn color(h: u64) -> Rgba<u8> {
    let [r, g, b, ..] = h.to_le_bytes();
    Rgba([r, g, b, 255])
}

/// Decodes a `data:<mime>;base64,<data>` URI into its bytes.
pub(crate) fn decode_data_uri(uri: &str) -> Option<(String, Vec<u8>)> {
    let rest = uri.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()?;
    let mime = if mime.is_empty() {
        "application/octet-stream"
    } else {
        mime
    };
    Some((mime.to_string(), bytes))
}

/// The MIME type of an output format.
pub(crate) fn content_type(format: OutputFormat) -> &'static str {
    match format {
        OutputFormat::Png => "image/png",
        OutputFormat::Jpg => "image/jpeg",
        OutputFormat::Webp => "image/webp",
    }
}

/// The file extension of an output format.
pub(crate) fn extension(format: OutputFormat) -> &'static str {
    match format {
        OutputFormat::Png => "png",
        OutputFormat::Jpg => "jpg",
        OutputFormat::Webp => "webp",
    }
}

fn load(bytes: &[u8]) -> Option<RgbaImage> {
    image::load_from_memory(bytes).ok().map(|i| i.to_rgba8())
}

/// Renders the output of `input`. `resolve` turns an image reference (data
/// URI or mock upload URL) into bytes when the mock knows it.
#[allow(clippy::many_single_char_names)] // w, h, x, y: image geometry.
pub(crate) fn render(
    input: &TryOnInput,
    size: (u32, u32),
    resolve: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<Vec<u8>, String> {
    let seed = input.seed.unwrap_or(0);
    let garments: Vec<&[u8]> = input
        .garment_images
        .iter()
        .map(std::string::String::as_bytes)
        .collect();
    let mut parts: Vec<&[u8]> = vec![input.person_image.as_bytes(), input.prompt.as_bytes()];
    parts.extend(garments);
    let seed_bytes = seed.to_le_bytes();
    parts.push(&seed_bytes);
    let h = fnv(&parts);

    let person = resolve(&input.person_image).and_then(|b| load(&b));
    let (w, hgt) = match (&person, input.preserve_input_size) {
        (Some(p), true) => {
            let (pw, ph) = p.dimensions();
            let longest = pw.max(ph).max(1);
            if longest > MAX_SIDE {
                let scale = f64::from(MAX_SIDE) / f64::from(longest);
                (scaled(pw, scale), scaled(ph, scale))
            } else {
                (pw.max(1), ph.max(1))
            }
        }
        _ => (size.0.clamp(1, MAX_SIDE), size.1.clamp(1, MAX_SIDE)),
    };
    let mut canvas = match person {
        Some(p) if p.dimensions() == (w, hgt) => p,
        // Cover the output and crop the overflow, so the person keeps their
        // proportions.
        Some(p) => image::DynamicImage::ImageRgba8(p)
            .resize_to_fill(w, hgt, imageops::FilterType::Triangle)
            .to_rgba8(),
        None => {
            let top = color(h);
            let bottom = color(h.rotate_left(24));
            RgbaImage::from_fn(w, hgt, |_, y| {
                let t = f64::from(y) / f64::from(hgt.max(1));
                let mix = |a: u8, b: u8| {
                    let v = f64::from(a) * (1.0 - t) + f64::from(b) * t;
                    // Bounded to 0..=255 by construction.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let v = v.round().clamp(0.0, 255.0) as u8;
                    v
                };
                Rgba([
                    mix(top[0], bottom[0]),
                    mix(top[1], bottom[1]),
                    mix(top[2], bottom[2]),
                    255,
                ])
            })
        }
    };

    // Garments side by side over the torso: 25..75 % wide, 30..70 % high.
    let n = u32::try_from(input.garment_images.len().max(1)).unwrap_or(1);
    let x0 = w / 4;
    let band_w = (w / 2).max(n);
    let y0 = hgt * 3 / 10;
    let band_h = (hgt * 2 / 5).max(1);
    let slice_w = (band_w / n).max(1);
    for (i, g) in input.garment_images.iter().enumerate() {
        let i = u32::try_from(i).unwrap_or(0);
        let x = x0 + i * slice_w;
        let tile = match resolve(g).and_then(|b| load(&b)) {
            Some(img) => {
                let mut tile =
                    imageops::resize(&img, slice_w, band_h, imageops::FilterType::Triangle);
                key_out_background(&mut tile);
                tile
            }
            None => RgbaImage::from_pixel(slice_w, band_h, color(fnv(&[g.as_bytes()]))),
        };
        imageops::overlay(&mut canvas, &tile, i64::from(x), i64::from(y0));
    }
    // A small mark that depends on the seed, so seeds give different images.
    let mark = RgbaImage::from_pixel(4.min(w), 4.min(hgt), color(fnv(&[&seed_bytes, b"seed"])));
    imageops::overlay(&mut canvas, &mark, 0, 0);

    encode(
        &canvas,
        input.output_format.unwrap_or(OutputFormat::Png),
        input.output_quality,
    )
}

/// Make a flat-lay's backdrop transparent: pixels close to the colour of
/// the top-left corner (the backdrop, in a flat-lay photo) are cleared, so
/// the garment and not its square lands on the person. A tile whose centre
/// has the corner's colour (a plain swatch) is left whole.
fn key_out_background(tile: &mut RgbaImage) {
    const CLOSE: u8 = 24;
    let distance =
        |a: &Rgba<u8>, b: &Rgba<u8>| (0..3).map(|i| a.0[i].abs_diff(b.0[i])).max().unwrap_or(0);
    let (w, h) = tile.dimensions();
    let (Some(&corner), Some(&centre)) = (
        tile.get_pixel_checked(0, 0),
        tile.get_pixel_checked(w / 2, h / 2),
    ) else {
        return;
    };
    if distance(&corner, &centre) < CLOSE {
        return;
    }
    for pixel in tile.pixels_mut() {
        if distance(pixel, &corner) < CLOSE {
            pixel.0[3] = 0;
        }
    }
}

fn scaled(v: u32, scale: f64) -> u32 {
    // Bounded by MAX_SIDE by construction.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let s = (f64::from(v) * scale).round().max(1.0) as u32;
    s
}

fn encode(img: &RgbaImage, format: OutputFormat, quality: i64) -> Result<Vec<u8>, String> {
    let mut out = Cursor::new(Vec::new());
    let (w, h) = img.dimensions();
    let result =
        match format {
            OutputFormat::Png => image::codecs::png::PngEncoder::new(&mut out).write_image(
                img.as_raw(),
                w,
                h,
                image::ExtendedColorType::Rgba8,
            ),
            OutputFormat::Jpg => {
                let rgb = image::DynamicImage::ImageRgba8(img.clone()).to_rgb8();
                let q = u8::try_from(quality.clamp(1, 100)).unwrap_or(95);
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q).write_image(
                    rgb.as_raw(),
                    w,
                    h,
                    image::ExtendedColorType::Rgb8,
                )
            }
            // The `image` crate only writes lossless WebP, so quality is ignored.
            OutputFormat::Webp => image::codecs::webp::WebPEncoder::new_lossless(&mut out)
                .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgba8),
        };
    result.map_err(|e| format!("encoding the output image failed: {e}"))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(seed: u64, format: OutputFormat) -> TryOnInput {
        serde_json::from_value(serde_json::json!({
            "person_image": "https://example.com/p.jpg",
            "garment_images": ["https://example.com/a.jpg", "https://example.com/b.jpg"],
            "seed": seed,
            "output_format": format,
        }))
        .unwrap()
    }

    #[test]
    fn deterministic_and_decodable_in_every_format() {
        for format in [OutputFormat::Png, OutputFormat::Jpg, OutputFormat::Webp] {
            let a = render(&input(7, format), PLACEHOLDER_SIZE, &|_| None).unwrap();
            let b = render(&input(7, format), PLACEHOLDER_SIZE, &|_| None).unwrap();
            let c = render(&input(8, format), PLACEHOLDER_SIZE, &|_| None).unwrap();
            assert_eq!(a, b);
            assert_ne!(a, c);
            let img = image::load_from_memory(&a).unwrap();
            assert_eq!((img.width(), img.height()), PLACEHOLDER_SIZE);
        }
    }

    #[test]
    fn data_uri_round_trip() {
        let (mime, bytes) = decode_data_uri("data:image/png;base64,aGk=").unwrap();
        assert_eq!((mime.as_str(), bytes.as_slice()), ("image/png", &b"hi"[..]));
        assert!(decode_data_uri("https://x").is_none());
    }

    fn png(img: &RgbaImage) -> Vec<u8> {
        encode(img, OutputFormat::Png, 95).unwrap()
    }

    #[test]
    fn output_size_is_honoured_and_a_flat_lays_backdrop_is_keyed_out() {
        // A red person, and a flat-lay: a blue square on a grey backdrop.
        let person = png(&RgbaImage::from_pixel(300, 300, Rgba([200, 0, 0, 255])));
        let garment = png(&RgbaImage::from_fn(40, 40, |x, y| {
            if (10..30).contains(&x) && (10..30).contains(&y) {
                Rgba([0, 0, 200, 255])
            } else {
                Rgba([214, 214, 210, 255])
            }
        }));
        let input: TryOnInput = serde_json::from_value(serde_json::json!({
            "person_image": "person",
            "garment_images": ["garment"],
        }))
        .unwrap();
        let resolve = |r: &str| match r {
            "person" => Some(person.clone()),
            "garment" => Some(garment.clone()),
            _ => None,
        };
        let out = image::load_from_memory(&render(&input, (120, 160), &resolve).unwrap())
            .unwrap()
            .to_rgb8();
        assert_eq!(out.dimensions(), (120, 160));
        // The garment band spans x 30..90, y 48..112: its middle is the
        // garment, its corner shows the person through the keyed backdrop.
        assert_eq!(out.get_pixel(60, 80).0, [0, 0, 200]);
        assert_eq!(out.get_pixel(32, 50).0, [200, 0, 0]);
    }
}
