//! Submit a job, keep only its id, and re-attach to it later (as after a
//! restart), watching its status changes.
//!
//! ```text
//! SEGMIND_API_KEY=... [SEGMIND_BASE_URL=http://127.0.0.1:PORT] \
//!   cargo run -p tryon-client --example submit_reattach -- PERSON_URL GARMENT_URL...
//! ```

use futures::StreamExt as _;
use tryon_client::{Client, Error, Image, TryOnRequest};

#[path = "common/mod.rs"]
mod common;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging(module_path!());
    let (person, args) =
        common::person_and_rest("usage: submit_reattach PERSON_URL GARMENT_URL...")?;
    let req = TryOnRequest::builder()
        .person(Image::url(person))
        .garments(args.map(Image::url))
        .build()?;
    let client = Client::from_env()?;

    // Submit and keep only the id (a real program would store it).
    let request_id = client.submit(&req).await?.request_id().to_string();
    tracing::info!(%request_id, "submitted; re-attaching");

    // Later, maybe in another process: re-attach by id.
    let job = client
        .job(&request_id)
        .with_expected_duration(req.expected_duration());
    let mut events = std::pin::pin!(job.events());
    while let Some(status) = events.next().await {
        tracing::info!(status = %status?, "status");
    }
    match job.result().await {
        Ok(out) => tracing::info!(url = %out.url(), "done"),
        Err(Error::Failed { detail, .. }) => tracing::warn!(%detail, "job failed"),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
