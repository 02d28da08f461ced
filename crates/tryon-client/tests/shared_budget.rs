//! Clients sharing one budget ([`SharedBudget`]), in virtual time: a paused
//! tokio runtime driving the mock's clock, the stores in test mode (their
//! time is the clients' clock). Every test runs twice, on a file and on a
//! Redis server of its own (`mod file`, `mod redis` at the end): one suite
//! for both backends. A Redis test that cannot start `redis-server` skips
//! outside CI and fails under `CI=true`.
#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::cast_precision_loss
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use tryon_client::test_util::{DrivingClock, RedisServer};
use tryon_client::{Client, Clock as _, Image, RateLimit, SharedBudget, TryOnRequest};
use tryon_mock::{MockClock, MockServer, RateLimitRule};

const KEY: &str = "sk-shared-budget-test";
/// The account's budget: 500 a minute, burst 10, on every keyed call.
const PER_MINUTE: f64 = 500.0;

/// Where the budget lives for one test.
enum Backend {
    File(tempfile::TempDir),
    Redis(RedisServer),
}

impl Backend {
    fn file() -> Self {
        Backend::File(tempfile::tempdir().unwrap())
    }

    fn redis(test: &str) -> Option<Self> {
        RedisServer::start_or_skip(test).map(Backend::Redis)
    }

    fn budget(&self) -> SharedBudget {
        let url = match self {
            Backend::File(dir) => format!("file:{}", dir.path().join("budget").display()),
            Backend::Redis(server) => server.url(),
        };
        SharedBudget::new(&url).unwrap().with_client_clock()
    }

    /// Makes the store unreachable until [`repair`](Self::repair).
    fn break_it(&mut self) {
        match self {
            Backend::File(dir) => {
                let lock = dir.path().join("budget.lock");
                let _ = std::fs::remove_file(&lock);
                std::fs::create_dir(&lock).unwrap();
            }
            Backend::Redis(server) => server.kill(),
        }
    }

    fn repair(&mut self) {
        match self {
            Backend::File(dir) => std::fs::remove_dir(dir.path().join("budget.lock")).unwrap(),
            Backend::Redis(server) => server.restart().unwrap(),
        }
    }
}

fn request(i: u64) -> TryOnRequest {
    let garments = [1usize, 3, 2][usize::try_from(i % 3).unwrap()];
    TryOnRequest::builder()
        .person(Image::url("https://example.com/person.jpg"))
        .garments((0..garments).map(|g| Image::url(format!("https://example.com/g{g}.jpg"))))
        .seed(i)
        .build()
        .unwrap()
}

/// A mock with the realistic profile and the account's bucket, and the
/// clock every client drives it with.
async fn server() -> (Arc<MockServer>, DrivingClock) {
    let server = MockServer::builder()
        .virtual_time()
        .realistic()
        .workers(10_000)
        .header_timeout(Duration::from_hours(1))
        .rate_limit(RateLimitRule::new(PER_MINUTE / 60.0, 10))
        .start()
        .await;
    let clock = DrivingClock::new(server.clock(), MockClock::now, MockClock::advance);
    (Arc::new(server), clock)
}

fn client(
    server: &MockServer,
    clock: &DrivingClock,
    budget: Option<&SharedBudget>,
    told: Option<RateLimit>,
) -> Client {
    let mut b = Client::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .clock(clock.clone())
        .wait_timeout(Duration::from_hours(1));
    if let Some(budget) = budget {
        b = b.shared_budget(budget.clone());
    }
    if let Some(told) = told {
        b = b.rate_limit(told);
    }
    b.build().unwrap()
}

/// `n` clients sharing `budget`.
fn sharers(
    n: usize,
    server: &MockServer,
    clock: &DrivingClock,
    budget: &SharedBudget,
    told: Option<RateLimit>,
) -> Vec<Client> {
    (0..n)
        .map(|_| client(server, clock, Some(budget), told))
        .collect()
}

/// What a run of several clients did.
struct Run {
    /// Per client, when each of its jobs completed (clock time).
    done: Vec<Vec<Duration>>,
    failures: usize,
    /// When the run ended.
    end: Duration,
}

/// Runs `jobs` jobs on each client at concurrency 16, all at once, each
/// client in a task of its own; the client `kill`s names is aborted at
/// that time (as a process killed with `kill -9` stops).
async fn run(
    clients: &[Client],
    jobs: u64,
    clock: &DrivingClock,
    kill: Option<(usize, Duration)>,
) -> Run {
    let done = Arc::new(Mutex::new(vec![Vec::new(); clients.len()]));
    let failures = Arc::new(Mutex::new(0usize));
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let client = client.clone();
        let done = done.clone();
        let failures = failures.clone();
        let clock = clock.clone();
        let first = c as u64 * jobs;
        tasks.push(tokio::spawn(async move {
            let mut results = client.run_many((first..first + jobs).map(request), 16);
            while let Some((i, r)) = results.next().await {
                match r {
                    Ok(_) => done.lock().unwrap()[c].push(clock.now()),
                    Err(e) => {
                        eprintln!("client {c} job {i}: {e}");
                        *failures.lock().unwrap() += 1;
                    }
                }
            }
        }));
    }
    if let Some((victim, at)) = kill {
        tokio::time::sleep(at).await;
        tasks[victim].abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    let done = done.lock().unwrap().clone();
    let failures = *failures.lock().unwrap();
    Run {
        done,
        failures,
        end: clock.now(),
    }
}

/// The share of keyed calls answered `429` from `from` on.
fn refused_share(server: &MockServer, from: Duration) -> f64 {
    let keyed: Vec<_> = server
        .request_log()
        .into_iter()
        .filter(|e| e.path.starts_with("/v2/") && e.at >= from)
        .collect();
    let refused = keyed.iter().filter(|e| e.status == Some(429)).count();
    refused as f64 / keyed.len().max(1) as f64
}

/// Jobs a minute over `from..to`, per client.
fn rates(run: &Run, from: Duration, to: Duration) -> Vec<f64> {
    let minutes = to.saturating_sub(from).as_secs_f64() / 60.0;
    run.done
        .iter()
        .map(|d| d.iter().filter(|&&t| t >= from && t <= to).count() as f64 / minutes)
        .collect()
}

/// The most any client's share of `rates` is off the fair share, as a
/// fraction of it.
fn unfairness(rates: &[f64]) -> f64 {
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    rates
        .iter()
        .map(|r| (r - mean).abs() / mean)
        .fold(0.0, f64::max)
}

/// Three clients, learning the budget together: one `429` anywhere cuts
/// for everybody, so together they stay near the budget with few `429`s
/// after the first minute, each gets about a third, and every job is
/// billed once. (Three unshared clients each learn and cut on their own.)
async fn three_sharers_learn_one_budget_and_share_it_fairly(backend: Backend) {
    let (server, clock) = server().await;
    let budget = backend.budget();
    let clients = sharers(3, &server, &clock, &budget, None);
    let jobs = 150;
    let run = run(&clients, jobs, &clock, None).await;
    assert_eq!(run.failures, 0);
    assert_eq!(
        server.billed_submits(),
        3 * jobs,
        "each job billed exactly once"
    );
    let share = refused_share(&server, Duration::from_mins(1));
    assert!(
        share <= 0.02,
        "{:.2} % refused after the first minute",
        share * 100.0
    );
    // While all three have work: until the first one is done.
    let busy = run
        .done
        .iter()
        .map(|d| d.iter().copied().max().unwrap())
        .min()
        .unwrap();
    let rates = rates(&run, Duration::from_mins(1), busy);
    assert!(unfairness(&rates) <= 0.2, "per client jobs/min {rates:?}");
    let together: f64 = rates.iter().sum();
    assert!(
        together >= 0.8 * PER_MINUTE / 3.0,
        "{together:.1} jobs/min together, {rates:?}"
    );
    assert_eq!(clients[0].shared_budget_sharers(), Some(3));
    // The learned budget is one budget: every client reads the same.
    let learned: Vec<_> = clients
        .iter()
        .map(|c| c.rate_budget().unwrap().requests_per_minute())
        .collect();
    assert!(
        learned
            .iter()
            .all(|b| (b - learned[0]).abs() < PER_MINUTE * 0.05),
        "{learned:?}"
    );
}

/// Three clients told `--rate 500/min` each and sharing it keep to it
/// together: no `429` at all. Told and not shared, they would send three
/// times the budget.
async fn three_sharers_told_the_budget_keep_to_it_together(backend: Backend) {
    let (server, clock) = server().await;
    let budget = backend.budget();
    let told = RateLimit::per_minute(PER_MINUTE).ok();
    let clients = sharers(3, &server, &clock, &budget, told);
    let jobs = 100;
    let run = run(&clients, jobs, &clock, None).await;
    assert_eq!(run.failures, 0);
    assert_eq!(server.billed_submits(), 3 * jobs);
    let refused = server
        .request_log()
        .iter()
        .filter(|e| e.status == Some(429))
        .count();
    assert_eq!(refused, 0, "paced at the budget together, never refused");
    let per_min = (3 * jobs) as f64 / (run.end.as_secs_f64() / 60.0);
    assert!(per_min >= 0.8 * PER_MINUTE / 3.0, "{per_min:.1} jobs/min");
}

/// One of three sharers dies two minutes in (its task aborted, as `kill
/// -9` stops a process): the two left take its share at once, finish
/// everything, and after its registration lapses count two sharers.
async fn a_dead_sharer_leaves_its_share_to_the_others(backend: Backend) {
    let (server, clock) = server().await;
    let budget = backend.budget();
    let clients = sharers(3, &server, &clock, &budget, None);
    let jobs = 200;
    let killed_at = Duration::from_mins(2);
    let run = run(&clients, jobs, &clock, Some((2, killed_at))).await;
    assert_eq!(run.failures, 0);
    assert_eq!((run.done[0].len() + run.done[1].len()) as u64, 2 * jobs);
    // From ten seconds after the death until the first survivor is done,
    // the two together run at about the whole budget.
    let busy = run.done[..2]
        .iter()
        .map(|d| d.iter().copied().max().unwrap())
        .min()
        .unwrap();
    let after = rates(&run, killed_at + Duration::from_secs(10), busy);
    let together = after[0] + after[1];
    assert!(
        together >= 0.8 * PER_MINUTE / 3.0,
        "{together:.1} jobs/min after the death, {after:?}"
    );
    assert!(unfairness(&after[..2]) <= 0.2, "{after:?}");
    // Billed once each: the dead one's submitted jobs are billed, none twice.
    let submitted = server.billed_submits();
    assert!(submitted <= 3 * jobs && submitted >= 2 * jobs + run.done[2].len() as u64);
    assert_eq!(
        clients[0].shared_budget_sharers(),
        Some(2),
        "the dead sharer lapsed"
    );
}

/// The store is lost for a minute mid-run (Redis killed and started
/// afresh on the same port; the file's lock made unopenable): the clients
/// go on alone at a third of the told budget each, say so once each, come
/// back, and every job completes and is billed once.
async fn a_store_lost_mid_run_is_survived(mut backend: Backend) {
    let (server, clock) = server().await;
    let budget = backend.budget();
    let told = RateLimit::per_minute(PER_MINUTE).ok();
    let clients = sharers(3, &server, &clock, &budget, told);
    let logs = Logs::capture();
    let jobs = 120;
    let runs = tokio::spawn({
        let clients = clients.clone();
        let clock = clock.clone();
        async move { run(&clients, jobs, &clock, None).await }
    });
    tokio::time::sleep(Duration::from_secs(40)).await;
    backend.break_it();
    tokio::time::sleep(Duration::from_mins(1)).await;
    backend.repair();
    let run = runs.await.unwrap();
    assert_eq!(run.failures, 0);
    assert_eq!(
        server.billed_submits(),
        3 * jobs,
        "each job billed exactly once"
    );
    let refused = server
        .request_log()
        .iter()
        .filter(|e| e.status == Some(429))
        .count();
    assert!(
        refused <= 3,
        "{refused} refused: alone, each kept to a third"
    );
    let text = logs.text();
    assert_eq!(
        text.matches("shared budget lost").count(),
        3,
        "once per client:\n{text}"
    );
    assert_eq!(text.matches("shared budget is back").count(), 3, "{text}");
    assert!(
        text.contains("share=167/min"),
        "a third of 500/min:\n{text}"
    );
    assert!(!text.contains(KEY), "the key never reaches a log");
    assert_eq!(clients[0].shared_budget_sharers(), Some(3), "sharing again");
}

/// A store that cannot be reached, or holds something that is not our
/// budget, is named in the error of `join_shared_budget`; a client that
/// never joined still works (alone).
async fn join_names_an_unreachable_or_foreign_store(backend: Backend) {
    let (server, clock) = server().await;
    let unreachable = match &backend {
        Backend::File(dir) => format!("file:{}", dir.path().join("no/such/dir/budget").display()),
        Backend::Redis(_) => {
            let free = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            format!("redis://127.0.0.1:{free}/0")
        }
    };
    let budget = SharedBudget::new(&unreachable).unwrap();
    let c = client(&server, &clock, Some(&budget), None);
    let e = c.join_shared_budget().await.unwrap_err().to_string();
    assert!(
        e.contains("shared_budget") && e.contains(&budget.url()),
        "{e}"
    );
    // Not joined, it still runs, alone.
    c.run(&request(1)).await.unwrap();
    assert_eq!(server.billed_submits(), 1);

    // Something else under the budget's name: refused, named, left alone.
    let budget = backend.budget();
    let named = match &backend {
        Backend::File(dir) => {
            let path = dir.path().join("budget");
            std::fs::write(&path, "some other program's file\n").unwrap();
            path.display().to_string()
        }
        Backend::Redis(redis) => {
            client(&server, &clock, Some(&budget), None)
                .join_shared_budget()
                .await
                .unwrap();
            let state = redis.command(&["KEYS", "tryon:*:state"]).unwrap();
            assert!(state.starts_with("tryon:{fp"), "{state}");
            redis.command(&["DEL", &state]).unwrap();
            redis.command(&["SET", &state, "someone else's"]).unwrap();
            state
        }
    };
    let c = client(&server, &clock, Some(&budget), None);
    let e = c.join_shared_budget().await.unwrap_err().to_string();
    assert!(e.contains("refused") && e.contains(&named), "{e}");
    assert!(!e.contains(KEY), "{e}");
}

/// Log lines, captured for one test (on its thread).
struct Logs {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Logs {
    fn capture() -> Self {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || Writer(writer.clone()))
            .finish();
        Self {
            buf,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Each test above, once per backend.
macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod file {
            $(
                #[tokio::test(start_paused = true)]
                async fn $test() {
                    super::$test(super::Backend::file()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(start_paused = true)]
                async fn $test() {
                    if let Some(backend) = super::Backend::redis(stringify!($test)) {
                        super::$test(backend).await;
                    }
                }
            )*
        }
    };
}

suite!(
    three_sharers_learn_one_budget_and_share_it_fairly,
    three_sharers_told_the_budget_keep_to_it_together,
    a_dead_sharer_leaves_its_share_to_the_others,
    a_store_lost_mid_run_is_survived,
    join_names_an_unreachable_or_foreign_store,
);
