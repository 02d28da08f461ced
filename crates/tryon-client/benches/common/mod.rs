//! Shared by the client's bench binaries: a request, a runtime,
//! statistics and the process's peak memory.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use tryon_client::tryon_api::{self, types};
use tryon_client::{Clock, Image, TryOnRequest};

/// The API key the benches send to the mock.
pub const KEY: &str = "sk-bench";

/// The person image every bench request names.
pub const PERSON_URL: &str = "https://example.com/person.jpg";

/// The URL of garment `i` in a bench request.
pub fn garment_url(i: usize) -> String {
    format!("https://example.com/g{i}.jpg")
}

/// A valid request with URL inputs, `garments` garments.
pub fn request(garments: usize, turbo: bool, seed: u64) -> TryOnRequest {
    TryOnRequest::builder()
        .person(Image::url(PERSON_URL))
        .garments((0..garments).map(|i| Image::url(garment_url(i))))
        .turbo(turbo)
        .seed(seed)
        .build()
        .expect("a valid request")
}

/// The median of `v` (sorted in place).
pub fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The `q` quantile of a sorted slice.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A field of `/proc/self/status` in KiB (`VmHWM` is the peak RSS).
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Microseconds with one decimal.
pub fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// Runs `run` to its end on a current-thread tokio runtime.
pub fn block_on<F: std::future::Future>(run: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(run)
}

/// The official SDK's pattern on the raw wire (the generated `tryon_api`
/// client): submit once, poll the status every second, read the result.
/// No limiter and no retries: any error (a `429` among them) fails the job.
pub struct Sdk {
    api: tryon_api::Client,
    clock: Arc<dyn Clock>,
}

impl Sdk {
    /// Against `base_url`, sleeping and reading time on `clock` (the
    /// bench's virtual or driving clock, as the client's is).
    pub fn new(base_url: &str, clock: impl Clock) -> Self {
        let key = (
            reqwest::header::HeaderName::from_static("x-api-key"),
            reqwest::header::HeaderValue::from_static(KEY),
        );
        let http = reqwest::Client::builder()
            .default_headers(reqwest::header::HeaderMap::from_iter([key]))
            // The client's own timeouts, so connections are made and
            // scheduled as the client's are.
            .timeout(Duration::from_mins(2))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client");
        Self {
            api: tryon_api::Client::new_with_client(base_url, http),
            clock: Arc::new(clock),
        }
    }

    /// Brings the clock (and what it drives) up to date before a call.
    fn catch_up(&self) -> Duration {
        self.clock.now()
    }

    /// One job, from its submit to its result; the clock time at which a
    /// poll saw it `COMPLETED`.
    pub async fn run(&self, body: types::TryOnInput) -> Result<Duration, String> {
        let text = |e: tryon_api::Error<types::ErrorBody>| e.to_string();
        self.catch_up();
        let submitted = self.api.submit_try_on().body(body).send();
        let request_id = submitted.await.map_err(text)?.into_inner().request_id;
        let done = loop {
            self.clock.sleep(Duration::from_secs(1)).await;
            self.catch_up();
            let status = self.api.get_status().request_id(request_id.as_str());
            match status.send().await.map_err(text)?.into_inner().status {
                types::JobStatus::Completed => break self.catch_up(),
                types::JobStatus::Failed => return Err(format!("job {request_id} failed")),
                types::JobStatus::Queued | types::JobStatus::Processing => {}
            }
        };
        self.catch_up();
        let result = self.api.get_result().request_id(request_id.as_str());
        result.send().await.map_err(text)?;
        Ok(done)
    }
}

/// The wire body the client sends for `request(garments, turbo, seed)`.
pub fn wire_body(garments: usize, turbo: bool, seed: u64) -> types::TryOnInput {
    types::TryOnInput {
        person_image: PERSON_URL.to_string(),
        garment_images: (0..garments).map(garment_url).collect(),
        prompt: String::new(),
        reference_pose: None,
        seed: Some(seed),
        turbo,
        output_format: Some(types::OutputFormat::Png),
        output_quality: 95,
        preserve_input_size: false,
    }
}
