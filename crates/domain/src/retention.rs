//! What is kept only for a while, and its removal.
//!
//! Rows that serve a purpose for a bounded time (an idempotent response's
//! replay window, say) are removed once it is over, by the Core API's
//! background work: [`Housekeeping::run_once`] decides the cut-off of each
//! kind from the clock and has the store delete past it in small batches,
//! each its own short transaction, so neither a backlog nor the purge holds
//! up requests; between two full batches it rests ([`Rest`]), so that a
//! backlog (many flows expiring together) is cleared with a share of the
//! database's attention rather than all of it. Only one replica purges at a
//! time (the store settles it: a transaction-scoped advisory lock on
//! PostgreSQL, the write lock on SQLite); the others skip the run.
//!
//! Each run first rolls up the overview's counts of the hours whose flows
//! have stopped changing ([`crate::overview::roll_up`]), and removes only
//! flows whose hour is rolled up: the overview keeps counting flows that
//! retention removed.

use std::sync::Arc;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::overview;
use crate::store::{Purge, Repository, StoreResult};

/// How long each kind of row is kept past its purpose. Idempotency records
/// keep the 24 hours they promise to replay; an ended flow's SDK token and
/// ceremony go with the write that ends it, or at its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// How long a flow is kept after its expiry (for operators' reads of
    /// its timeline); never less than a day, which the IDV run limit counts.
    pub flows_after_expiry: Duration,
    /// How long a webhook delivery's de-duplication record is kept. A
    /// delivery older than the webhook's maximum age is refused anyway.
    pub provider_events: Duration,
}

/// The shortest [`RetentionPolicy::flows_after_expiry`]: the IDV run limit
/// counts the flows of the last 24 hours.
pub const MIN_FLOW_RETENTION: Duration = Duration::hours(24);

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            flows_after_expiry: Duration::days(30),
            provider_events: Duration::days(7),
        }
    }
}

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
            // 100 000 rows of each kind a run: above what a busy Core API
            // writes in the minute between runs.
            max_batches: 200,
        }
    }
}

/// The pause between two batches of a purge. The domain has no timer: the
/// runtime that runs housekeeping provides one.
#[async_trait]
pub trait Rest: Send + Sync {
    /// Called between a full batch that took `worked` and the next batch,
    /// which starts when this resolves.
    async fn after_batch(&self, worked: std::time::Duration);
}

/// What one run removed; `skipped` when another replica was purging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HousekeepingReport {
    pub idempotency_records: u64,
    pub provider_events: u64,
    /// Flows past their expiry whose SDK token or ceremony was cleared.
    pub expired_flow_secrets: u64,
    pub ended_flows: u64,
    /// Hours added to the overview's roll-up (not rows removed).
    pub overview_hours: u64,
    pub skipped: bool,
}

impl HousekeepingReport {
    /// Rows removed, of every kind.
    pub fn total(&self) -> u64 {
        self.idempotency_records
            + self.provider_events
            + self.expired_flow_secrets
            + self.ended_flows
    }
}

/// Removes what is past its purpose (see the module's documentation).
pub struct Housekeeping {
    repo: Arc<dyn Repository>,
    clock: Arc<dyn Clock>,
    policy: RetentionPolicy,
    pace: PurgePace,
    rest: Option<Arc<dyn Rest>>,
}

impl Housekeeping {
    pub fn new(repo: Arc<dyn Repository>, clock: Arc<dyn Clock>, policy: RetentionPolicy) -> Self {
        Self {
            repo,
            clock,
            policy,
            pace: PurgePace::default(),
            rest: None,
        }
    }

    /// Rests with `rest` between two full batches (without one, the batches
    /// follow one another at once).
    pub fn with_rest(mut self, rest: Arc<dyn Rest>) -> Self {
        self.rest = Some(rest);
        self
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
        let Some(rolled) = overview::roll_up(&*self.repo, now).await? else {
            report.skipped = true;
            return Ok(report);
        };
        report.overview_hours = rolled.hours;
        // A flow that expired before the roll-up's hour was created before
        // it: its hour is counted.
        let flows_before = (now - self.policy.flows_after_expiry.max(MIN_FLOW_RETENTION))
            .min(rolled.counted_to.unwrap_or(OffsetDateTime::UNIX_EPOCH));
        let kinds = [
            Purge::IdempotencyRecords { before: now },
            Purge::ProviderEvents {
                before: now - self.policy.provider_events,
            },
            Purge::ExpiredFlowSecrets { now },
            Purge::EndedFlows {
                before: flows_before,
            },
        ];
        for purge in kinds {
            let Some(n) = self.purge_all(purge).await? else {
                report.skipped = true;
                return Ok(report);
            };
            let count = match purge {
                Purge::IdempotencyRecords { .. } => &mut report.idempotency_records,
                Purge::ProviderEvents { .. } => &mut report.provider_events,
                Purge::ExpiredFlowSecrets { .. } => &mut report.expired_flow_secrets,
                Purge::EndedFlows { .. } => &mut report.ended_flows,
            };
            *count = n;
        }
        Ok(report)
    }

    /// Batches of one kind, with a rest between two of them (none after a
    /// batch that ends the kind or the run); `None` when another replica
    /// holds the purge.
    async fn purge_all(&self, purge: Purge) -> StoreResult<Option<u64>> {
        let mut removed = 0;
        // How long the previous batch took, once it was a full one.
        let mut worked = None;
        for _ in 0..self.pace.max_batches.max(1) {
            if let (Some(rest), Some(worked)) = (&self.rest, worked) {
                rest.after_batch(worked).await;
            }
            // A monotonic measure of work, not a time of day: not the Clock's.
            let started = std::time::Instant::now();
            let Some(n) = self.repo.purge(purge, self.pace.batch).await? else {
                return Ok(if removed == 0 { None } else { Some(removed) });
            };
            removed += n;
            if n < u64::from(self.pace.batch) {
                break;
            }
            worked = Some(started.elapsed());
        }
        Ok(Some(removed))
    }
}
