//! The maintenance lease: each of the maintainer's steps, run on its
//! session or, behind a pooler in transaction mode, in a transaction of its
//! own from the pool.

use std::sync::Arc;

use async_trait::async_trait;
use domain::audit::integrity::{Seal, SealHead};
use domain::audit::month::Month;
use domain::audit::trail::{ArchiveManifest, MaintenanceLease};
use domain::{AuditEvent, StoreError, StoreResult};
use sqlx::{Connection, Executor, PgConnection, Row};

use super::session::{MaintenanceSession, Parked};
use super::{MAINTENANCE_LOCK, archives, partitions, seals};
use crate::StorePool;
use crate::errors::map_err;

pub(super) struct PgLease {
    pub(super) held: Parked,
    pub(super) session: Arc<MaintenanceSession>,
    /// Behind a pooler in transaction mode, where the lease's work runs.
    pub(super) pool: Option<StorePool>,
}

/// Where one step of the lease's work runs: the maintainer's session, or
/// behind a pooler in transaction mode, a transaction of its own from the
/// pool (a step's own transactions nest in it as savepoints).
enum Work<'a> {
    Held(&'a mut PgConnection),
    Own(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Work<'_> {
    fn conn(&mut self) -> &mut PgConnection {
        match self {
            Work::Held(conn) => conn,
            Work::Own(tx) => tx,
        }
    }

    async fn done(self) -> StoreResult<()> {
        match self {
            Work::Held(_) => Ok(()),
            Work::Own(tx) => tx.commit().await.map_err(map_err),
        }
    }
}

impl PgLease {
    async fn work(&mut self) -> StoreResult<Work<'_>> {
        match &self.pool {
            None => Ok(Work::Held(&mut self.held.conn)),
            Some(pool) => Ok(Work::Own(pool.begin().await.map_err(map_err)?)),
        }
    }
}

#[async_trait]
impl MaintenanceLease for PgLease {
    fn partitioned(&self) -> bool {
        true
    }

    async fn partitions(&mut self) -> StoreResult<Vec<Month>> {
        let mut work = self.work().await?;
        let out = partitions::partitions(work.conn()).await?;
        work.done().await?;
        Ok(out)
    }

    async fn months_outside_partitions(&mut self) -> StoreResult<Vec<Month>> {
        let mut work = self.work().await?;
        let out = partitions::months_outside_partitions(work.conn()).await?;
        work.done().await?;
        Ok(out)
    }

    async fn create_partition(&mut self, month: Month) -> StoreResult<u64> {
        let mut work = self.work().await?;
        let out = partitions::create(work.conn(), month).await?;
        work.done().await?;
        Ok(out)
    }

    async fn months_present(&mut self) -> StoreResult<Vec<Month>> {
        let mut work = self.work().await?;
        let out = partitions::months_present(work.conn()).await?;
        work.done().await?;
        Ok(out)
    }

    async fn count_month(&mut self, month: Month) -> StoreResult<i64> {
        let mut work = self.work().await?;
        let out = partitions::count_month(work.conn(), month).await?;
        work.done().await?;
        Ok(out)
    }

    async fn archive_of(&mut self, month: Month) -> StoreResult<Option<ArchiveManifest>> {
        let mut work = self.work().await?;
        let out = archives::archive_of(work.conn(), month).await?;
        work.done().await?;
        Ok(out)
    }

    async fn drop_month(&mut self, month: Month) -> StoreResult<()> {
        let mut work = self.work().await?;
        let out = partitions::drop_month(work.conn(), month).await?;
        work.done().await?;
        Ok(out)
    }

    async fn seal_horizon(&mut self) -> StoreResult<Option<i64>> {
        // A SHARE lock waits for every transaction that is inserting events and
        // holds off new ones for its own duration: below the highest position
        // seen under it, no event can still appear. Writers queue behind a
        // waiting SHARE request, so it waits only briefly, and a few times:
        // inserts in flight end within milliseconds, but a vacuum or an analyze
        // of the table holds a conflicting lock for as long as it runs, and
        // waiting that out would stall every request that writes an event.
        // The statements go as one simple query (a bare string, no
        // parameters): PostgreSQL runs them as one implicit transaction and
        // releases the lock without waiting on a round trip from this process.
        let query = format!(
            "SET LOCAL lock_timeout = '{}ms'; \
             LOCK TABLE audit_events IN SHARE MODE; \
             SELECT COALESCE(max(seq), 0) FROM audit_events",
            seals::HORIZON_LOCK_WAIT.as_millis()
        );
        for attempt in 1..=seals::HORIZON_ATTEMPTS {
            // One simple query is one message: a pooler in transaction mode
            // sends it whole to one server session, outside any transaction.
            let horizon = match &self.pool {
                None => self.held.conn.fetch_all(query.as_str()).await,
                Some(pool) => match pool.acquire().await {
                    Ok(mut conn) => conn.fetch_all(query.as_str()).await,
                    Err(e) => Err(e),
                },
            };
            match horizon {
                Ok(rows) => {
                    let row = rows
                        .last()
                        .ok_or_else(|| StoreError::Corrupt("no seal horizon returned".into()))?;
                    return row.try_get(0).map(Some).map_err(map_err);
                }
                Err(e) if seals::is_lock_timeout(&e) => {
                    if attempt < seals::HORIZON_ATTEMPTS {
                        tokio::time::sleep(seals::HORIZON_RETRY_PAUSE).await;
                    }
                }
                Err(e) => return Err(map_err(e)),
            }
        }
        Ok(None)
    }

    async fn seal_head(&mut self) -> StoreResult<Option<SealHead>> {
        let mut work = self.work().await?;
        let out = seals::head(work.conn()).await?;
        work.done().await?;
        Ok(out)
    }

    async fn events_between(
        &mut self,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        let mut work = self.work().await?;
        let out = seals::events_between(work.conn(), after, upto, limit).await?;
        work.done().await?;
        Ok(out)
    }

    async fn count_after(&mut self, after: i64) -> StoreResult<u64> {
        let mut work = self.work().await?;
        let out = seals::count_after(work.conn(), after).await?;
        work.done().await?;
        Ok(out)
    }

    async fn insert_seals(&mut self, seals: &[Seal]) -> StoreResult<()> {
        let mut work = self.work().await?;
        let out = seals::insert(work.conn(), seals).await?;
        work.done().await?;
        Ok(out)
    }

    async fn replace_seals(&mut self, seals: &[Seal]) -> StoreResult<()> {
        let mut work = self.work().await?;
        let out = seals::replace(work.conn(), seals).await?;
        work.done().await?;
        Ok(out)
    }

    async fn release(mut self: Box<Self>) -> StoreResult<()> {
        if self.pool.is_some() {
            // Ending the transaction releases its lock.
            return match self.held.conn.execute("ROLLBACK").await {
                Ok(_) => {
                    self.session.park(self.held);
                    Ok(())
                }
                Err(e) => {
                    let _ = self.held.conn.close().await;
                    Err(map_err(e))
                }
            };
        }
        let unlocked: Result<bool, _> = sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
            .bind(MAINTENANCE_LOCK)
            .fetch_one(&mut self.held.conn)
            .await;
        match unlocked {
            // Unlocked on a working session: kept for the next run.
            Ok(true) => {
                self.session.park(self.held);
                Ok(())
            }
            // Closing ends the session, which releases the lock in any case.
            Ok(false) => self.held.conn.close().await.map_err(map_err),
            Err(e) => {
                let _ = self.held.conn.close().await;
                Err(map_err(e))
            }
        }
    }
}
