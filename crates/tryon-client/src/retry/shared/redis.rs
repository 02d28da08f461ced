//! `redis://host:port/db`: a shared budget for many machines. Each call is
//! one `EVALSHA` of `budget.lua` (the redis crate's `Script` loads it with
//! `SCRIPT LOAD` on `NOSCRIPT`, after a server restart say), which reads
//! and writes the state atomically on the server's own `TIME`.
//!
//! The keys are `tryon:{<fingerprint>:<name>}:state` (a hash) and
//! `tryon:{…}:sharers` (a sorted set); the braces keep both in one slot of
//! a cluster. Both expire an hour after their last use.
//!
//! The connection is the redis crate's tokio `ConnectionManager`, made at
//! the first call and reconnecting after a drop. It makes one connection
//! attempt at a time (the sharer asks again a second later, see
//! `sharer.rs`), and no call waits more than [`TIMEOUT`] for an answer.

use std::sync::LazyLock;
use std::time::Duration;

use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::OnceCell;

use super::super::rate_limiter::{BACKOFF, GROWTH, MAX_RATE, MIN_RATE, SLOW_START_GROWTH};
use super::decide::{
    Call, HORIZON_US, MAX_GROWTH_STEPS, MAX_PROBE_DOUBLINGS, MAX_REPORT, MAX_RETRY_AFTER_US,
    MAX_SHARERS, Op, PROBE_RATE, Reply, SHARER_TTL_US, VERSION, window_us,
};
use super::{Store, StoreError};
use crate::error::{Error, Result};

/// Longest wait for a connection, and for an answer.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(2);

/// `budget.lua` with its constants filled in from their one home.
static SCRIPT: LazyLock<String> = LazyLock::new(|| {
    let mut text = include_str!("budget.lua").to_string();
    for (name, value) in [
        ("WINDOW_US", format!("{:?}", window_us())),
        ("SHARER_TTL_US", format!("{SHARER_TTL_US:?}")),
        ("MAX_SHARERS", MAX_SHARERS.to_string()),
        ("HORIZON_US", format!("{HORIZON_US:?}")),
        ("MAX_REPORT", MAX_REPORT.to_string()),
        ("MAX_GROWTH_STEPS", MAX_GROWTH_STEPS.to_string()),
        ("MAX_RETRY_AFTER_US", format!("{MAX_RETRY_AFTER_US:?}")),
        ("BACKOFF", format!("{BACKOFF:?}")),
        ("GROWTH", format!("{GROWTH:?}")),
        ("SLOW_START_GROWTH", format!("{SLOW_START_GROWTH:?}")),
        ("MIN_RATE", format!("{MIN_RATE:?}")),
        ("MAX_RATE", format!("{MAX_RATE:?}")),
        ("VERSION", VERSION.to_string()),
        ("PROBE_RATE", format!("{PROBE_RATE:?}")),
        ("MAX_PROBE_DOUBLINGS", format!("{MAX_PROBE_DOUBLINGS:?}")),
    ] {
        text = text.replace(&format!("@{name}@"), &value);
    }
    text
});

/// A budget on a Redis server.
pub(crate) struct RedisStore {
    client: redis::Client,
    manager: OnceCell<ConnectionManager>,
    script: redis::Script,
    keys: [String; 2],
    shown: String,
}

impl RedisStore {
    pub(crate) fn new(url: &SecretString, shown: &str, id: &str) -> Result<Self> {
        let client = redis::Client::open(url.expose_secret()).map_err(|e| {
            Error::config(
                "shared_budget",
                format!("{shown}: {}", e.detail().unwrap_or("not a Redis URL")),
            )
        })?;
        Ok(Self {
            client,
            manager: OnceCell::new(),
            script: redis::Script::new(&SCRIPT),
            keys: [
                format!("tryon:{{{id}}}:state"),
                format!("tryon:{{{id}}}:sharers"),
            ],
            shown: shown.to_string(),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        self.manager
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(TIMEOUT))
                    .set_response_timeout(Some(TIMEOUT))
                    .set_number_of_retries(0);
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await
            .cloned()
            .map_err(|e| self.unreachable(&e))
    }

    fn unreachable(&self, e: &redis::RedisError) -> StoreError {
        StoreError::Unreachable(format!("{}: {e}", self.shown))
    }
}

impl Store for RedisStore {
    fn call<'a>(
        &'a self,
        now_us: Option<f64>,
        call: &'a Call,
    ) -> BoxFuture<'a, std::result::Result<Reply, StoreError>> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            let (op, epoch, retry_after) = match call.op {
                Op::Join => ("join", -1.0, -1.0),
                Op::Reserve => ("reserve", -1.0, -1.0),
                Op::Throttled {
                    epoch,
                    retry_after_us,
                } => ("throttled", epoch, retry_after_us),
            };
            let now = now_us.map(|t| format!("{t:?}")).unwrap_or_default();
            let r = call.report;
            let answer: std::result::Result<Vec<String>, _> = self
                .script
                .key(&self.keys[0])
                .key(&self.keys[1])
                .arg(now)
                .arg(op)
                .arg(&call.sharer)
                .arg(format!("{:?}", call.told))
                .arg(call.route)
                .arg(r.successes[0])
                .arg(r.successes[1])
                .arg(r.successes[2])
                .arg(r.waited)
                .arg(format!("{epoch:?}"))
                .arg(format!("{retry_after:?}"))
                .invoke_async(&mut conn)
                .await;
            match answer {
                Ok(fields) => parse_reply(&fields).ok_or_else(|| {
                    StoreError::Refused(format!(
                        "{}: an answer this client does not understand: {fields:?}",
                        self.shown
                    ))
                }),
                // The script's refusals start with `tryon-budget:`, which the
                // redis crate reads as the error's code.
                Err(e) if e.code() == Some("tryon-budget:") => Err(StoreError::Refused(format!(
                    "{}: {}",
                    self.shown,
                    e.detail().unwrap_or_default()
                ))),
                Err(e) if e.to_string().contains("tryon-budget:") => {
                    Err(StoreError::Refused(format!("{}: {e}", self.shown)))
                }
                Err(e) => Err(self.unreachable(&e)),
            }
        })
    }
}

/// The script's ten numbers (see its header).
fn parse_reply(fields: &[String]) -> Option<Reply> {
    let n: Vec<f64> = fields
        .iter()
        .map(|f| f.parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect::<Option<_>>()?;
    let [
        wait_us,
        ticket_epoch,
        waited,
        epoch,
        sharers,
        rate,
        told,
        refused,
        learned_ahead_us,
        told_ahead_us,
    ] = n[..]
    else {
        return None;
    };
    Some(Reply {
        wait_us,
        ticket_epoch,
        waited: waited > 0.0,
        epoch,
        sharers,
        rate,
        told,
        refused,
        learned_ahead_us,
        told_ahead_us,
    })
}
