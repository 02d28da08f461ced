//! Every bound the mock puts on what it is given and on what it holds, in
//! one place. A value out of bounds is refused with a message naming the
//! field and the bound, e.g. `kind.latency: 1.5e19 s given, at most 3600 s
//! allowed`; the control API answers it with 422.
//!
//! - Values a configuration, the builder or a control call sets: durations,
//!   latencies, `Retry-After`, the clock, counts of faults, rules and keys,
//!   text, rates, body and request-log sizes.
//! - Inputs the API takes: image sizes (the garment count is
//!   [`tryon_api::MAX_GARMENTS`], the spec's own bound).
//! - Outputs and records: output sides, recorded bodies, drift records.
//! - Connections: what is read after an early answer before closing.
//! - The proxy and the replay (feature `proxy`): bodies passed, recordings,
//!   replay speed.

// ---- values a configuration or a control call sets --------------------------

/// Longest single duration in a configuration or a control call (stage
/// lengths, retention, one `advance`): 10 years, in seconds.
pub const MAX_DURATION_SECS: u64 = 10 * 365 * 24 * 3600;
/// Longest latency one fault adds, and the most all matching latency faults
/// add to one call together: 1 hour.
pub const MAX_LATENCY_SECS: u64 = 3600;
/// Largest `Retry-After` a fault writes (seconds or an HTTP date this far
/// ahead): 1 year.
pub const MAX_RETRY_AFTER_SECS: u64 = 365 * 24 * 3600;
/// The mock clock never passes 100 years; an `advance` that would is
/// refused (the Rust API saturates there instead).
pub const MAX_CLOCK_SECS: u64 = 100 * 365 * 24 * 3600;
/// Most faults active at once.
pub const MAX_FAULTS: usize = 1000;
/// Most failure rules at once.
pub const MAX_FAIL_RULES: usize = 1000;
/// Most accepted API keys in a key list.
pub const MAX_KEYS: usize = 10_000;
/// Longest API key, error text or prompt substring in a control value, in
/// bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Largest rate-limit refill per second and burst.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Largest `max_body_bytes` a configuration may set: 1 GiB.
pub const MAX_BODY_BYTES: usize = 1 << 30;
/// Largest `request_log_capacity` a configuration may set.
pub const MAX_REQUEST_LOG_CAPACITY: usize = 10_000_000;
/// Largest configuration file (`--config mock.toml`) read: 1 MiB. Only a
/// regular file is read (a FIFO or `/dev/zero` would never end).
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

// ---- inputs, outputs and records ---------------------------------------------

/// Most pixels an input image (person, garment, pose) may declare in its
/// header: 25 megapixels (a 6000x4000 camera photo fits). A submit whose
/// inline or uploaded image declares more is refused with 422 naming the
/// field, before anything is decoded or billed; an image the mock only
/// knows by an outside URL is never fetched, so never checked.
pub const MAX_INPUT_PIXELS: u64 = 25_000_000;
/// Longest side an input image may declare: 10 000 px.
pub const MAX_INPUT_SIDE: u32 = 10_000;
/// Longest side of an output: a photo kept at its size with
/// `preserve_input_size` is scaled down to this, and an `output_size` is
/// clamped to it.
pub const MAX_OUTPUT_SIDE: u32 = 2048;
/// Most bytes of one response body kept in the request log with
/// `record_bodies`: 64 KiB.
pub const MAX_RECORDED_BODY: usize = 64 * 1024;

/// Most request-history rows kept, all keys together: 50 000 (the oldest
/// go first). Each holds its request body (inline images as their hash)
/// and, for a completed job, its output for the output retention.
pub const MAX_HISTORY_ROWS: usize = 50_000;

// ---- connections -------------------------------------------------------------

/// Most bytes of a request the mock reads and drops after it has answered
/// and before it closes the connection: 256 MiB. An answer given before
/// the body was read (a 401, 413, 415, 429 or a fault) would otherwise
/// leave unread bytes behind, and closing a socket with unread bytes makes
/// the kernel reset the connection, which destroys the answer before the
/// client reads it. nginx and Apache do the same ("lingering close").
pub const MAX_LINGER_BYTES: u64 = 256 * 1024 * 1024;
/// Longest time spent reading and dropping the rest of a request after
/// answering (see [`MAX_LINGER_BYTES`]): 5 s, nginx's `lingering_timeout`.
pub const LINGER_SECS: u64 = 5;

// ---- the proxy and the replay (feature `proxy`) ------------------------------

/// Largest request or upstream answer the proxy passes: 64 MiB.
pub const MAX_PROXY_BODY: usize = 64 * 1024 * 1024;
/// Most drift records a proxy keeps; later ones are counted, not stored.
pub const MAX_DRIFT_RECORDS: usize = 10_000;
/// Default bound on the bytes a recording may hold (`--record-limit`):
/// 1 GiB. Once reached, later exchanges are proxied but not recorded, and an
/// error is logged once.
pub const DEFAULT_RECORD_LIMIT: u64 = 1024 * 1024 * 1024;
/// Most a replay's timing may be sped up or slowed down (`--replay-speed`,
/// from the inverse of this to this).
pub const MAX_REPLAY_SPEED: f64 = 1000.0;
