//! Test servers shared by this crate's tests and by other crates' (feature
//! `test-util`, for dev-dependencies only), so each exists once instead of
//! being copied or reached into by path.
//!
//! - [`DriftedUpstream`]: an upstream that departs from the API spec in
//!   planted ways, for the validating proxy's tests and `tryon parity`'s.

mod drifted;

pub use drifted::{DriftedUpstream, Seen};
