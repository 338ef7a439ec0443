//! What is kept only for a while, and its removal.
//!
//! Rows that serve a purpose for a bounded time (an idempotent response's
//! replay window, say) are removed once it is over, by the Core API's
//! background work: [`Housekeeping::run_once`] decides the cut-off of each
//! kind from the clock and has the store delete past it in small batches,
//! each its own short transaction, so neither a backlog nor the purge holds
//! up requests. Only one replica purges at a time (the store settles it: a
//! transaction-scoped advisory lock on PostgreSQL, the write lock on SQLite);
//! the others skip the run.

use std::sync::Arc;

use crate::clock::Clock;
use crate::store::{Purge, Repository, StoreResult};

/// How many rows one batch deletes, and how many batches of each kind one run
/// takes at most (the rest waits for the next run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgePace {
    pub batch: u32,
    pub max_batches: u32,
}

impl Default for PurgePace {
    fn default() -> Self {
        Self {
            batch: 500,
            max_batches: 20,
        }
    }
}

/// What one run removed; `skipped` when another replica was purging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HousekeepingReport {
    pub idempotency_records: u64,
    pub skipped: bool,
}

impl HousekeepingReport {
    /// Rows removed, of every kind.
    pub fn total(&self) -> u64 {
        self.idempotency_records
    }
}

/// Removes what is past its purpose (see the module's documentation).
pub struct Housekeeping {
    repo: Arc<dyn Repository>,
    clock: Arc<dyn Clock>,
    pace: PurgePace,
}

impl Housekeeping {
    pub fn new(repo: Arc<dyn Repository>, clock: Arc<dyn Clock>) -> Self {
        Self {
            repo,
            clock,
            pace: PurgePace::default(),
        }
    }

    pub fn with_pace(mut self, pace: PurgePace) -> Self {
        self.pace = pace;
        self
    }

    /// One run: every kind, batch after batch, until a batch comes back short,
    /// the run's batches are spent, or another replica turns out to be purging.
    pub async fn run_once(&self) -> StoreResult<HousekeepingReport> {
        let now = self.clock.now();
        let mut report = HousekeepingReport::default();
        match self
            .purge_all(Purge::IdempotencyRecords { before: now })
            .await?
        {
            Some(n) => report.idempotency_records = n,
            None => {
                report.skipped = true;
                return Ok(report);
            }
        }
        Ok(report)
    }

    /// Batches of one kind; `None` when another replica holds the purge.
    async fn purge_all(&self, purge: Purge) -> StoreResult<Option<u64>> {
        let mut removed = 0;
        for _ in 0..self.pace.max_batches.max(1) {
            let Some(n) = self.repo.purge(purge, self.pace.batch).await? else {
                return Ok(if removed == 0 { None } else { Some(removed) });
            };
            removed += n;
            if n < u64::from(self.pace.batch) {
                break;
            }
        }
        Ok(Some(removed))
    }
}
