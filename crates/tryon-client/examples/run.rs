//! Submit, wait and save in one line.
//!
//! ```text
//! SEGMIND_API_KEY=... [SEGMIND_BASE_URL=http://127.0.0.1:PORT] \
//!   cargo run -p tryon-client --example run -- PERSON GARMENT [OUT]
//! ```
//! `PERSON` and `GARMENT` are URLs or local files. `SEGMIND_BASE_URL`
//! points the client at a mock.

use tryon_client::{Client, Image, TryOnRequest};

fn image(arg: &str) -> Image {
    if arg.starts_with("http://") || arg.starts_with("https://") || arg.starts_with("data:") {
        Image::url(arg)
    } else {
        Image::file(arg)
    }
}

const USAGE: &str = "usage: run PERSON GARMENT [OUT]";

#[path = "common/mod.rs"]
mod common;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging(module_path!());
    let (person, mut args) = common::person_and_rest(USAGE)?;
    let garment = args.next().ok_or(USAGE)?;
    let out = args.next().unwrap_or_else(|| "out.png".into());
    let req = TryOnRequest::builder()
        .person(image(&person))
        .garment(image(&garment))
        .build()?;
    let bytes = Client::from_env()?.run(&req).await?.save(&out).await?;
    tracing::info!(%out, bytes, "saved");
    Ok(())
}
