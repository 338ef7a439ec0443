//! Audit maintenance on PostgreSQL: monthly partitions, retention by dropping
//! partitions, seals and archive manifests.
//!
//! One maintainer at a time: the lease is a session advisory lock on a
//! connection of the maintainer's own, outside the pool, so the lock goes when
//! the connection closes, whatever happens to the maintainer. Each replica keeps
//! that connection between runs ([`MaintenanceSession`]).
//!
//! Behind a pooler in transaction mode (`DB_POOLER_MODE=transaction`) no
//! session lasts beyond a transaction: the lease is then a transaction-scoped
//! advisory lock in a transaction the maintainer's connection keeps open
//! while it leads (the pooler keeps it on one server session meanwhile, and
//! ends it, lock and all, if the maintainer goes), and the lease's work runs
//! on the pool, each step in transactions of its own.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::StorePool;
use async_trait::async_trait;
use domain::audit::integrity::{Seal, SealHead, SealHeader};
use domain::audit::month::Month;
use domain::audit::trail::{ArchiveManifest, ArchiveRecorded, MaintenanceLease};
use domain::{AuditEvent, StoreError, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::{Connection, Executor, PgConnection, Row};
use time::{Date, OffsetDateTime};

use crate::audit::{COLUMNS, to_event};
use crate::errors::map_err;

/// `pg_try_advisory_lock` key of audit maintenance ("bpaudit1").
pub const MAINTENANCE_LOCK: i64 = 0x6270_6175_6469_7431;
/// How long DDL waits for the locks it needs before giving up until next run.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '10s'";
const DEFAULT_PARTITION: &str = "audit_events_default";

fn partition_name(month: Month) -> String {
    format!("audit_events_y{:04}m{:02}", month.year(), month.number())
}

fn partition_month(name: &str) -> Option<Month> {
    let rest = name.strip_prefix("audit_events_y")?;
    let (year, number) = rest.split_once('m')?;
    Month::new(year.parse().ok()?, number.parse().ok()?)
}

/// A timestamptz literal for DDL, which takes no bind parameters; built from
/// integers only.
fn literal(at: OffsetDateTime) -> String {
    format!(
        "'{:04}-{:02}-{:02} 00:00:00+00'",
        at.year(),
        u8::from(at.month()),
        at.day()
    )
}

fn month_of_date(date: Date, column: &str) -> StoreResult<Month> {
    Month::new(date.year(), u8::from(date.month()))
        .filter(|_| date.day() == 1)
        .ok_or_else(|| StoreError::Corrupt(format!("{column}: {date} is not a month")))
}

/// How long the sealer's `SHARE` lock may wait, and so hold up writers, per
/// attempt; attempts, and the pause between them, before sealing waits for the
/// next maintenance run.
const HORIZON_LOCK_WAIT: Duration = Duration::from_millis(20);
const HORIZON_ATTEMPTS: u32 = 5;
const HORIZON_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// PostgreSQL's `lock_not_available`: `lock_timeout` ran out.
fn is_lock_timeout(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03"))
}

/// The maintainer's connection, parked between runs. Opening one per run would
/// cost PostgreSQL a backend start and an authentication every run, a burst
/// next to the requests' work; a replica that does not lead keeps its
/// connection too, to try again next run. Like the pool's connections, it is
/// replaced once older than `DB_CONN_MAX_LIFETIME`.
#[derive(Debug, Default)]
pub(crate) struct MaintenanceSession {
    parked: Mutex<Option<Parked>>,
}

#[derive(Debug)]
struct Parked {
    conn: PgConnection,
    opened: Instant,
}

impl MaintenanceSession {
    fn take(&self) -> Option<Parked> {
        self.parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn park(&self, parked: Parked) {
        *self.parked.lock().unwrap_or_else(PoisonError::into_inner) = Some(parked);
    }

    /// Closes the parked connection, if any (at shutdown).
    pub(crate) async fn close(&self) {
        if let Some(parked) = self.take() {
            let _ = parked.conn.close().await;
        }
    }
}

pub(crate) async fn lead(
    pool: &StorePool,
    session: &Arc<MaintenanceSession>,
) -> StoreResult<Option<Box<dyn MaintenanceLease>>> {
    let lifetime = pool.sqlx().options().get_max_lifetime();
    let pooled = pool.statements_in_transactions();
    let kept = match session.take() {
        None => None,
        Some(parked) if lifetime.is_some_and(|lifetime| parked.opened.elapsed() >= lifetime) => {
            tracing::debug!("audit maintenance connection reached its lifetime; opening a new one");
            let _ = parked.conn.close().await;
            None
        }
        Some(mut parked) => match try_lock(&mut parked.conn, pooled).await {
            Ok(leader) => Some((parked, leader)),
            // It went away (a database restart, a connection cut by the
            // network): a new one.
            Err(error) => {
                tracing::debug!(%error, "audit maintenance connection lost; opening a new one");
                None
            }
        },
    };
    let (parked, leader) = match kept {
        Some(kept) => kept,
        None => {
            let mut conn = connect(pool).await?;
            let opened = Instant::now();
            let leader = try_lock(&mut conn, pooled).await?;
            (Parked { conn, opened }, leader)
        }
    };
    if !leader {
        session.park(parked);
        return Ok(None);
    }
    Ok(Some(Box::new(PgLease {
        held: parked,
        session: Arc::clone(session),
        pool: pooled.then(|| pool.clone()),
    })))
}

/// The maintainer's `application_name`, so that `pg_stat_activity` tells its
/// connection from the request pool's (`settings::APPLICATION_NAME`).
pub const MAINTENANCE_APPLICATION_NAME: &str = "biometric-passkey-audit-maintenance";

/// A connection of its own rather than one taken from the pool: the pool keeps
/// its warm connections (a replacement would start with cold caches and
/// unprepared statements, in a request's path).
async fn connect(pool: &StorePool) -> StoreResult<PgConnection> {
    let options = (*pool.sqlx().connect_options())
        .clone()
        .application_name(MAINTENANCE_APPLICATION_NAME);
    let connect = PgConnection::connect_with(&options);
    tokio::time::timeout(crate::pool::ACQUIRE_TIMEOUT, connect)
        .await
        .map_err(|_| map_err(sqlx::Error::PoolTimedOut))?
        .map_err(map_err)
}

/// Takes the maintenance lock: on the session, or behind a pooler in
/// transaction mode, in a transaction left open while it is held (rolled
/// back at once when another maintainer holds it).
async fn try_lock(conn: &mut PgConnection, pooled: bool) -> StoreResult<bool> {
    if !pooled {
        return sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(MAINTENANCE_LOCK)
            .fetch_one(conn)
            .await
            .map_err(map_err);
    }
    conn.execute(crate::pool::POOLED_BEGIN)
        .await
        .map_err(map_err)?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(MAINTENANCE_LOCK)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    if !locked {
        conn.execute("ROLLBACK").await.map_err(map_err)?;
    }
    Ok(locked)
}

struct PgLease {
    held: Parked,
    session: Arc<MaintenanceSession>,
    /// Behind a pooler in transaction mode, where the lease's work runs.
    pool: Option<StorePool>,
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
        let months = partitions(work.conn()).await?;
        work.done().await?;
        Ok(months)
    }

    async fn months_outside_partitions(&mut self) -> StoreResult<Vec<Month>> {
        let mut work = self.work().await?;
        let months = months_outside_partitions(work.conn()).await?;
        work.done().await?;
        Ok(months)
    }

    async fn create_partition(&mut self, month: Month) -> StoreResult<u64> {
        let name = partition_name(month);
        let (from, to) = (literal(month.start()), literal(month.end()));
        let mut work = self.work().await?;
        let mut tx = work.conn().begin().await.map_err(map_err)?;
        for statement in [
            LOCK_TIMEOUT.to_owned(),
            // Holds off inserts into the default partition while its rows of
            // this month move, so none is left behind to block the attach.
            format!("LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE"),
            format!("CREATE TABLE {name} (LIKE audit_events INCLUDING CONSTRAINTS)"),
        ] {
            sqlx::query(&statement)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        let moved = sqlx::query(&format!(
            "WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE occurred_at >= $1 AND occurred_at < $2 \
             RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        ))
        .bind(month.start())
        .bind(month.end())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        sqlx::query(&format!(
            "ALTER TABLE audit_events ATTACH PARTITION {name} FOR VALUES FROM ({from}) TO ({to})"
        ))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        work.done().await?;
        Ok(moved)
    }

    async fn months_present(&mut self) -> StoreResult<Vec<Month>> {
        let mut work = self.work().await?;
        let months = months_present(work.conn()).await?;
        work.done().await?;
        Ok(months)
    }

    async fn count_month(&mut self, month: Month) -> StoreResult<i64> {
        let mut work = self.work().await?;
        let count = sqlx::query_scalar(
            "SELECT count(*) FROM audit_events WHERE occurred_at >= $1 AND occurred_at < $2",
        )
        .bind(month.start())
        .bind(month.end())
        .fetch_one(work.conn())
        .await
        .map_err(map_err)?;
        work.done().await?;
        Ok(count)
    }

    async fn archive_of(&mut self, month: Month) -> StoreResult<Option<ArchiveManifest>> {
        let mut work = self.work().await?;
        let archive = archive_of(work.conn(), month).await?;
        work.done().await?;
        Ok(archive)
    }

    async fn drop_month(&mut self, month: Month) -> StoreResult<()> {
        let mut work = self.work().await?;
        let mut tx = work.conn().begin().await.map_err(map_err)?;
        sqlx::query(LOCK_TIMEOUT)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(&format!("DROP TABLE IF EXISTS {}", partition_name(month)))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        // Rows of the month that never had a partition.
        sqlx::query("DELETE FROM audit_events WHERE occurred_at >= $1 AND occurred_at < $2")
            .bind(month.start())
            .bind(month.end())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        work.done().await
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
            HORIZON_LOCK_WAIT.as_millis()
        );
        for attempt in 1..=HORIZON_ATTEMPTS {
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
                Err(e) if is_lock_timeout(&e) => {
                    if attempt < HORIZON_ATTEMPTS {
                        tokio::time::sleep(HORIZON_RETRY_PAUSE).await;
                    }
                }
                Err(e) => return Err(map_err(e)),
            }
        }
        Ok(None)
    }

    async fn seal_head(&mut self) -> StoreResult<Option<SealHead>> {
        let mut work = self.work().await?;
        let row = sqlx::query(
            "SELECT seal_no, to_seq, mac FROM audit_seals ORDER BY seal_no DESC LIMIT 1",
        )
        .fetch_optional(work.conn())
        .await
        .map_err(map_err)?;
        work.done().await?;
        row.map(|row| {
            Ok(SealHead {
                seal_no: row.try_get("seal_no").map_err(map_err)?,
                to_seq: row.try_get("to_seq").map_err(map_err)?,
                mac: mac(row.try_get("mac").map_err(map_err)?, "audit_seals.mac")?,
            })
        })
        .transpose()
    }

    async fn events_between(
        &mut self,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        let mut work = self.work().await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
        ))
        .bind(after)
        .bind(upto)
        .bind(i64::from(limit))
        .fetch_all(work.conn())
        .await
        .map_err(map_err)?;
        work.done().await?;
        rows.iter().map(to_event).collect()
    }

    async fn count_after(&mut self, after: i64) -> StoreResult<u64> {
        let mut work = self.work().await?;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE seq > $1")
            .bind(after)
            .fetch_one(work.conn())
            .await
            .map_err(map_err)?;
        work.done().await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn insert_seals(&mut self, seals: &[Seal]) -> StoreResult<()> {
        let mut work = self.work().await?;
        let mut tx = work.conn().begin().await.map_err(map_err)?;
        for seal in seals {
            let h = &seal.header;
            sqlx::query(
                "INSERT INTO audit_seals (seal_no, month, from_seq, to_seq, event_count, entries, \
                 key_id, prev_mac, mac, sealed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(h.seal_no)
            .bind(h.month.start().date())
            .bind(h.from_seq)
            .bind(h.to_seq)
            .bind(h.event_count)
            .bind(seal.encode_entries())
            .bind(&h.key_id)
            .bind(h.prev_mac.map(|m| m.to_vec()))
            .bind(h.mac.to_vec())
            .bind(h.sealed_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        work.done().await
    }

    async fn replace_seals(&mut self, seals: &[Seal]) -> StoreResult<()> {
        let mut work = self.work().await?;
        let mut tx = work.conn().begin().await.map_err(map_err)?;
        for seal in seals {
            let h = &seal.header;
            let replaced = sqlx::query(
                "UPDATE audit_seals SET entries = $1, key_id = $2, prev_mac = $3, mac = $4 \
                 WHERE seal_no = $5",
            )
            .bind(seal.encode_entries())
            .bind(&h.key_id)
            .bind(h.prev_mac.map(|m| m.to_vec()))
            .bind(h.mac.to_vec())
            .bind(h.seal_no)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            if replaced.rows_affected() != 1 {
                return Err(StoreError::NotFound);
            }
        }
        tx.commit().await.map_err(map_err)?;
        work.done().await
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

fn mac(bytes: Vec<u8>, column: &str) -> StoreResult<[u8; 32]> {
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Corrupt(format!("{column}: expected 32 bytes")))
}

const SEAL_COLUMNS: &str =
    "seal_no, month, from_seq, to_seq, event_count, entries, key_id, prev_mac, mac, sealed_at";

fn to_seal(row: &PgRow) -> StoreResult<Seal> {
    let entries: Vec<u8> = row.try_get("entries").map_err(map_err)?;
    Ok(Seal {
        header: SealHeader {
            seal_no: row.try_get("seal_no").map_err(map_err)?,
            month: month_of_date(row.try_get("month").map_err(map_err)?, "audit_seals.month")?,
            from_seq: row.try_get("from_seq").map_err(map_err)?,
            to_seq: row.try_get("to_seq").map_err(map_err)?,
            event_count: row.try_get("event_count").map_err(map_err)?,
            key_id: row.try_get("key_id").map_err(map_err)?,
            prev_mac: row
                .try_get::<Option<Vec<u8>>, _>("prev_mac")
                .map_err(map_err)?
                .map(|m| mac(m, "audit_seals.prev_mac"))
                .transpose()?,
            mac: mac(row.try_get("mac").map_err(map_err)?, "audit_seals.mac")?,
            sealed_at: row.try_get("sealed_at").map_err(map_err)?,
        },
        entries: Seal::decode_entries(&entries)
            .map_err(|e| StoreError::Corrupt(format!("audit_seals.entries: {e}")))?,
    })
}

pub(crate) async fn seals(pool: &StorePool, after: i64, limit: u32) -> StoreResult<Vec<Seal>> {
    let rows = sqlx::query(&format!(
        "SELECT {SEAL_COLUMNS} FROM audit_seals WHERE seal_no > $1 ORDER BY seal_no LIMIT $2"
    ))
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    rows.iter().map(to_seal).collect()
}

pub(crate) async fn seals_of_month(pool: &StorePool, month: Month) -> StoreResult<Vec<Seal>> {
    let rows = sqlx::query(&format!(
        "SELECT {SEAL_COLUMNS} FROM audit_seals WHERE month = $1 ORDER BY seal_no"
    ))
    .bind(month.start().date())
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    rows.iter().map(to_seal).collect()
}

pub(crate) async fn events_of_month(
    pool: &StorePool,
    month: Month,
    after: i64,
    limit: u32,
) -> StoreResult<Vec<AuditEvent>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_events WHERE occurred_at >= $1 AND occurred_at < $2 \
         AND seq > $3 ORDER BY seq LIMIT $4"
    ))
    .bind(month.start())
    .bind(month.end())
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    rows.iter().map(to_event).collect()
}

async fn partitions(conn: &mut PgConnection) -> StoreResult<Vec<Month>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'audit_events'::regclass ORDER BY 1",
    )
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    Ok(names.iter().filter_map(|n| partition_month(n)).collect())
}

async fn months_outside_partitions(conn: &mut PgConnection) -> StoreResult<Vec<Month>> {
    let months: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT DISTINCT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM') FROM {DEFAULT_PARTITION}"
    ))
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    months
        .iter()
        .map(|m| {
            m.parse()
                .map_err(|e| StoreError::Corrupt(format!("audit_events.occurred_at: {e}")))
        })
        .collect()
}

async fn months_present(conn: &mut PgConnection) -> StoreResult<Vec<Month>> {
    let mut months = partitions(conn).await?;
    months.extend(months_outside_partitions(conn).await?);
    months.sort();
    months.dedup();
    Ok(months)
}

pub(crate) async fn months(pool: &StorePool) -> StoreResult<Vec<Month>> {
    // Two statements read as one: in a transaction, also behind a pooler.
    let mut tx = pool.begin().await.map_err(map_err)?;
    let months = months_present(&mut tx).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(months)
}

const ARCHIVE_COLUMNS: &str = "month, row_count, first_occurred_at, last_occurred_at, sha256, \
     file_name, archived_at, archived_by";

fn to_archive(row: &PgRow) -> StoreResult<ArchiveManifest> {
    Ok(ArchiveManifest {
        month: month_of_date(
            row.try_get("month").map_err(map_err)?,
            "audit_archives.month",
        )?,
        row_count: row.try_get("row_count").map_err(map_err)?,
        first_occurred_at: row.try_get("first_occurred_at").map_err(map_err)?,
        last_occurred_at: row.try_get("last_occurred_at").map_err(map_err)?,
        sha256: row.try_get("sha256").map_err(map_err)?,
        file_name: row.try_get("file_name").map_err(map_err)?,
        archived_at: row.try_get("archived_at").map_err(map_err)?,
        archived_by: row.try_get("archived_by").map_err(map_err)?,
    })
}

async fn archive_of(conn: &mut PgConnection, month: Month) -> StoreResult<Option<ArchiveManifest>> {
    let row = sqlx::query(&format!(
        "SELECT {ARCHIVE_COLUMNS} FROM audit_archives WHERE month = $1"
    ))
    .bind(month.start().date())
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    row.as_ref().map(to_archive).transpose()
}

pub(crate) async fn record_archive(
    pool: &StorePool,
    m: &ArchiveManifest,
) -> StoreResult<ArchiveRecorded> {
    let mut conn = pool.begin().await.map_err(map_err)?;
    let inserted = sqlx::query(
        "INSERT INTO audit_archives (month, row_count, first_occurred_at, last_occurred_at, sha256, \
         file_name, archived_at, archived_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (month) DO NOTHING",
    )
    .bind(m.month.start().date())
    .bind(m.row_count)
    .bind(m.first_occurred_at)
    .bind(m.last_occurred_at)
    .bind(&m.sha256)
    .bind(&m.file_name)
    .bind(m.archived_at)
    .bind(&m.archived_by)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?
    .rows_affected();
    if inserted == 1 {
        conn.commit().await.map_err(map_err)?;
        return Ok(ArchiveRecorded::New);
    }
    let existing = archive_of(&mut conn, m.month)
        .await?
        .ok_or(StoreError::NotFound)?;
    conn.commit().await.map_err(map_err)?;
    Ok(domain::audit::trail::compare_archives(existing, m))
}

pub(crate) async fn archives(pool: &StorePool) -> StoreResult<Vec<ArchiveManifest>> {
    let rows = sqlx::query(&format!(
        "SELECT {ARCHIVE_COLUMNS} FROM audit_archives ORDER BY month"
    ))
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    rows.iter().map(to_archive).collect()
}
