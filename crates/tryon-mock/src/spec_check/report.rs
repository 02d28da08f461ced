//! What a check concluded about one body, and what a server's checks saw
//! in all.

use std::collections::BTreeSet;

/// How a body was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Against the spec's schema for this operation and status.
    Documented,
    /// An entry of [`EXCEPTIONS`](super::EXCEPTIONS), as an `ErrorBody`; holds
    /// `"METHOD template status"`.
    Exception(String),
    /// A path outside the spec (`/outputs/…`, `/assets/…`, unknown paths),
    /// as an `ErrorBody`.
    OffSpec,
    /// A status a test injected with a fault, as an `ErrorBody`; holds
    /// `"METHOD path status"`.
    Injected(String),
}

/// What a server's spec check saw ([`MockServer::spec_report`](crate::MockServer::spec_report)).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SpecReport {
    /// JSON bodies checked.
    pub checked: u64,
    /// Status codes of the checked bodies.
    pub statuses: BTreeSet<u16>,
    /// The [`EXCEPTIONS`](super::EXCEPTIONS) that were used, as `"METHOD template status"`.
    pub exceptions: BTreeSet<String>,
    /// Bodies on paths outside the spec (checked as `ErrorBody`).
    pub off_spec: u64,
    /// Statuses injected by a fault, as `"METHOD path status"` (their
    /// bodies checked as `ErrorBody`).
    pub injected: BTreeSet<String>,
    /// Every problem found; non-empty fails the server's drop.
    pub violations: Vec<String>,
}

impl SpecReport {
    pub(crate) fn record(&mut self, status: u16, result: Result<Checked, Vec<String>>) {
        self.checked += 1;
        self.statuses.insert(status);
        match result {
            Ok(Checked::Documented) => {}
            Ok(Checked::Exception(e)) => {
                self.exceptions.insert(e);
            }
            Ok(Checked::OffSpec) => self.off_spec += 1,
            Ok(Checked::Injected(e)) => {
                self.injected.insert(e);
            }
            Err(mut errors) => self.violations.append(&mut errors),
        }
    }
}
