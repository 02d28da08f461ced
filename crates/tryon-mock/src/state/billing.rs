//! Billing: jobs billed in all and per key, credit balances, and the
//! charge a job pays before it is accepted.

use std::collections::HashMap;

use super::{Refusal, State};
use crate::config::Credits;

/// The balance the credits endpoint reports when no credits are
/// configured (nothing is drawn from it): 1 000 000 USD.
pub(crate) const UNMETERED_BALANCE: f64 = 1_000_000.0;
use crate::sync::lock;

#[derive(Default)]
pub(crate) struct Billing {
    total: u64,
    per_key: HashMap<String, u64>,
    balances: HashMap<String, f64>,
}

/// What [`State::billing`] reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BillingView {
    /// Billed jobs, all keys together.
    pub(crate) total: u64,
    /// The key asked about, if one was.
    pub(crate) key: Option<KeyBilling>,
}

/// One key's billing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct KeyBilling {
    /// Billed jobs of this key.
    pub(crate) billed: u64,
    /// Its credit balance, once it has been charged or set.
    pub(crate) balance: Option<f64>,
}

impl State {
    /// Charges `key` for a job with `garments` garments, or refuses;
    /// answers what the job costs (at the default prices when no credits
    /// are configured, which are then not drawn from a balance).
    pub(crate) fn charge(&self, key: &str, garments: usize) -> Result<f64, Refusal> {
        let Some(credits) = lock(&self.settings).credits.clone() else {
            return Ok(Credits::default().cost(garments));
        };
        let cost = credits.cost(garments);
        let mut billing = lock(&self.billing);
        let balance = billing
            .balances
            .entry(key.to_string())
            .or_insert(credits.balance);
        // A tiny tolerance so that float sums like 0.015 * n still pay.
        if *balance + 1e-9 < cost {
            return Err(Refusal::NoCredits);
        }
        *balance -= cost;
        Ok(cost)
    }

    /// What `key` has left: its balance once charged or set, else the
    /// configured starting balance; [`UNMETERED_BALANCE`] when no credits
    /// are configured.
    pub(crate) fn credits_of(&self, key: &str) -> f64 {
        let Some(credits) = lock(&self.settings).credits.clone() else {
            return UNMETERED_BALANCE;
        };
        lock(&self.billing)
            .balances
            .get(key)
            .copied()
            .unwrap_or(credits.balance)
    }

    /// Counts one billed job of `key`.
    pub(crate) fn bill(&self, key: &str) {
        let mut billing = lock(&self.billing);
        billing.total += 1;
        *billing.per_key.entry(key.to_string()).or_insert(0) += 1;
    }

    /// Billed jobs in all, and for `key` with its balance.
    pub(crate) fn billing(&self, key: Option<&str>) -> BillingView {
        let b = lock(&self.billing);
        BillingView {
            total: b.total,
            key: key.map(|k| KeyBilling {
                billed: b.per_key.get(k).copied().unwrap_or(0),
                balance: b.balances.get(k).copied(),
            }),
        }
    }

    /// Sets `key`'s credit balance.
    pub(crate) fn set_balance(&self, key: &str, balance: f64) {
        lock(&self.billing)
            .balances
            .insert(key.to_string(), balance);
    }
}
