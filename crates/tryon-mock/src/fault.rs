//! Faults injected into the next calls of a route: error codes, latency,
//! dropped connections and broken bodies.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A group of endpoints a [`Fault`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultRoute {
    /// `POST /v2/p-image-try-on`.
    Submit,
    /// `GET /v2/requests/{id}/status`.
    Status,
    /// `GET /v2/requests/{id}` (and the legacy `/v1/requests/{id}`).
    Result,
    /// `POST /v1/p-image-try-on`.
    Run,
    /// `POST /upload-asset`.
    Upload,
    /// `GET` of an output image or uploaded asset.
    Output,
    /// `GET /v1/get-user-credits`.
    Credits,
    /// `GET /inference-request/request-history` and
    /// `GET /inference-request/request-history/{id}`.
    History,
    /// Every route above.
    Any,
}

impl FaultRoute {
    pub(crate) fn covers(self, other: FaultRoute) -> bool {
        self == FaultRoute::Any || self == other
    }
}

/// How a `Retry-After` header is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryAfter {
    /// `Retry-After: <seconds>` (at most
    /// [`MAX_RETRY_AFTER_SECS`](crate::limits::MAX_RETRY_AFTER_SECS)).
    Seconds(u64),
    /// `Retry-After: <HTTP date>`, this many seconds after the (real) now
    /// (at most [`MAX_RETRY_AFTER_SECS`](crate::limits::MAX_RETRY_AFTER_SECS)).
    HttpDate(u64),
}

impl RetryAfter {
    pub(crate) fn header_value(self) -> String {
        match self {
            RetryAfter::Seconds(s) => s.to_string(),
            // Bounded when the fault is added; checked again so that no
            // value can make the clock overflow.
            RetryAfter::HttpDate(s) => std::time::SystemTime::now()
                .checked_add(Duration::from_secs(s))
                .map_or_else(|| s.to_string(), httpdate::fmt_http_date),
        }
    }
}

/// What a [`Fault`] does to a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status code (400 to 599) and `{"error": …}` instead
    /// of handling the call (nothing is accepted or billed). Use 500/502/503/504 for
    /// server errors, 429 for rate limiting.
    Status {
        /// The HTTP status code.
        code: u16,
        /// An optional `Retry-After` header.
        #[serde(default)]
        retry_after: Option<RetryAfter>,
    },
    /// Wait this long (real time) before handling the call (at most
    /// [`MAX_LATENCY_SECS`](crate::limits::MAX_LATENCY_SECS); the latencies of all
    /// matching faults add up to at most that too).
    Latency(#[serde(with = "crate::secs")] Duration),
    /// Close the connection without a response before handling the call:
    /// nothing is accepted or billed.
    DropBeforeAccept,
    /// Handle the call, then close the connection without a response if it
    /// succeeded. On submit the job is accepted and billed, so the client
    /// sees an ambiguous submit. Only consumed by a call that succeeded.
    DropAfterAccept,
    /// Answer as a gateway in front of the service would: status `code`
    /// (500 to 599) with an HTML page, not the service's JSON error. With
    /// `accepted` the call is handled first (a submit is accepted and
    /// billed) and its answer replaced by the page, as when a gateway gives
    /// up waiting (`504`); without, nothing is accepted or billed (`502`:
    /// the service could not be reached).
    Gateway {
        /// The HTTP status code.
        code: u16,
        /// Whether the call was handled (and a submit billed) first.
        #[serde(default)]
        accepted: bool,
    },
    /// Handle the call, then replace the body with an HTML page that is not
    /// JSON (status code and side effects kept).
    NotJson,
    /// Handle the call, then cut the body in half (a complete HTTP response
    /// whose JSON is truncated; status code and side effects kept).
    TruncatedBody,
}

/// A fault on a route for the next `times` calls (or every call).
///
/// ```
/// use std::time::Duration;
/// use tryon_mock::{Fault, RetryAfter, FaultRoute};
///
/// // The next two status polls answer 503 with `Retry-After: 1`.
/// let f = Fault::server_error(FaultRoute::Status, 503).times(2).retry_after(RetryAfter::Seconds(1));
/// // Every call is 50 ms slower.
/// let g = Fault::latency(FaultRoute::Any, Duration::from_millis(50));
/// # let _ = (f, g);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// Where the fault applies.
    pub route: FaultRoute,
    /// What it does.
    pub kind: FaultKind,
    /// How many calls it affects; `None` for every call until cleared.
    #[serde(default)]
    pub times: Option<u64>,
}

impl Fault {
    /// A fault of `kind` on `route` for the next call.
    pub fn new(route: FaultRoute, kind: FaultKind) -> Self {
        Self {
            route,
            kind,
            times: Some(1),
        }
    }

    /// The next call on `route` answers `code` (500, 502, 503, 504, …).
    pub fn server_error(route: FaultRoute, code: u16) -> Self {
        Self::new(
            route,
            FaultKind::Status {
                code,
                retry_after: None,
            },
        )
    }

    /// The next call on `route` answers 429 (add a `Retry-After` with
    /// [`retry_after`](Self::retry_after)).
    pub fn rate_limited(route: FaultRoute) -> Self {
        Self::server_error(route, 429)
    }

    /// Every call on `route` waits `delay` first (until cleared or limited
    /// with [`times`](Self::times)).
    pub fn latency(route: FaultRoute, delay: Duration) -> Self {
        Self {
            times: None,
            ..Self::new(route, FaultKind::Latency(delay))
        }
    }

    /// The next call on `route` has its connection closed before it is
    /// handled (not billed).
    pub fn drop_before_accept(route: FaultRoute) -> Self {
        Self::new(route, FaultKind::DropBeforeAccept)
    }

    /// The next successful submit is accepted and billed, then its connection
    /// is closed without a response.
    pub fn drop_after_accept() -> Self {
        Self::new(FaultRoute::Submit, FaultKind::DropAfterAccept)
    }

    /// The next call on `route` is answered by a gateway's HTML page with
    /// status `code` (500 to 599) before the service sees it: nothing is
    /// accepted or billed, and nothing in the answer says so.
    pub fn gateway_page(route: FaultRoute, code: u16) -> Self {
        Self::new(
            route,
            FaultKind::Gateway {
                code,
                accepted: false,
            },
        )
    }

    /// The next submit is accepted and billed, then its answer is replaced
    /// by a gateway's HTML page with status `code` (a `504` when a gateway
    /// gives up waiting on the service).
    pub fn gateway_page_after_accept(code: u16) -> Self {
        Self::new(
            FaultRoute::Submit,
            FaultKind::Gateway {
                code,
                accepted: true,
            },
        )
    }

    /// The next call on `route` gets a body that is not JSON.
    pub fn not_json(route: FaultRoute) -> Self {
        Self::new(route, FaultKind::NotJson)
    }

    /// The next call on `route` gets a truncated JSON body.
    pub fn truncated_body(route: FaultRoute) -> Self {
        Self::new(route, FaultKind::TruncatedBody)
    }

    /// Affect the next `n` calls instead.
    #[must_use]
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Affect every call until the faults are cleared.
    #[must_use]
    pub fn always(mut self) -> Self {
        self.times = None;
        self
    }

    /// Add a `Retry-After` header (only for [`FaultKind::Status`]).
    #[must_use]
    pub fn retry_after(mut self, value: RetryAfter) -> Self {
        if let FaultKind::Status { retry_after, .. } = &mut self.kind {
            *retry_after = Some(value);
        }
        self
    }
}
