//! Accepting connections: a header-read timeout (which is also the idle
//! timeout of a kept-alive connection) and a cap on open connections, so
//! that idle or slow sockets cannot stop service. One loop for every server
//! of the crate: the mock, the validating proxy and the replay each bring a
//! [`Handler`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};

use super::Reply;
use crate::limits::{LINGER_SECS, MAX_LINGER_BYTES};
use crate::state::State;

/// Returned by a [`Handler`] to close the connection without a response:
/// a mock fault, or a proxy whose upstream's answer was lost.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("closed the connection without an answer")
    }
}

impl std::error::Error for DropConnection {}

/// What a server does with one request. `Err` closes the connection
/// without a response.
pub(crate) trait Handler: Send + Sync + 'static {
    /// The error that drops the connection.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Answers one request.
    fn handle(
        self: Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> impl Future<Output = Result<Reply, Self::Error>> + Send;
}

impl Handler for State {
    type Error = DropConnection;

    fn handle(
        self: Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> impl Future<Output = Result<Reply, DropConnection>> + Send {
        super::pipeline::handle(self, req)
    }
}

#[cfg(feature = "proxy")]
/// A handler that always answers (never drops the connection): the
/// proxy's and the replay's.
pub(crate) trait Answers: Send + Sync + 'static {
    /// Answers one request.
    fn answer(
        self: Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> impl Future<Output = Reply> + Send;
}

#[cfg(feature = "proxy")]
impl<T: Answers> Handler for T {
    type Error = std::convert::Infallible;

    async fn handle(
        self: Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<Reply, Self::Error> {
        Ok(self.answer(req).await)
    }
}

/// A bound listener, its address, and the base URL of a server on it
/// (`http://127.0.0.1:PORT` for an unspecified address).
pub(crate) async fn bind(
    addr: std::net::SocketAddr,
) -> std::io::Result<(TcpListener, std::net::SocketAddr, String)> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let local = if addr.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", addr.port())
    } else {
        format!("http://{addr}")
    };
    Ok((listener, addr, local))
}

#[cfg(feature = "proxy")]
/// The accept loop of a proxy or replay, stopped (with its connections)
/// when dropped.
pub(crate) struct Serving(tokio::task::JoinHandle<()>);

#[cfg(feature = "proxy")]
impl Serving {
    /// Serves `handler` on `listener` with the mock's default bounds.
    pub(crate) fn start<H: Handler>(listener: TcpListener, handler: Arc<H>) -> Self {
        Self(tokio::spawn(accept_loop(
            listener,
            handler,
            ConnLimits::default(),
        )))
    }
}

#[cfg(feature = "proxy")]
impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connection bounds of one server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    /// Most open connections; see [`effective_cap`].
    pub(crate) max_connections: usize,
    /// A request's head must arrive within this; a kept-alive connection
    /// with no new request for this long is closed.
    pub(crate) header_timeout: Duration,
}

/// File descriptors kept free for the listener, uploads and the rest.
const FD_RESERVE: usize = 32;

/// The soft limit on open files (Linux: `/proc/self/limits`).
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The cap actually used: the configured one, but never more than the
/// process may open (less a reserve), so the cap is reached before
/// `accept` fails with "too many open files".
pub(crate) fn effective_cap(configured: usize) -> usize {
    let by_fds = open_files_limit().map_or(usize::MAX, |n| n.saturating_sub(FD_RESERVE));
    configured.min(by_fds).max(4)
}

struct Conn {
    /// Requests being handled on it; 0 means idle.
    busy: Arc<AtomicUsize>,
    abort: AbortHandle,
}

/// Counts a request in flight for as long as it lives.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(counter))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for ConnLimits {
    /// The mock's defaults (see [`MockConfig`](crate::MockConfig)).
    fn default() -> Self {
        let config = crate::MockConfig::default();
        Self {
            max_connections: config.max_connections,
            header_timeout: config.header_timeout,
        }
    }
}

/// Accepts until aborted. At the cap, the oldest idle connection (or, if
/// none is idle, the oldest one) is closed to make room: a new client is
/// always served.
pub(crate) async fn accept_loop<H: Handler>(
    listener: TcpListener,
    state: Arc<H>,
    limits: ConnLimits,
) {
    let cap = effective_cap(limits.max_connections);
    // Connections live in this set, so aborting the loop closes them too.
    let mut tasks = JoinSet::new();
    let mut live: BTreeMap<u64, Conn> = BTreeMap::new();
    let mut next_id: u64 = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        // Out of file descriptors and the like: close the
                        // oldest idle connection and back off a little.
                        evict(&mut live);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                while live.len() >= cap {
                    evict(&mut live);
                }
                let id = next_id;
                next_id += 1;
                let busy = Arc::new(AtomicUsize::new(0));
                let abort = tasks.spawn(serve(
                    stream,
                    Arc::clone(&state),
                    Arc::clone(&busy),
                    limits.header_timeout,
                    id,
                ));
                live.insert(id, Conn { busy, abort });
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(id) = done {
                    live.remove(&id);
                }
            }
        }
    }
}

fn evict(live: &mut BTreeMap<u64, Conn>) {
    let victim = live
        .iter()
        .find(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
        .or_else(|| live.iter().next())
        .map(|(id, _)| *id);
    if let Some(conn) = victim.and_then(|id| live.remove(&id)) {
        conn.abort.abort();
        tracing::debug!("closed a connection to stay under the connection cap");
    }
}

async fn serve<H: Handler>(
    stream: TcpStream,
    state: Arc<H>,
    busy: Arc<AtomicUsize>,
    header_timeout: Duration,
    id: u64,
) -> u64 {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        let guard = Busy::new(&busy);
        async move {
            let reply = state.handle(req).await;
            drop(guard);
            reply.map(|r| r.map(Full::new))
        }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .without_shutdown()
        .await;
    // Ended without an error (the answer was sent; the client or a
    // `Connection: close` ended it): close the way real front ends do.
    // After an error (a dropped-connection fault, a timeout) the socket is
    // simply dropped.
    if let Ok(parts) = served {
        linger(parts.io.into_inner()).await;
    }
    id
}

/// Closes a connection whose answers have all been sent without resetting
/// it: the write side first (the client sees the answer end), then the
/// rest of what the client sends is read and dropped, bounded by
/// [`MAX_LINGER_BYTES`] and [`LINGER_SECS`], before the socket closes.
/// Closing with unread bytes instead makes the kernel send a reset, which
/// can destroy an answer the client has not read yet (a 401 given before
/// a 2 MB body was read came back as "connection reset" about one time in
/// five under load).
async fn linger(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    if stream.shutdown().await.is_err() {
        return;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(LINGER_SECS);
    let mut left = MAX_LINGER_BYTES;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n as u64),
            _ => return,
        }
    }
}
