//! Hostile local image inputs: each is refused before anything is sent,
//! with an error naming the field and the limit, and `preflight` (what a
//! dry run calls) refuses it with the very same error as a real submit.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::png::{crc32, png, png_header_only, png_size};
use common::{PNG, client, serve, submitted};
use tryon_client::limits::{DEFAULT_MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE};
use tryon_client::test_util::VirtualClock;
use tryon_client::{Error, Image, ImageKind, TryOnRequest, TryOnRequestBuilder};

fn garment() -> Image {
    Image::url("https://example.com/shirt.jpg")
}

fn with_person(person: Image) -> TryOnRequestBuilder {
    TryOnRequest::builder().person(person).garment(garment())
}

/// Builds the request, then checks that `preflight` and a real submit both
/// refuse it with the same message, that nothing reached the server, and
/// returns the message. A guard turns a blocking read into a failure
/// instead of a hung test.
async fn refused(builder: TryOnRequestBuilder) -> String {
    let api = serve(|_, _| submitted("https://elsewhere.example")).await;
    let clock = VirtualClock::new();
    let client = client(&api.url, &clock);
    let guard = Duration::from_secs(20);
    let (preflight, submit) = tokio::time::timeout(guard, async {
        let req = builder.build()?;
        let preflight = req.preflight().await;
        let submit = client.submit(&req).await;
        Ok::<_, Error>((preflight, submit))
    })
    .await
    .expect("a hostile input blocked the client")
    .map_or_else(
        |built| (built.to_string(), built.to_string()),
        |(p, s)| (p.unwrap_err().to_string(), s.unwrap_err().to_string()),
    );
    assert_eq!(preflight, submit, "a dry run must check what a run checks");
    assert!(api.requests().is_empty(), "nothing may be sent: {submit}");
    submit
}

#[cfg(unix)]
#[tokio::test]
async fn a_fifo_is_refused_without_opening_it() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("person.png");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let msg = refused(with_person(Image::file(&fifo))).await;
    assert!(msg.starts_with("person_image: "), "{msg}");
    assert!(
        msg.contains("a FIFO (named pipe), not a regular file"),
        "{msg}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn dev_zero_is_refused_not_read() {
    let msg = refused(
        TryOnRequest::builder()
            .person(Image::url("https://example.com/p.jpg"))
            .garment(Image::file("/dev/zero")),
    )
    .await;
    assert!(msg.starts_with("garment_images[0]: "), "{msg}");
    assert!(
        msg.contains("a character device, not a regular file"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let msg = refused(with_person(Image::file(dir.path()))).await;
    assert!(msg.starts_with("person_image: "), "{msg}");
    assert!(msg.contains("a directory, not a regular file"), "{msg}");
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn garbage_after_png_magic() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..2000u32).map(|i| u8::try_from(i * 7 % 251).unwrap()));
    bytes
}

#[tokio::test]
async fn png_magic_then_garbage_is_refused_as_a_file_bytes_and_data_uri() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("person.png");
    std::fs::write(&path, garbage_after_png_magic()).unwrap();
    let msg = refused(with_person(Image::file(&path))).await;
    assert!(msg.starts_with("person_image: file "), "{msg}");
    assert!(
        msg.contains("starts like a image/png but its header is unreadable"),
        "{msg}"
    );

    // Bytes and data: URIs are refused when the request is built.
    let msg = refused(with_person(Image::bytes(
        garbage_after_png_magic(),
        "image/png",
    )))
    .await;
    assert!(msg.contains("header is unreadable"), "{msg}");
    let uri = format!(
        "data:image/png;base64,{}",
        base64_encode(&garbage_after_png_magic())
    );
    let msg = refused(with_person(Image::url(uri))).await;
    assert!(msg.starts_with("person_image: "), "{msg}");
    assert!(msg.contains("header is unreadable"), "{msg}");

    // JPEG and WebP magic with nothing after it.
    for (name, bytes) in [
        ("jpeg", b"\xFF\xD8\xFF\xE0garbage-garbage-garbage".to_vec()),
        (
            "webp",
            b"RIFF\x20\0\0\0WEBPVP8 garbage-garbage-garbage".to_vec(),
        ),
    ] {
        assert!(ImageKind::sniff(&bytes).is_some(), "{name}");
        let msg = refused(with_person(Image::bytes(bytes, "image/png"))).await;
        assert!(msg.contains("header is unreadable"), "{name}: {msg}");
    }
}

#[tokio::test]
async fn a_png_bomb_is_refused_by_its_declared_pixels() {
    // 10000 x 10000 = 100 megapixels declared (each side within the side
    // limit), in a few dozen bytes.
    let bomb = png_header_only(10_000, 10_000);
    assert!(bomb.len() < 1000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.png");
    std::fs::write(&path, &bomb).unwrap();
    let expected = format!(
        "image is 10000x10000 = 100000000 pixels, at most {DEFAULT_MAX_IMAGE_PIXELS} allowed"
    );
    let msg = refused(with_person(Image::file(&path))).await;
    assert!(msg.starts_with("person_image: file "), "{msg}");
    assert!(msg.ends_with(&expected), "{msg}");
    // The 20000 x 20000 (400 megapixels) is refused by its sides.
    let wide = png_header_only(20_000, 20_000);
    let msg = refused(with_person(Image::bytes(wide, "image/png"))).await;
    assert!(
        msg.ends_with("image is 20000x20000, at most 10000 px a side allowed"),
        "{msg}"
    );
    let msg = refused(
        TryOnRequest::builder()
            .person(Image::url("https://example.com/p.jpg"))
            .garment(Image::bytes(bomb.clone(), "image/png")),
    )
    .await;
    assert_eq!(msg, format!("garment_images[0]: {expected}"));

    // The limit is the caller's to set; at it, the image is accepted.
    let ok = with_person(Image::bytes(png(40, 25), "image/png"))
        .max_image_pixels(1000)
        .build()
        .unwrap();
    let checked = ok.preflight().await.unwrap();
    assert_eq!((checked.local[0].width, checked.local[0].height), (40, 25));
    let msg =
        refused(with_person(Image::bytes(png(41, 25), "image/png")).max_image_pixels(1000)).await;
    assert_eq!(
        msg,
        "person_image: image is 41x25 = 1025 pixels, at most 1000 allowed"
    );
}

#[tokio::test]
async fn an_oversized_file_is_refused_from_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.png");
    let mut big = PNG.to_vec();
    big.resize(5000, 0);
    std::fs::write(&path, &big).unwrap();
    let msg = refused(with_person(Image::file(&path)).max_image_bytes(4096)).await;
    assert_eq!(
        msg,
        format!(
            "person_image: file {} is 5000 bytes, at most 4096 allowed",
            path.display()
        )
    );
}

#[tokio::test]
async fn preflight_reports_what_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("person.png");
    std::fs::write(&path, png(30, 20)).unwrap();
    let req = TryOnRequest::builder()
        .person(Image::file(&path))
        .garment(Image::url("https://example.com/shirt.jpg"))
        .garment(Image::bytes(PNG.to_vec(), "image/png"))
        .build()
        .unwrap();
    let p = req.preflight().await.unwrap();
    assert_eq!(p.images, 3);
    let fields: Vec<_> = p.local.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["person_image", "garment_images[1]"]);
    assert_eq!((p.local[0].width, p.local[0].height), (30, 20));
    assert_eq!((p.local[1].width, p.local[1].height), (1, 1));
    let on_disk = std::fs::metadata(&path).unwrap().len();
    assert_eq!(p.total_bytes(), on_disk + PNG.len() as u64);
    assert!(Path::new(&path).exists());
}

#[test]
fn the_test_png_helpers_agree() {
    assert_eq!(png_size(&png(40, 30)), (40, 30));
    // Known CRC of "IEND".
    assert_eq!(crc32(&[b"IEND"]), 0xAE42_6082);
}

/// The client refuses exactly what the mock (standing in for the service)
/// refuses: one assumed limit, held equal here so the two cannot drift.
#[test]
fn the_pixel_limits_are_the_mocks() {
    assert_eq!(
        DEFAULT_MAX_IMAGE_PIXELS,
        tryon_mock::limits::MAX_INPUT_PIXELS
    );
    assert_eq!(MAX_IMAGE_SIDE, tryon_mock::limits::MAX_INPUT_SIDE);
}

#[tokio::test]
async fn a_side_over_the_limit_is_refused_however_few_its_pixels() {
    let long = png_header_only(MAX_IMAGE_SIDE + 1, 10);
    let msg = refused(with_person(Image::bytes(long, "image/png"))).await;
    assert!(
        msg.ends_with(&format!(
            "image is {}x10, at most {MAX_IMAGE_SIDE} px a side allowed",
            MAX_IMAGE_SIDE + 1
        )),
        "{msg}"
    );
    let edge = png_header_only(MAX_IMAGE_SIDE, 10);
    with_person(Image::bytes(edge, "image/png"))
        .build()
        .expect("a side of exactly the limit is accepted");
}
