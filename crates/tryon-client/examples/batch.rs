//! Dress one person in several garments, one job each, at most four at a
//! time, all sharing one rate limiter that backs off on any 429.
//!
//! ```text
//! SEGMIND_API_KEY=... [SEGMIND_BASE_URL=http://127.0.0.1:PORT] \
//!   cargo run -p tryon-client --example batch -- PERSON_URL GARMENT_URL...
//! ```

use futures::StreamExt as _;
use tryon_client::{Client, Image, TryOnRequest};

#[path = "common/mod.rs"]
mod common;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging(module_path!());
    let (person, args) = common::person_and_rest("usage: batch PERSON_URL GARMENT_URL...")?;
    let requests = args
        .map(|garment| {
            TryOnRequest::builder()
                .person(Image::url(person.clone()))
                .garment(Image::url(garment))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let client = Client::from_env()?;
    let mut results = std::pin::pin!(client.run_many(requests, 4));
    let mut failed = 0;
    while let Some((i, result)) = results.next().await {
        match result {
            Ok(out) => {
                let bytes = out.save(format!("out-{i}.png")).await?;
                tracing::info!(i, bytes, "saved");
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(i, error = %e, "job failed");
            }
        }
    }
    if failed > 0 {
        return Err(format!("{failed} jobs failed").into());
    }
    Ok(())
}
