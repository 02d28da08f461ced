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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(concat!("tryon_client=info,", module_path!(), "=info"))
        .init();
    let mut args = std::env::args().skip(1);
    let (Some(person), Some(garment)) = (args.next(), args.next()) else {
        return Err("usage: run PERSON GARMENT [OUT]".into());
    };
    let out = args.next().unwrap_or_else(|| "out.png".into());
    let req = TryOnRequest::builder()
        .person(image(&person))
        .garment(image(&garment))
        .build()?;
    let bytes = Client::from_env()?.run(&req).await?.save(&out).await?;
    tracing::info!(%out, bytes, "saved");
    Ok(())
}
