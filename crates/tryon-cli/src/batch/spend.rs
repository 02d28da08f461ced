//! What a run spends: `--max-spend`'s account of this run's submits
//! ([`Spend`], each at its estimate), and what they cost by the account's
//! own history, read once after the run ([`SpendReport`]).

use std::sync::Mutex;

use serde::Serialize;

use crate::cli::BatchArgs;

/// This run's spend against its cap: each submit at its estimate until
/// the account's history says what it cost.
#[derive(Debug, Default)]
pub struct Spend {
    /// The cap, in USD (`None`: no cap).
    pub cap: Option<f64>,
    /// The estimate of a job's first garment, and of each further one.
    pub prices: (f64, f64),
    /// Spent so far, in USD: estimates, and the history's figures once
    /// read (what the cap sees).
    pub spent: Mutex<f64>,
    /// Spent so far at the estimates alone (what the summary compares).
    pub estimated: Mutex<f64>,
    /// The jobs this run's submits made: each id, the figure counted for
    /// it, and whether that is the history's own.
    pub jobs: Mutex<Vec<(String, f64, bool)>>,
    /// How many jobs the history had been asked about at the last refresh
    /// (one refresh at a time, and none without a new job).
    pub refreshed: tokio::sync::Mutex<usize>,
}

fn held<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Spend {
    /// A run's account: `cap` and the prices it estimates with.
    pub fn new(cap: Option<f64>, prices: (f64, f64)) -> Self {
        Self {
            cap,
            prices,
            ..Self::default()
        }
    }

    /// Takes `cost` from the cap; `Err` says why not.
    fn try_take(&self, cost: f64) -> Result<(), String> {
        let mut spent = held(&self.spent);
        if let Some(cap) = self.cap
            && *spent + cost > cap + 1e-9
        {
            return Err(format!(
                "spend cap: ${:.4} of the --max-spend ${cap:.4} spent, and this job's estimate is ${cost:.4}",
                *spent
            ));
        }
        *spent += cost;
        *held(&self.estimated) += cost;
        Ok(())
    }

    /// Takes `cost` from the cap. Short, it first asks the account's
    /// history what this run's jobs really cost (once per new job, and
    /// not under one call a minute), then tries again.
    pub(super) async fn take(
        &self,
        client: &tryon_client::Client,
        cost: f64,
    ) -> Result<(), String> {
        match self.try_take(cost) {
            Ok(()) => Ok(()),
            Err(_) if self.refresh(client).await => self.try_take(cost),
            Err(e) => Err(e),
        }
    }

    /// Replaces the estimates of this run's jobs the history lists with
    /// their `credits_deduction`; whether anything was read.
    async fn refresh(&self, client: &tryon_client::Client) -> bool {
        let mut last = self.refreshed.lock().await;
        let asked = held(&self.jobs)
            .iter()
            .filter(|(_, _, known)| !known)
            .count();
        if asked == 0 || asked == *last || !advisory_reads(client) {
            return false;
        }
        *last = asked;
        let Some(costs) = history_costs(client, &self.job_ids()).await else {
            return false;
        };
        let mut jobs = held(&self.jobs);
        let mut spent = held(&self.spent);
        for (id, counted, known) in jobs.iter_mut() {
            if let Some(actual) = costs.get(id.as_str()).filter(|_| !*known) {
                *spent = (*spent - *counted + actual).max(0.0);
                *counted = *actual;
                *known = true;
            }
        }
        true
    }

    /// Counts a job this run's submit made, at `cost`.
    pub(super) fn made(&self, request_id: &str, cost: f64) {
        held(&self.jobs).push((request_id.to_string(), cost, false));
    }

    /// Gives `cost` back (the job was provably not billed).
    pub(super) fn give_back(&self, cost: f64) {
        let mut spent = held(&self.spent);
        *spent = (*spent - cost).max(0.0);
        let mut estimated = held(&self.estimated);
        *estimated = (*estimated - cost).max(0.0);
    }

    /// Spent so far at the estimates alone, in USD.
    pub fn estimated(&self) -> f64 {
        *held(&self.estimated)
    }

    /// The jobs this run's submits made.
    pub fn job_ids(&self) -> Vec<String> {
        held(&self.jobs)
            .iter()
            .map(|(id, _, _)| id.clone())
            .collect()
    }
}

/// What the account's history says each of `ids` cost (requests made
/// yesterday or today, UTC); `None` when it cannot be read.
async fn history_costs(
    client: &tryon_client::Client,
    ids: &[String],
) -> Option<std::collections::HashMap<String, f64>> {
    let wanted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    let today = jiff::tz::Offset::UTC
        .to_datetime(jiff::Timestamp::now())
        .date();
    let since = today.yesterday().unwrap_or(today);
    let query = tryon_client::HistoryQuery::new()
        .since(since)
        .until(today)
        .max_rows(super::settle::MAX_ROWS);
    let mut costs = std::collections::HashMap::new();
    let mut stream = std::pin::pin!(client.history(&query));
    while let Some(item) = futures::StreamExt::next(&mut stream).await {
        let entry = item.ok()?;
        if let Some(cost) = entry
            .credits_deduction
            .filter(|_| wanted.contains(entry.request_id.as_str()))
        {
            costs.insert(entry.request_id, cost);
        }
    }
    Some(costs)
}

/// Whether the reads only a person looks at (the balance before the
/// first submit, the history after the run) are worth a call of the rate
/// budget: not under one call a minute, where one read would hold the
/// first submit back a whole spacing. (Every keyed call counts against the
/// account's limit; settling, which decides what is sent, always reads.)
pub fn advisory_reads(client: &tryon_client::Client) -> bool {
    client
        .rate_budget()
        .is_none_or(|r| r.requests_per_minute() >= 1.0)
}

/// What this run's submits cost: their estimate, and what the account's
/// history charged for those it lists (read once, after the run; a
/// request's record may not have landed yet).
pub async fn spent(
    client: &tryon_client::Client,
    spend: &Spend,
    args: &BatchArgs,
) -> Option<SpendReport> {
    let jobs = spend.job_ids();
    let estimate = spend.estimated();
    if jobs.is_empty() && estimate <= 0.0 {
        return None;
    }
    let (actual, unread) = if advisory_reads(client) {
        match history_costs(client, &jobs).await {
            Some(costs) => (Some(costs), None),
            None => (None, None),
        }
    } else {
        (
            None,
            Some("was not read (the rate budget is under one call a minute)".to_string()),
        )
    };
    Some(SpendReport {
        jobs: jobs.len(),
        estimate_usd: estimate,
        actual_usd: actual.as_ref().map(|c| c.values().sum()),
        actual_jobs: actual.as_ref().map_or(0, std::collections::HashMap::len),
        unread,
        cap_usd: args.max_spend,
    })
}

/// What a run's submits cost: the estimate, and the account's own figure
/// for the jobs its history lists.
#[derive(Debug, Serialize)]
pub struct SpendReport {
    /// Jobs this run's submits made.
    pub jobs: usize,
    /// Their estimate (and that of submits whose outcome is unknown), USD.
    pub estimate_usd: f64,
    /// What the history charged for the jobs it lists (`None`: it could
    /// not be read).
    pub actual_usd: Option<f64>,
    /// How many of the jobs the history lists with a cost.
    pub actual_jobs: usize,
    /// Why the history was not read, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<String>,
    /// `--max-spend`, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_usd: Option<f64>,
}

impl SpendReport {
    /// `spent: $0.0450 by the account's history for 3 of 3 jobs (estimate $0.0450)`.
    pub fn line(&self) -> String {
        let cap = self
            .cap_usd
            .map(|c| format!("; --max-spend ${c:.4}"))
            .unwrap_or_default();
        match self.actual_usd {
            Some(actual) if self.actual_jobs > 0 => format!(
                "spent: ${actual:.4} by the account's history for {} of {} jobs this run (estimate ${:.4}{cap})",
                self.actual_jobs, self.jobs, self.estimate_usd
            ),
            Some(_) => format!(
                "spent: ${:.4} (estimate) for {} jobs this run; the account's history lists none of them yet{cap}",
                self.estimate_usd, self.jobs
            ),
            None => format!(
                "spent: ${:.4} (estimate) for {} jobs this run; the account's history {}{cap}",
                self.estimate_usd,
                self.jobs,
                self.unread.as_deref().unwrap_or("could not be read")
            ),
        }
    }
}
