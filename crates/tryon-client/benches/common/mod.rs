//! Shared by the client's bench binaries: a request, a runtime,
//! statistics and the process's peak memory.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use tryon_client::{Image, TryOnRequest};

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
