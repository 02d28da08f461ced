//! Replay (feature `proxy`): serves a recording made with `--record` with
//! no upstream. A submit that matches a recorded one gets the recorded job
//! (id, status sequence at the recorded offsets, result, output bytes); a
//! request nothing matches gets [`Replay::MISS_STATUS`] naming the nearest
//! recorded request and how it differs. Served through the mock's own
//! connection layer; `/__mock/health`, `/__mock/now` and `/__mock/advance`
//! work as on the mock.

mod answer;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::{Method, Request, StatusCode};

use crate::clock::MockClock;
use crate::http::conn::{Answers, Serving, bind};
use crate::http::{Reply, error, read_body};
use crate::limits::{MAX_PROXY_BODY, MAX_REPLAY_SPEED};
use crate::record::load::{Recording, load};
use crate::state::State;

/// How a replay is set up.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The recording (`--replay DIR`).
    pub dir: PathBuf,
    /// Recorded time per real second (`--replay-speed X`): 2.0 replays a
    /// job twice as fast. Default 1.0; from 1/[`MAX_REPLAY_SPEED`] to
    /// [`MAX_REPLAY_SPEED`].
    pub speed: f64,
    /// A virtual clock that moves only with `POST /__mock/advance` or
    /// [`Replay::advance`] (`--virtual-time`). Default: real time.
    pub virtual_time: bool,
    /// The base the URLs it writes use; default: the address listened on.
    pub public_url: Option<String>,
    /// Required as `Authorization: Bearer <token>` on `/__mock/` calls but
    /// `/__mock/health`.
    pub control_token: Option<String>,
}

impl ReplayOptions {
    /// Options replaying `dir` in real time at speed 1.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            speed: 1.0,
            virtual_time: false,
            public_url: None,
            control_token: None,
        }
    }
}

/// What the replay server shares between requests.
struct Shared {
    recording: Recording,
    base: String,
    clock: MockClock,
    speed: f64,
    /// A mock state holding only the clock and the control token, for the
    /// control routes.
    control: State,
    /// Submit exchanges (by `seq`) already handed out.
    handed: Mutex<HashSet<u64>>,
    /// When each handed-out job was submitted, on `clock`.
    started: Mutex<HashMap<String, Duration>>,
    outputs: Mutex<crate::proxy::Outputs>,
    /// Keys callers sent, masked in bodies as the recorder masked them.
    keys: Mutex<crate::record::body::Keys>,
}

/// A running replay; stops when dropped.
pub struct Replay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _serving: Serving,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("addr", &self.addr)
            .field("exchanges", &self.shared.recording.exchanges.len())
            .finish_non_exhaustive()
    }
}

impl Replay {
    /// The status of a request the recording has no match for: `409
    /// Conflict`, which clients do not retry and the API itself never
    /// sends, so a replay miss cannot be mistaken for the service's own
    /// answer.
    pub const MISS_STATUS: u16 = 409;

    /// The version a recording declares in `recording.json`'s `format`
    /// (what `--record` writes); a recording with any other value is
    /// refused, naming it.
    pub const RECORDING_FORMAT: &'static str = crate::record::RECORDING_FORMAT;

    /// Loads the recording and serves it on `addr` until dropped.
    ///
    /// # Errors
    /// `InvalidInput` naming the file for a recording that cannot be read
    /// (an unknown format version, a torn file), or naming the flag for a
    /// speed out of bounds; or the address cannot be bound.
    pub async fn start(options: ReplayOptions, addr: SocketAddr) -> std::io::Result<Self> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        if !(options.speed.is_finite()
            && (1.0 / MAX_REPLAY_SPEED..=MAX_REPLAY_SPEED).contains(&options.speed))
        {
            return Err(invalid(format!(
                "--replay-speed: {} given, from {} to {MAX_REPLAY_SPEED} allowed",
                options.speed,
                1.0 / MAX_REPLAY_SPEED
            )));
        }
        let recording = load(&options.dir).map_err(|e| invalid(format!("--replay: {e}")))?;
        let (listener, addr, local) = bind(addr).await?;
        let base = match options.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => local,
        };
        tracing::info!(
            dir = %options.dir.display(),
            exchanges = recording.exchanges.len(),
            jobs = recording.jobs.len(),
            upstream = %recording.manifest.upstream,
            "replay loaded"
        );
        let clock = if options.virtual_time {
            MockClock::new_virtual()
        } else {
            MockClock::new_real()
        };
        let control = State::new(
            crate::MockConfig::default(),
            clock.clone(),
            base.clone(),
            options.control_token.filter(|t| !t.is_empty()),
        );
        let shared = Arc::new(Shared {
            recording,
            base,
            clock,
            speed: options.speed,
            control,
            handed: Mutex::default(),
            started: Mutex::default(),
            outputs: Mutex::default(),
            keys: Mutex::default(),
        });
        Ok(Self {
            _serving: Serving::start(listener, Arc::clone(&shared)),
            shared,
            addr,
        })
    }

    /// The base URL clients use.
    pub fn uri(&self) -> String {
        self.shared.base.clone()
    }

    /// The replay's clock (virtual with [`ReplayOptions::virtual_time`]).
    pub fn clock(&self) -> MockClock {
        self.shared.clock.clone()
    }

    /// Moves the clock forward, as `POST /__mock/advance` does.
    pub fn advance(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// The address listened on.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }
}

impl Answers for Shared {
    async fn answer(self: Arc<Self>, req: Request<hyper::body::Incoming>) -> Reply {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let reply = if path.starts_with("/__mock/") {
            control(&self, req).await
        } else {
            let key = req
                .headers()
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_string);
            let query = req.uri().query().map(str::to_string);
            match read_body(MAX_PROXY_BODY, req).await {
                Ok(body) => answer::answer(
                    &self,
                    &answer::Asked {
                        method: method.as_str(),
                        path: &path,
                        query: query.as_deref(),
                        key: key.as_deref(),
                        body: &body,
                    },
                ),
                Err(r) => r,
            }
        };
        tracing::info!(%method, %path, status = reply.status().as_u16(), "replayed");
        reply
    }
}

/// The control routes a replay has: health and the clock, answered by the
/// mock's own control API (same token check, bounds and errors).
async fn control(shared: &Shared, req: Request<hyper::body::Incoming>) -> Reply {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/__mock/health" | "/__mock/now") | (&Method::POST, "/__mock/advance") => {
            crate::http::control::handle(&shared.control, req).await
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "a replay serves /__mock/health, /__mock/now and /__mock/advance only",
        ),
    }
}
