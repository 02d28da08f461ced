//! Accepting connections: a header-read timeout (which is also the idle
//! timeout of a kept-alive connection) and a cap on open connections, so
//! that idle or slow sockets cannot stop service.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};

use crate::state::State;

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

/// Accepts until aborted. At the cap, the oldest idle connection (or, if
/// none is idle, the oldest one) is closed to make room: a new client is
/// always served.
pub(crate) async fn accept_loop(listener: TcpListener, state: Arc<State>, limits: ConnLimits) {
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

async fn serve(
    stream: TcpStream,
    state: Arc<State>,
    busy: Arc<AtomicUsize>,
    header_timeout: Duration,
    id: u64,
) -> u64 {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        let guard = Busy::new(&busy);
        async move {
            let reply = super::pipeline::handle(state, req).await;
            drop(guard);
            reply.map(|r| r.map(Full::new))
        }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    id
}
