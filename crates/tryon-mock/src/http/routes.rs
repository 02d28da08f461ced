//! The API's endpoints: which method and path is which, and which
//! [`FaultRoute`] its faults are on.

use hyper::Method;

use crate::fault::FaultRoute;

pub(crate) enum Endpoint<'a> {
    Submit,
    Run,
    Status(&'a str),
    Result(&'a str),
    Upload,
    Output(&'a str),
    Asset(&'a str),
    Credits,
    History,
    HistoryEntry(&'a str),
    /// A known path with another method; holds the `Allow` value.
    MethodNotAllowed(&'static str),
    NotFound,
}

impl Endpoint<'_> {
    pub(crate) fn route(&self) -> Option<FaultRoute> {
        Some(match self {
            Endpoint::Submit => FaultRoute::Submit,
            Endpoint::Run => FaultRoute::Run,
            Endpoint::Status(_) => FaultRoute::Status,
            Endpoint::Result(_) => FaultRoute::Result,
            Endpoint::Upload => FaultRoute::Upload,
            Endpoint::Output(_) | Endpoint::Asset(_) => FaultRoute::Output,
            Endpoint::Credits => FaultRoute::Credits,
            Endpoint::History | Endpoint::HistoryEntry(_) => FaultRoute::History,
            Endpoint::MethodNotAllowed(_) | Endpoint::NotFound => return None,
        })
    }
}

/// The single segment after `prefix`, if `path` is `prefix` + one
/// non-empty segment.
fn segment<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)
        .filter(|s| !s.is_empty() && !s.contains('/'))
}

pub(crate) fn classify<'a>(method: &Method, path: &'a str) -> Endpoint<'a> {
    let want = |allowed: &'static str, e: Endpoint<'a>| {
        if method.as_str() == allowed {
            e
        } else {
            Endpoint::MethodNotAllowed(allowed)
        }
    };
    match path {
        "/v2/p-image-try-on" => return want("POST", Endpoint::Submit),
        "/v1/p-image-try-on" => return want("POST", Endpoint::Run),
        "/upload-asset" => return want("POST", Endpoint::Upload),
        "/v1/get-user-credits" => return want("GET", Endpoint::Credits),
        "/inference-request/request-history" => return want("GET", Endpoint::History),
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/v2/requests/")
        && let Some(id) = rest.strip_suffix("/status")
        && !id.is_empty()
        && !id.contains('/')
    {
        return want("GET", Endpoint::Status(id));
    }
    if let Some(id) = segment(path, "/v2/requests/").or_else(|| segment(path, "/v1/requests/")) {
        return want("GET", Endpoint::Result(id));
    }
    if let Some(id) = segment(path, "/inference-request/request-history/") {
        return want("GET", Endpoint::HistoryEntry(id));
    }
    if let Some(name) = segment(path, "/outputs/") {
        return want("GET", Endpoint::Output(name));
    }
    if let Some(id) = segment(path, "/assets/") {
        return want("GET", Endpoint::Asset(id));
    }
    Endpoint::NotFound
}
