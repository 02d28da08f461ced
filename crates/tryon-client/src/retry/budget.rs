//! The client-wide retry budget: a token bucket (after aws-sdk-rust's and
//! smithy-rs's `token_bucket.rs`) that every retry of every clone of a
//! client draws on, so a failing server never meets a retry storm. What it
//! costs and refunds is part of the rules on
//! [`RetryPolicy`](crate::RetryPolicy).

use std::sync::atomic::{AtomicU32, Ordering};

/// The client-wide retry token bucket.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    tokens: AtomicU32,
    capacity: u32,
}

impl RetryBudget {
    /// A full bucket of `capacity` tokens.
    pub(crate) fn new(capacity: u32) -> Self {
        Self {
            tokens: AtomicU32::new(capacity),
            capacity,
        }
    }

    /// Takes `cost` tokens; false when there are not enough.
    pub(crate) fn withdraw(&self, cost: u32) -> bool {
        self.tokens
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| t.checked_sub(cost))
            .is_ok()
    }

    /// Gives `n` tokens back, up to the capacity.
    pub(crate) fn refund(&self, n: u32) {
        let cap = self.capacity;
        let _ = self
            .tokens
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(n).min(cap))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_drains_and_refills() {
        let b = RetryBudget::new(10);
        assert!(b.withdraw(5));
        assert!(b.withdraw(5));
        assert!(!b.withdraw(5));
        b.refund(100);
        assert!(b.withdraw(10));
    }
}
