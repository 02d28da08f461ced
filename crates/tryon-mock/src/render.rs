//! Real, deterministic output images: the person photo (or a placeholder)
//! with the garments composited on it, encoded in the requested format.

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use image::{ImageEncoder, ImageReader, Limits, Rgba, RgbaImage, imageops};
use tryon_api::types::{OutputFormat, TryOnInput};

use crate::limits::{MAX_INPUT_PIXELS, MAX_INPUT_SIDE, MAX_OUTPUT_SIDE};
use crate::sync::lock;

/// Most memory the decoder may allocate for one input image: 128 MiB (a
/// 25 MP RGBA image is 100 MB).
const MAX_DECODE_ALLOC: u64 = 128 * 1024 * 1024;

fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(MAX_INPUT_SIDE);
    l.max_image_height = Some(MAX_INPUT_SIDE);
    l.max_alloc = Some(MAX_DECODE_ALLOC);
    l
}

/// Checks the size an image's header declares, reading only the header.
/// Bytes that are not an image the mock reads pass (the output then uses a
/// placeholder for them).
pub(crate) fn check_dimensions(field: &str, bytes: &[u8]) -> Result<(), String> {
    let Ok(reader) = ImageReader::new(Cursor::new(bytes)).with_guessed_format() else {
        return Ok(());
    };
    let Ok((w, h)) = reader.into_dimensions() else {
        return Ok(());
    };
    if w > MAX_INPUT_SIDE || h > MAX_INPUT_SIDE || u64::from(w) * u64::from(h) > MAX_INPUT_PIXELS {
        return Err(format!(
            "{field}: the image is {w}x{h} pixels, at most {MAX_INPUT_PIXELS} pixels and \
             {MAX_INPUT_SIDE} px a side allowed"
        ));
    }
    Ok(())
}

/// The content type of an upload, from its first bytes: PNG, JPEG or WebP,
/// anything else `application/octet-stream` (never what the uploader
/// claimed, so an upload cannot be served as HTML).
pub(crate) fn sniff(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        "image/jpeg"
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "image/webp"
    } else {
        "application/octet-stream"
    }
}

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

pub(crate) use tryon_api::body::decode_data_uri;

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

/// Decodes within [`limits`]: a header that lies or an image over the
/// bounds gives `None`, never a huge allocation.
fn load(bytes: &[u8]) -> Option<RgbaImage> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    reader.limits(limits());
    reader.decode().ok().map(|i| i.to_rgba8())
}

/// What one job's output is drawn from, taken from its request at submit:
/// hashes of the references and the bytes of the images the mock holds
/// (inline `data:` URIs and its own uploads), not the request body.
pub(crate) struct RenderInput {
    hash: u64,
    seed: u64,
    person: Option<Bytes>,
    garments: Vec<(u64, Option<Bytes>)>,
    format: OutputFormat,
    quality: i64,
    preserve: bool,
    size: (u32, u32),
}

impl RenderInput {
    /// `resolve` turns an image reference into bytes when the mock holds it.
    pub(crate) fn new(
        input: &TryOnInput,
        size: (u32, u32),
        resolve: &dyn Fn(&str) -> Option<Bytes>,
    ) -> Self {
        let seed = input.seed.unwrap_or(0);
        let seed_bytes = seed.to_le_bytes();
        let mut parts: Vec<&[u8]> = vec![input.person_image.as_bytes(), input.prompt.as_bytes()];
        parts.extend(input.garment_images.iter().map(String::as_bytes));
        parts.push(&seed_bytes);
        Self {
            hash: fnv(&parts),
            seed,
            person: resolve(&input.person_image),
            garments: input
                .garment_images
                .iter()
                .map(|g| (fnv(&[g.as_bytes()]), resolve(g)))
                .collect(),
            format: input.output_format.unwrap_or_default(),
            quality: input.output_quality,
            preserve: input.preserve_input_size,
            size,
        }
    }

    /// Whether it holds image bytes (then the output is rendered at once,
    /// so that they are let go).
    pub(crate) fn holds_images(&self) -> bool {
        self.person.is_some() || self.garments.iter().any(|(_, b)| b.is_some())
    }
}

/// One job's output, rendered once, off the async worker threads, and kept
/// with the job.
pub(crate) struct Render {
    input: Mutex<Option<RenderInput>>,
    out: tokio::sync::OnceCell<Result<Bytes, String>>,
}

impl Render {
    pub(crate) fn new(input: RenderInput) -> Arc<Self> {
        Arc::new(Self {
            input: Mutex::new(Some(input)),
            out: tokio::sync::OnceCell::new(),
        })
    }

    /// The output bytes, rendering them on first use. The rendering runs in
    /// its own task, so a caller that goes away does not lose it.
    pub(crate) async fn bytes(self: &Arc<Self>) -> Result<Bytes, String> {
        if let Some(done) = self.out.get() {
            return done.clone();
        }
        let me = Arc::clone(self);
        let task = tokio::spawn(async move {
            me.out
                .get_or_init(|| async {
                    let Some(input) = lock(&me.input).take() else {
                        return Err("the output was lost".to_string());
                    };
                    tokio::task::spawn_blocking(move || render_input(&input).map(Bytes::from))
                        .await
                        .unwrap_or_else(|e| Err(format!("rendering the output failed: {e}")))
                })
                .await
                .clone()
        });
        task.await
            .unwrap_or_else(|e| Err(format!("rendering the output failed: {e}")))
    }
}

/// Renders the output of `input` (see [`RenderInput::new`]).
#[cfg(test)]
pub(crate) fn render(
    input: &TryOnInput,
    size: (u32, u32),
    resolve: &dyn Fn(&str) -> Option<Bytes>,
) -> Result<Vec<u8>, String> {
    render_input(&RenderInput::new(input, size, resolve))
}

/// Renders an output.
#[allow(clippy::many_single_char_names)] // w, h, x, y: image geometry.
fn render_input(input: &RenderInput) -> Result<Vec<u8>, String> {
    let h = input.hash;
    let seed_bytes = input.seed.to_le_bytes();
    let size = input.size;
    let person = input.person.as_deref().and_then(load);
    let (w, hgt) = match (&person, input.preserve) {
        (Some(p), true) => {
            let (pw, ph) = p.dimensions();
            let longest = pw.max(ph).max(1);
            if longest > MAX_OUTPUT_SIDE {
                let scale = f64::from(MAX_OUTPUT_SIDE) / f64::from(longest);
                (scaled(pw, scale), scaled(ph, scale))
            } else {
                (pw.max(1), ph.max(1))
            }
        }
        _ => (
            size.0.clamp(1, MAX_OUTPUT_SIDE),
            size.1.clamp(1, MAX_OUTPUT_SIDE),
        ),
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
    let n = u32::try_from(input.garments.len().max(1)).unwrap_or(1);
    let x0 = w / 4;
    let band_w = (w / 2).max(n);
    let y0 = hgt * 3 / 10;
    let band_h = (hgt * 2 / 5).max(1);
    let slice_w = (band_w / n).max(1);
    for (i, (g_hash, g_bytes)) in input.garments.iter().enumerate() {
        let i = u32::try_from(i).unwrap_or(0);
        let x = x0 + i * slice_w;
        let tile = match g_bytes.as_deref().and_then(load) {
            Some(img) => {
                let mut tile =
                    imageops::resize(&img, slice_w, band_h, imageops::FilterType::Triangle);
                key_out_background(&mut tile);
                tile
            }
            None => RgbaImage::from_pixel(slice_w, band_h, color(*g_hash)),
        };
        imageops::overlay(&mut canvas, &tile, i64::from(x), i64::from(y0));
    }
    // A small mark that depends on the seed, so seeds give different images.
    let mark = RgbaImage::from_pixel(4.min(w), 4.min(hgt), color(fnv(&[&seed_bytes, b"seed"])));
    imageops::overlay(&mut canvas, &mark, 0, 0);

    encode(&canvas, input.format, input.quality)
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
    // Bounded by MAX_OUTPUT_SIDE by construction.
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
    use crate::config::MockConfig;

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
            let a = render(&input(7, format), MockConfig::DEFAULT_OUTPUT_SIZE, &|_| {
                None
            })
            .unwrap();
            let b = render(&input(7, format), MockConfig::DEFAULT_OUTPUT_SIZE, &|_| {
                None
            })
            .unwrap();
            let c = render(&input(8, format), MockConfig::DEFAULT_OUTPUT_SIZE, &|_| {
                None
            })
            .unwrap();
            assert_eq!(a, b);
            assert_ne!(a, c);
            let img = image::load_from_memory(&a).unwrap();
            assert_eq!((img.width(), img.height()), MockConfig::DEFAULT_OUTPUT_SIZE);
        }
    }

    #[test]
    fn a_header_declaring_a_bomb_is_refused_and_never_decoded() {
        let bomb = png(&RgbaImage::new(1, 1));
        let mut lying = bomb.clone();
        // IHDR width and height (bytes 16..24) say 20000x20000; its CRC
        // (bytes 29..33, over bytes 12..29) is made right again.
        lying[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        lying[20..24].copy_from_slice(&20_000u32.to_be_bytes());
        let crc = crc32fast::hash(&lying[12..29]);
        lying[29..33].copy_from_slice(&crc.to_be_bytes());
        let e = check_dimensions("person_image", &lying).unwrap_err();
        assert!(
            e.starts_with("person_image: the image is 20000x20000 pixels"),
            "{e}"
        );
        assert!(load(&lying).is_none());
        assert!(check_dimensions("person_image", &bomb).is_ok());
        assert_eq!(sniff(&bomb), "image/png");
        assert_eq!(sniff(b"<html>"), "application/octet-stream");
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
            "person" => Some(Bytes::from(person.clone())),
            "garment" => Some(Bytes::from(garment.clone())),
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
