//! The throughput bench's second table: 1, 3 and 8 clients on one account
//! (R = 500/min, a token bucket, the realistic profile with its queue, 64
//! jobs in flight in all, split evenly), sharing one budget through a file
//! or a Redis server, or each on its own.
//!
//! How the stores run in virtual time: each client's store calls carry the
//! virtual clock's time (`SharedBudget::with_client_clock`, test-util
//! only), so the budget is kept on the same clock as the mock; and tokio's
//! paused clock stands still while a call is in flight (the file store
//! runs on a blocking thread, and a Redis call is held by one), so a real
//! round trip to the file or to the `redis-server` the bench starts takes
//! no virtual time. The script, the file format and every decision are the
//! production ones; only the source of "now" differs. What a round trip
//! costs in real time is `benches/shared_budget.rs`'s table.
//!
//! Rows "killed" abort one of three clients 2 minutes in (as `kill -9`
//! stops a process) and measure the two left from 10 s later; "restarted"
//! kills the Redis server 2 minutes in and starts a fresh one on the same
//! port a minute later (its state is gone: the budget is learned again).
//!
//! Columns: jobs/min of all clients together over R/2 (two calls a job) (overall, and while
//! every client's pipeline is full: from the end of the first minute to the
//! first client's last start), the same over the 1-client unshared row of
//! the same policy, the most any client's share of completed jobs is off
//! its fair share in that window, the share of keyed calls answered `429`
//! after the first minute (and overall), and jobs that failed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use tryon_client::test_util::RedisServer;
use tryon_client::{Client, Clock as _, RateLimit, SharedBudget};

use super::{Config, KEY, Shape, job_request, refused_share, start_server};

const PER_MINUTE: f64 = 500.0;
/// Jobs in flight, over all clients.
const IN_FLIGHT: usize = 64;
/// When a "killed" row's victim dies, and a "restarted" row's Redis.
const MISHAP_AT: Duration = Duration::from_mins(2);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sharing {
    Alone,
    File,
    Redis,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mishap {
    None,
    /// One client of three aborted at [`MISHAP_AT`].
    Killed,
    /// The Redis server killed at [`MISHAP_AT`], a fresh one a minute later.
    Restarted,
}

struct Case {
    clients: usize,
    sharing: Sharing,
    told: bool,
    mishap: Mishap,
}

impl Case {
    fn name(&self) -> String {
        let sharing = match self.sharing {
            Sharing::Alone => "not shared",
            Sharing::File => "file:",
            Sharing::Redis => "redis://",
        };
        let policy = if self.told { "--rate R" } else { "learned" };
        let mishap = match self.mishap {
            Mishap::None => "",
            Mishap::Killed => ", one killed at 2 min",
            Mishap::Restarted => ", Redis restarted at 2 min",
        };
        format!("{} client(s), {sharing}, {policy}{mishap}", self.clients)
    }
}

struct Row {
    ratio: f64,
    steady: f64,
    unfair: f64,
    share_after: f64,
    share_all: f64,
    failures: usize,
}

/// Where the bench's shared budgets live: a folder, and a Redis server
/// when one can be started.
struct Stores {
    dir: tempfile::TempDir,
    redis: Option<RedisServer>,
    rows: usize,
}

impl Stores {
    /// A fresh budget (a new name or file) for the next row.
    fn budget(&mut self, sharing: Sharing) -> Option<SharedBudget> {
        self.rows += 1;
        let url = match sharing {
            Sharing::Alone => return None,
            Sharing::File => format!(
                "file:{}",
                self.dir.path().join(format!("row{}", self.rows)).display()
            ),
            Sharing::Redis => self.redis.as_ref()?.url(),
        };
        let budget = SharedBudget::new(&url).expect("a budget URL");
        Some(
            budget
                .named(&format!("row{}", self.rows))
                .expect("a budget name")
                .with_client_clock(),
        )
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "one run, start to table row, read top to bottom"
)]
async fn run(case: &Case, jobs: usize, stores: &mut Stores) -> Row {
    let config = Config {
        per_minute: PER_MINUTE,
        queue: true,
        shape: Shape::Bucket,
        concurrency: IN_FLIGHT,
    };
    let (server, clock) = start_server(config).await;
    let budget = stores.budget(case.sharing);
    let told = case
        .told
        .then(|| RateLimit::per_minute(PER_MINUTE).expect("a budget"));
    let clients: Vec<Client> = (0..case.clients)
        .map(|_| {
            let mut b = Client::builder()
                .api_key(KEY)
                .base_url(server.uri())
                .clock(clock.clone())
                .wait_timeout(Duration::from_hours(1));
            if let Some(budget) = &budget {
                b = b.shared_budget(budget.clone());
            }
            if let Some(told) = told {
                b = b.rate_limit(told);
            }
            b.build().expect("a client")
        })
        .collect();
    let per_client = IN_FLIGHT.div_ceil(case.clients);
    // Per client: when each job started and ended.
    let starts = Arc::new(Mutex::new(vec![Vec::new(); case.clients]));
    let ends = Arc::new(Mutex::new(vec![Vec::new(); case.clients]));
    let failures = Arc::new(Mutex::new(0usize));
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let (client, clock) = (client.clone(), clock.clone());
        let (starts, ends, failures) = (starts.clone(), ends.clone(), failures.clone());
        let n = case.clients;
        tasks.push(tokio::spawn(async move {
            let marks = starts.clone();
            let mark_clock = clock.clone();
            // Client `c` runs every n-th job, so each has the same mix.
            let mine = (c..jobs).step_by(n).inspect(move |_| {
                marks.lock().expect("not poisoned")[c].push(mark_clock.now());
            });
            let mut results = client.run_many(mine.map(job_request), per_client);
            while let Some((_, r)) = results.next().await {
                match r {
                    Ok(_) => ends.lock().expect("not poisoned")[c].push(clock.now()),
                    Err(e) => {
                        eprintln!("shared throughput: client {c}: {e}");
                        *failures.lock().expect("not poisoned") += 1;
                    }
                }
            }
        }));
    }
    let victim = (case.mishap == Mishap::Killed).then_some(case.clients - 1);
    match case.mishap {
        Mishap::None => {}
        Mishap::Killed => {
            tokio::time::sleep(MISHAP_AT).await;
            if let Some(v) = victim {
                tasks[v].abort();
            }
        }
        Mishap::Restarted => {
            tokio::time::sleep(MISHAP_AT).await;
            if let Some(redis) = stores.redis.as_mut() {
                redis.kill();
                tokio::time::sleep(Duration::from_mins(1)).await;
                redis.restart().expect("redis-server restarts");
            }
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let end = clock.now();
    let starts = starts.lock().expect("not poisoned").clone();
    let ends = ends.lock().expect("not poisoned").clone();
    let failures = *failures.lock().expect("not poisoned");
    let done: usize = ends.iter().map(Vec::len).sum();
    if victim.is_none() {
        assert_eq!(
            (server.billed_submits(), done),
            (jobs as u64, jobs),
            "{}: every job billed exactly once and completed",
            case.name()
        );
    } else {
        // The dead client's jobs in flight were billed and never read;
        // none was billed twice.
        assert!(
            server.billed_submits() <= jobs as u64,
            "{}: billed twice",
            case.name()
        );
    }
    let limit = PER_MINUTE / 2.0;
    let ratio = done as f64 / (end.as_secs_f64() / 60.0) / limit;
    // The survivors, from 10 s after the death; else every client, from
    // the end of the first minute; until the first one starts its last job.
    let alive: Vec<usize> = (0..case.clients).filter(|&c| Some(c) != victim).collect();
    let from = if victim.is_some() {
        MISHAP_AT + Duration::from_secs(10)
    } else {
        Duration::from_mins(1)
    };
    let to = alive
        .iter()
        .map(|&c| starts[c].iter().copied().max().unwrap_or_default())
        .min()
        .unwrap_or_default();
    let (steady, unfair) = if to > from + Duration::from_secs(30) {
        let minutes = to.saturating_sub(from).as_secs_f64() / 60.0;
        let rates: Vec<f64> = alive
            .iter()
            .map(|&c| ends[c].iter().filter(|&&t| t >= from && t <= to).count() as f64 / minutes)
            .collect();
        let sum: f64 = rates.iter().sum();
        let mean = sum / rates.len() as f64;
        let unfair = rates
            .iter()
            .map(|r| (r - mean).abs() / mean)
            .fold(0.0, f64::max);
        (sum / limit, unfair)
    } else {
        (f64::NAN, f64::NAN)
    };
    let journal = server.request_log();
    let keyed: Vec<_> = journal
        .iter()
        .filter(|e| e.path.starts_with("/v2/"))
        .collect();
    Row {
        ratio,
        steady,
        unfair,
        share_after: refused_share(&keyed, Duration::from_mins(1)),
        share_all: refused_share(&keyed, Duration::ZERO),
        failures,
    }
}

/// Prints the table (rows whose name holds `only`).
#[allow(clippy::print_stdout, reason = "a bench binary prints its table")]
pub(super) fn table(rt: &tokio::runtime::Runtime, jobs: usize, only: &str) {
    let redis = RedisServer::start_or_skip("the throughput bench's redis rows");
    let mut stores = Stores {
        dir: tempfile::tempdir().expect("a temporary folder"),
        redis,
        rows: 0,
    };
    let mut cases = Vec::new();
    for clients in [1, 3, 8] {
        for sharing in [Sharing::Alone, Sharing::File, Sharing::Redis] {
            for told in [false, true] {
                cases.push(Case {
                    clients,
                    sharing,
                    told,
                    mishap: Mishap::None,
                });
            }
        }
    }
    for sharing in [Sharing::File, Sharing::Redis] {
        cases.push(Case {
            clients: 3,
            sharing,
            told: false,
            mishap: Mishap::Killed,
        });
    }
    for told in [false, true] {
        cases.push(Case {
            clients: 3,
            sharing: Sharing::Redis,
            told,
            mishap: Mishap::Restarted,
        });
    }
    println!(
        "### Sharing one budget (virtual time, {jobs} jobs per row over all clients, R={PER_MINUTE}/min, bucket, queue, {IN_FLIGHT} in flight in all)"
    );
    println!();
    println!(
        "| clients, budget, policy | /(R/2) (pipeline full) | over 1 client alone | most off fair share | 429 share after 1st min (all) | failures |"
    );
    println!("|---|---|---|---|---|---|");
    // The single-process figure of each policy: 1 client, not shared.
    let mut alone = [f64::NAN; 2];
    for case in cases.iter().filter(|c| c.name().contains(only)) {
        if case.sharing == Sharing::Redis && stores.redis.is_none() {
            println!("| {} | skipped: no redis-server | | | | |", case.name());
            continue;
        }
        let row = rt.block_on(run(case, jobs, &mut stores));
        if case.clients == 1 && case.sharing == Sharing::Alone {
            alone[usize::from(case.told)] = row.steady;
        }
        println!(
            "| {} | {:.2} ({:.2}) | {:.2} | {:.1} % | {:.2} % ({:.1} %) | {} |",
            case.name(),
            row.ratio,
            row.steady,
            row.steady / alone[usize::from(case.told)],
            row.unfair * 100.0,
            row.share_after * 100.0,
            row.share_all * 100.0,
            row.failures,
        );
    }
    println!();
}
