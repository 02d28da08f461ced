//! Validation happens before any byte is sent; messages name field and limit.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use tryon_client::test_util::VirtualClock;
use tryon_client::{Error, Format, Image, TryOnRequest};

fn url(i: usize) -> Image {
    Image::url(format!("https://example.com/{i}.jpg"))
}

fn message(b: tryon_client::TryOnRequestBuilder) -> String {
    match b.build() {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn validation_messages() {
    let base = || TryOnRequest::builder().person(url(0));
    let cases = [
        (
            "no person",
            message(TryOnRequest::builder().garment(url(1))),
        ),
        ("no garments", message(base())),
        ("12 garments", message(base().garments((0..12).map(url)))),
        (
            "quality 101",
            message(base().garment(url(1)).output_quality(101)),
        ),
        (
            "ftp url",
            message(base().garment(Image::url("ftp://example.com/a.jpg"))),
        ),
        (
            "not a url",
            message(base().garment(Image::url("shirt.jpg"))),
        ),
        ("no host", message(base().garment(Image::url("https://")))),
        (
            "bytes not image",
            message(base().garment(Image::bytes(b"%PDF-1.7".to_vec(), "image/png"))),
        ),
        (
            "empty bytes",
            message(base().garment(Image::bytes(Vec::new(), "image/png"))),
        ),
        (
            "data uri not base64",
            message(base().garment(Image::url("data:image/png,abc"))),
        ),
        (
            "data uri bad base64",
            message(base().garment(Image::url("data:image/png;base64,@@@"))),
        ),
        (
            "data uri gif",
            message(base().garment(Image::url("data:image/gif;base64,R0lGODlhAQABAAAAACw="))),
        ),
        (
            "too big",
            message(
                base()
                    .garment(Image::bytes(PNG.to_vec(), "image/png"))
                    .max_image_bytes(10),
            ),
        ),
        (
            "bad pose",
            message(
                base()
                    .garment(url(1))
                    .reference_pose(Image::url("javascript:alert(1)")),
            ),
        ),
        (
            "turbo 5 (warning only)",
            message(base().garments((0..5).map(url)).turbo(true)),
        ),
        (
            "11 garments",
            message(
                base()
                    .garments((0..11).map(url))
                    .output_format(Format::Jpg)
                    .output_quality(100),
            ),
        ),
    ];
    let text = cases
        .iter()
        .map(|(name, msg)| format!("{name}: {msg}"))
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!(text);
}

#[test]
fn exact_limit_message() {
    let err = TryOnRequest::builder()
        .person(url(0))
        .garments((0..12).map(url))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "garment_images: 12 given, at most 11 allowed"
    );
    assert!(matches!(err, Error::Invalid { ref field, .. } if field == "garment_images"));
}

#[tokio::test]
async fn files_are_checked_before_anything_is_sent() {
    let api = serve(|_, _| submitted("https://elsewhere.example")).await;
    let clock = VirtualClock::new();
    let client = client(&api.url, &clock);
    let dir = std::env::temp_dir().join(format!("tryon-validation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("notes.png");
    std::fs::write(&text, "just text").unwrap();
    let req = TryOnRequest::builder()
        .person(Image::file(&text))
        .garment(url(1))
        .build()
        .unwrap();
    let err = client.submit(&req).await.unwrap_err();
    assert!(err.to_string().starts_with("person_image: file "), "{err}");
    assert!(
        err.to_string().contains("not a PNG, JPEG or WebP image"),
        "{err}"
    );

    let missing = TryOnRequest::builder()
        .person(Image::file(dir.join("missing.png")))
        .garment(url(1))
        .build()
        .unwrap();
    assert!(matches!(
        client.submit(&missing).await.unwrap_err(),
        Error::Io { .. }
    ));
    assert!(api.requests().is_empty(), "nothing may be sent");
}

#[tokio::test]
async fn local_images_go_inline_with_the_sniffed_type() {
    let api = serve(|_, _| submitted("https://elsewhere.example")).await;
    let clock = VirtualClock::new();
    let dir = std::env::temp_dir().join(format!("tryon-inline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("person.jpg"); // a PNG whatever the name says
    std::fs::write(&file, PNG).unwrap();
    let req = TryOnRequest::builder()
        .person(Image::file(&file))
        .garment(Image::bytes(PNG.to_vec(), "image/jpeg"))
        .build()
        .unwrap();
    client(&api.url, &clock).submit(&req).await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&api.requests()[0].body).unwrap();
    assert!(
        body["person_image"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,iVBOR")
    );
    assert!(
        body["garment_images"][0]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
}
