//! A shared budget's store lost mid-run, on both backends (one after the
//! other, in a binary of its own: the test reads logs, see
//! `common/logs.rs`).
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;
mod sharing;

use std::time::Duration;

use common::logs::Logs;
use sharing::*;
use tryon_client::RateLimit;

/// The store is lost for a minute mid-run (Redis killed and started
/// afresh on the same port; the file's lock made unopenable): the clients
/// go on alone at a third of the told budget each, say so once each, come
/// back, and every job completes and is billed once.
async fn a_store_lost_mid_run_is_survived(mut backend: Backend) {
    let (server, clock) = server().await;
    let budget = backend.budget();
    let told = RateLimit::per_minute(PER_MINUTE).ok();
    let clients = sharers(3, &server, &clock, &budget, told);
    let logs = Logs::capture(tracing::Level::WARN);
    // Enough jobs that the run outlasts the minute without the store, at
    // two calls a job.
    let jobs = 240;
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
        text.contains("share=166.67/min"),
        "a third of 500/min:\n{text}"
    );
    assert!(!text.contains(KEY), "the key never reaches a log");
    assert_eq!(clients[0].shared_budget_sharers(), Some(3), "sharing again");
}

#[tokio::test(start_paused = true)]
async fn a_store_lost_mid_run_is_survived_on_both_backends() {
    a_store_lost_mid_run_is_survived(Backend::file()).await;
    if let Some(backend) = Backend::redis("a_store_lost_mid_run_is_survived_on_both_backends") {
        a_store_lost_mid_run_is_survived(backend).await;
    }
}
