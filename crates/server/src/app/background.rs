//! The Core API's background work: reconciling flows with the IDV provider,
//! the provider's clean-ups, the refusal tallies, and housekeeping (the
//! overview's roll-up and the purge of rows past their retention), each on
//! its own period until shutdown.

use std::future::Future;
use std::sync::Arc;

use domain::service::FlowService;

use crate::metrics::Metrics;

/// How often the reconciler looks for flows waiting on the provider, and how many per pass.
pub const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
pub const RECONCILE_BATCH: u32 = 50;

/// Runs `work` at once and then every `period` (a late run delays the next
/// rather than bunching up) until `shutdown` resolves. A run still going
/// when it does is abandoned where it stands, as a crash would leave it:
/// each write is its own transaction, rolled back unless committed, and the
/// next run (here or on another replica) takes up what is left. Without that,
/// a pass waiting on a database that is down (each store call waiting out the
/// pool's acquire timeout) would hold the process past the orchestrator's
/// grace period.
pub async fn every<F, Fut>(
    period: std::time::Duration,
    shutdown: impl Future<Output = ()>,
    mut work: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        tokio::select! {
            biased;
            () = &mut shutdown => return,
            () = work() => {}
        }
    }
}

/// Re-reads runs whose webhook did not arrive, has the provider forget
/// deleted users, and writes the counts of refused requests (webhook
/// deliveries not acted on, unknown hand-off codes),
/// until `shutdown` resolves (then the counts of the open window too).
/// With `metrics` on, each pass ends by counting the provider clean-up queue
/// for them.
pub async fn reconcile_loop(
    flows: Arc<FlowService>,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) {
    every(RECONCILE_EVERY, shutdown, || {
        reconcile_once(&flows, &metrics)
    })
    .await;
    flush_refusal_tally(&flows, true).await;
}

async fn flush_refusal_tally(flows: &FlowService, all: bool) {
    if let Err(e) = flows.flush_refusal_tally(all).await {
        tracing::warn!(error = %e, "counts of refused requests were not recorded");
    }
}

async fn reconcile_once(flows: &FlowService, metrics: &Metrics) {
    flush_refusal_tally(flows, false).await;
    match flows.reconcile(RECONCILE_BATCH).await {
        Ok(report) if report.applied > 0 || report.looked_up > 0 => {
            tracing::info!(
                checked = report.checked,
                applied = report.applied,
                looked_up = report.looked_up,
                found = report.found,
                "reconciled flows with the IDV provider"
            );
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "reconciliation with the IDV provider failed; retrying next pass")
        }
    }
    match flows.process_provider_cleanups(RECONCILE_BATCH).await {
        Ok(report) => {
            if report.forgotten > 0 {
                tracing::info!(
                    users = report.forgotten,
                    "the IDV provider forgot deleted users"
                );
            }
            // Our id of the deleted user only: never the customer's
            // identifier or the provider's applicant id.
            for failed in &report.retrying {
                tracing::warn!(
                    user_id = %failed.user_id.0,
                    attempts = failed.attempts,
                    reason = %failed.reason,
                    "the IDV provider could not be asked to forget a deleted user; retrying later"
                );
            }
            for dead in &report.dead {
                tracing::error!(
                    alert = "provider_cleanup_dead",
                    user_id = %dead.user_id.0,
                    attempts = dead.attempts,
                    reason = %dead.reason,
                    "gave up asking the IDV provider to forget a deleted user: the clean-up is \
                     marked dead; see GET /api/management/v1/provider-cleanups"
                );
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "provider cleanup of deleted users failed; retrying next pass")
        }
    }
    // Counted here, where the queue moves, rather than on scrape: one small
    // count every pass whoever scrapes, and a scrape never waits for the
    // database.
    if metrics.is_on() {
        match flows.provider_cleanup_counts().await {
            Ok(counts) => metrics.provider_cleanups_counted(&counts),
            Err(e) => {
                tracing::warn!(error = %e, "counting the provider clean-up queue failed; retrying next pass")
            }
        }
    }
    match flows.discard_stale_staged_references().await {
        Ok(n) if n > 0 => {
            tracing::info!(
                references = n,
                "discarded biometric references staged by ended flows"
            )
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "discarding staged biometric references failed; retrying next pass")
        }
    }
}

/// The longest rest between two batches of a purge.
const MAX_REST: std::time::Duration = std::time::Duration::from_secs(1);

/// Rests as long as the batch took (at most [`MAX_REST`]): while it clears
/// a backlog, the purge keeps one connection busy half of the time, and the
/// 200 batches a run takes at most still fit in the minute between runs
/// while a batch takes under 150 ms.
struct BatchRest;

#[async_trait::async_trait]
impl domain::retention::Rest for BatchRest {
    async fn after_batch(&self, worked: std::time::Duration) {
        tokio::time::sleep(worked.min(MAX_REST)).await;
    }
}

/// How often the Core API removes rows past their retention.
pub const HOUSEKEEPING_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Rolls up the overview's settled hours and removes what is past its
/// purpose (`domain::retention`) every [`HOUSEKEEPING_EVERY`] until
/// `shutdown` resolves, the purge resting between batches ([`BatchRest`]).
pub async fn housekeeping_loop(
    housekeeping: domain::retention::Housekeeping,
    shutdown: impl Future<Output = ()>,
) {
    let housekeeping = housekeeping.with_rest(Arc::new(BatchRest));
    every(HOUSEKEEPING_EVERY, shutdown, || async {
        let result = housekeeping.run_once().await;
        if let Ok(report) = &result
            && report.overview_hours > 0
        {
            tracing::info!(
                hours = report.overview_hours,
                "rolled up the overview's hours"
            );
        }
        match result {
            Ok(report) if report.skipped => {
                tracing::debug!("the purge of expired rows is running elsewhere; skipped")
            }
            Ok(report) if report.total() > 0 => tracing::info!(
                idempotency_records = report.idempotency_records,
                provider_events = report.provider_events,
                expired_flow_secrets = report.expired_flow_secrets,
                ended_flows = report.ended_flows,
                "removed rows past their retention"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "removing rows past their retention failed; retrying next run")
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use domain::retention::Rest;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_run_still_going_at_shutdown_is_abandoned() {
        let started = Arc::new(AtomicU32::new(0));
        let counted = started.clone();
        let loop_ = tokio::spawn(every(
            Duration::from_secs(60),
            tokio::time::sleep(Duration::from_secs(1)),
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
                // A store call that waits far longer than the shutdown.
                tokio::time::sleep(Duration::from_secs(3600))
            },
        ));
        let stopped_at = tokio::time::Instant::now();
        loop_.await.unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 1);
        assert_eq!(stopped_at.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn runs_follow_the_period_until_shutdown() {
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        every(
            Duration::from_secs(10),
            tokio::time::sleep(Duration::from_secs(25)),
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
                std::future::ready(())
            },
        )
        .await;
        // At 0, 10 and 20 seconds.
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_rest_lasts_as_long_as_the_batch_up_to_a_second() {
        for (worked, rested) in [(40, 40), (700, 700), (5_000, 1_000)] {
            let started = tokio::time::Instant::now();
            BatchRest.after_batch(Duration::from_millis(worked)).await;
            assert_eq!(started.elapsed(), Duration::from_millis(rested));
        }
    }
}
