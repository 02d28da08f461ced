//! One request budget shared by many processes and machines on one API key
//! ([`SharedBudget`]): the rate limiter's state (`rate_limiter.rs`) kept in
//! a store every sharer reads and writes in one atomic step.
//!
//! - `decide.rs`: every decision, as one pure function of the state; the
//!   file backend runs it, and `budget.lua` is the same for Redis.
//! - `redis.rs`: `redis://host:port/db`, for many machines: the Lua script
//!   runs on the server, on the server's own `TIME` (so the machines'
//!   clocks never matter), one round trip (`EVALSHA`) per API call.
//! - `file.rs`: `file:PATH`, for many processes on one machine and no
//!   server: the same state in a small file under an exclusive `flock`.
//! - `sharer.rs`: this process's side: the store call each API call makes,
//!   the reports it carries, and the fallback when the store is lost.
//!
//! **What is shared.** The told budget (`--rate`), and what is learned
//! from `429`s: the rate, the round of the last cut (a `429` anywhere cuts
//! once for everybody, not once per process), the classes of call that
//! were refused, and the hold-off until a `Retry-After`. Every call
//! reserves its start slot from the shared pace; successes are reported in
//! the sharer's next call.
//!
//! **Fair and self-healing.** Slots are handed out first come, first
//! served, and each sharer keeps at most [`BOOKED_AHEAD`] slots booked
//! ahead (its other calls wait in the process), so sharers that all have
//! work take turns, whatever their concurrency. Nothing is held for a
//! sharer: one that stops or is killed stops booking, and the slots it
//! would have taken go to the others at once; at most its last
//! [`BOOKED_AHEAD`] slots go unused. Sharers register with every call and
//! count as live for 30 s after their last one; the count is used only for
//! the fallback below.
//!
//! **Faults.** Unreachable at start:
//! [`Client::join_shared_budget`](crate::Client::join_shared_budget) says
//! so, naming the URL. Lost mid-run: the client goes on alone, at the told
//! (or learned) budget divided by the number of sharers it saw last, says
//! so once, and asks the store again every second; no call waits on a
//! store for more than a few seconds, and nothing is retried that was not
//! (a store is asked before a call is sent, never after). A value under the
//! budget's name that is not a budget of this version is refused, naming
//! the key and the field, and never overwritten; a state file damaged
//! mid-write (it has the format's first line but does not parse) is
//! rebuilt.

mod decide;
mod file;
mod redis;
mod sharer;

use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::str::FromStr;

use futures::future::BoxFuture;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

pub(crate) use decide::{Call, Reply};
pub(crate) use sharer::{SharedTicket, Sharer};

/// How many slots one sharer may hold booked ahead at once.
pub(crate) const BOOKED_AHEAD: usize = 8;

/// The name a budget has when none is given.
pub const DEFAULT_BUDGET_NAME: &str = "default";

/// A request budget shared with other processes and machines that use the
/// same API key, chosen by URL:
///
/// - `redis://host:port/db` (Redis 6.2 or later; `redis://:password@host/db`
///   for a server with a password): for many machines. Every decision is
///   one atomic script on the server, on the server's clock.
/// - `file:PATH`: for many processes on one machine, with no server. The
///   state is the file at `PATH` (created if missing), under an exclusive
///   lock on `PATH.lock`.
///
/// The budget is named by a fingerprint of the API key (the first 16 hex
/// digits of a SHA-256 of it, never the key) and a name, [`named`](Self::named)
/// (default [`DEFAULT_BUDGET_NAME`]), so two keys never share a budget by
/// accident, and one key can have several. TLS to Redis is not built in
/// (no `rediss://`): reach a remote server through a tunnel.
///
/// ```
/// use tryon_client::{Client, RateLimit, SharedBudget};
/// let budget: SharedBudget = "redis://127.0.0.1:6379/0".parse()?;
/// let client = Client::builder()
///     .api_key("sk-test")
///     .rate_limit(RateLimit::per_minute(500.0)?)
///     .shared_budget(budget.named("catalog")?)
///     .build()?;
/// # let _ = client;
/// assert!("rediss://example.com".parse::<SharedBudget>().is_err());
/// assert_eq!("file:/tmp/b".parse::<SharedBudget>()?.to_string(), "file:/tmp/b (budget default)");
/// # Ok::<(), tryon_client::Error>(())
/// ```
///
/// A client joins the budget at its first API call, or at once with
/// [`Client::join_shared_budget`](crate::Client::join_shared_budget); the
/// rules of sharing and what happens when the store is lost are in the
/// docs of [`ClientBuilder::shared_budget`](crate::ClientBuilder::shared_budget).
#[derive(Clone)]
pub struct SharedBudget {
    backend: Backend,
    name: String,
    /// Test mode: the store's time is the client's clock, not its own.
    client_time: bool,
}

#[derive(Clone)]
enum Backend {
    /// The whole URL (it may carry a password), and the URL to show.
    Redis {
        url: SecretString,
        shown: String,
    },
    File {
        path: PathBuf,
    },
}

impl SharedBudget {
    /// A shared budget at `url` (`redis://…` or `file:PATH`); nothing is
    /// opened or connected yet.
    ///
    /// # Errors
    /// [`Error::Config`] naming `shared_budget` when the URL is not one of
    /// these.
    pub fn new(url: &str) -> Result<Self> {
        let url = url.trim();
        let backend = if let Some(rest) = url.strip_prefix("file:") {
            Backend::File {
                path: file_path(rest)?,
            }
        } else {
            redis_url(url)?
        };
        Ok(Self {
            backend,
            name: DEFAULT_BUDGET_NAME.to_string(),
            client_time: false,
        })
    }

    /// The budget's name: 1 to 64 letters, digits, `.`, `_` or `-`. Default
    /// [`DEFAULT_BUDGET_NAME`].
    ///
    /// # Errors
    /// [`Error::Config`] naming `budget_name`.
    pub fn named(mut self, name: &str) -> Result<Self> {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(Error::config(
                "budget_name",
                format!("{name:?}: use 1 to 64 letters, digits, '.', '_' or '-'"),
            ));
        }
        self.name = name.to_string();
        Ok(self)
    }

    /// The budget's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL, without a password if it had one.
    pub fn url(&self) -> String {
        match &self.backend {
            Backend::Redis { shown, .. } => shown.clone(),
            Backend::File { path } => format!("file:{}", path.display()),
        }
    }

    /// Test mode (tests and benchmarks only): the store takes its time
    /// from the client's clock (a virtual one) instead of its own (the
    /// Redis server's `TIME`, the machine's clock for a file), and a paused
    /// tokio clock is held still while a store call is in flight (tokio
    /// does not move it while a blocking task runs), so a round trip to a
    /// real Redis server takes no virtual time. Never use it in production:
    /// sharers on different clocks would not agree.
    #[cfg(feature = "test-util")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    #[must_use]
    pub fn with_client_clock(mut self) -> Self {
        self.client_time = true;
        self
    }

    /// The store for the budget of `api_key`.
    pub(crate) fn store(&self, api_key: &SecretString) -> Result<Box<dyn Store>> {
        let id = format!("{}:{}", fingerprint(api_key), self.name);
        match &self.backend {
            Backend::Redis { url, shown } => Ok(Box::new(redis::RedisStore::new(url, shown, &id)?)),
            Backend::File { path } => Ok(Box::new(file::FileStore::new(path.clone(), id))),
        }
    }

    pub(crate) fn client_time(&self) -> bool {
        self.client_time
    }
}

impl fmt::Display for SharedBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (budget {})", self.url(), self.name)
    }
}

impl fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBudget")
            .field("url", &self.url())
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl FromStr for SharedBudget {
    type Err = Error;

    /// [`SharedBudget::new`].
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

/// `file:PATH`, `file:///abs/path` or `file://localhost/abs/path`.
fn file_path(rest: &str) -> Result<PathBuf> {
    let path = match rest.strip_prefix("//") {
        Some(r) if r.starts_with('/') => r,
        Some(r) => r.strip_prefix("localhost").filter(|p| p.starts_with('/')).ok_or_else(|| {
            Error::config(
                "shared_budget",
                format!("file://{r}: a file budget is on this machine: write file:PATH or file:///PATH"),
            )
        })?,
        None => rest,
    };
    if path.is_empty() || path.ends_with('/') {
        return Err(Error::config(
            "shared_budget",
            format!("file:{rest}: name the state file, e.g. file:/tmp/tryon-budget"),
        ));
    }
    Ok(PathBuf::from(path))
}

/// `redis://[:password@]host[:port][/db]`.
fn redis_url(raw: &str) -> Result<Backend> {
    let bad = |why: &str| Error::config("shared_budget", format!("{}: {why}", shown_url(raw)));
    let url = url::Url::parse(raw)
        .map_err(|_| bad("not a URL: write redis://host:port/db or file:PATH"))?;
    match url.scheme() {
        "redis" => {}
        "rediss" => {
            return Err(bad(
                "TLS to Redis is not built in: reach the server through a local tunnel (stunnel, ssh -L) and use redis://127.0.0.1:PORT",
            ));
        }
        _ => return Err(bad("use redis://host:port/db or file:PATH")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("names no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    let db = url.path().trim_start_matches('/');
    if !db.is_empty() && db.parse::<u16>().is_err() {
        return Err(bad("the path must be a database number, e.g. /0"));
    }
    Ok(Backend::Redis {
        url: SecretString::from(raw.to_string()),
        shown: shown_url(raw),
    })
}

/// `raw` with its password (if any) replaced by `***`.
fn shown_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        // Not a URL: show only what cannot be a password.
        Err(_) => raw.split('@').next_back().unwrap_or_default().to_string(),
    }
}

/// The fingerprint that names a key's budget: `fp` and the first 16 hex
/// digits of a SHA-256 of the key. Budgets can be told apart by key, but no
/// character of the key is stored or shown.
pub(crate) fn fingerprint(api_key: &SecretString) -> String {
    let digest = Sha256::new()
        .chain_update(b"tryon shared budget\0")
        .chain_update(api_key.expose_secret().as_bytes())
        .finalize();
    digest[..8].iter().fold("fp".to_string(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// Why a store did not answer.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// No answer (down, unreachable, timed out, a lock held too long).
    Unreachable(String),
    /// The store answered, but what is stored under the budget's name is
    /// not a budget this client can trust: refused, never overwritten.
    Refused(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unreachable(why) => write!(f, "unreachable: {why}"),
            StoreError::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

/// Where a shared budget's state lives: runs [`decide`](decide::decide)
/// (or its Lua twin) on it in one atomic step. `now_us` is the store's
/// time in test mode; `None` means its own clock.
pub(crate) trait Store: Send + Sync + 'static {
    /// One call: reads the state, decides, writes it back, answers.
    fn call<'a>(
        &'a self,
        now_us: Option<f64>,
        call: &'a Call,
    ) -> BoxFuture<'a, std::result::Result<Reply, StoreError>>;
}

#[cfg(test)]
mod tests;
