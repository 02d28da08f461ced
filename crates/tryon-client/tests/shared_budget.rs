//! Clients sharing one budget ([`SharedBudget`]), in virtual time (see
//! `sharing/mod.rs`). Every test runs twice, on a file and on a Redis
//! server of its own (`mod file`, `mod redis` at the end): one suite for
//! both backends. A Redis test that cannot start `redis-server` skips
//! outside CI and fails under `CI=true`. The store lost mid-run reads logs,
//! so it has a binary of its own: `shared_budget_lost.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::cast_precision_loss
)]

mod sharing;

use std::time::Duration;

use sharing::*;
use tryon_client::{RateLimit, SharedBudget};

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
    // Enough jobs that the survivors are still at work well past the dead
    // sharer's registration lapsing (30 s), at two calls a job.
    let jobs = 300;
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
    join_names_an_unreachable_or_foreign_store,
);
