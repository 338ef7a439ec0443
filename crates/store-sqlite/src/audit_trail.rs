//! Audit maintenance on SQLite: one table, so retention deletes a month's rows
//! where PostgreSQL drops its partition; seals and archive manifests as there.
//!
//! The lease is the database's write lock (`BEGIN IMMEDIATE`): a second
//! maintainer waits for the first and then finds nothing left to do.

use crate::StorePool;
use async_trait::async_trait;
use domain::audit::integrity::{Seal, SealHead, SealHeader};
use domain::audit::month::Month;
use domain::audit::trail::{ArchiveManifest, ArchiveRecorded, MaintenanceLease};
use domain::{AuditEvent, StoreError, StoreResult};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};

use crate::audit::to_event;
use crate::codec::{from_micros, opt_from_micros, opt_micros, to_micros};
use crate::errors::map_err;

const COLUMNS: &str = "seq, id, occurred_at, event_type, actor_kind, actor_id, user_id, \
     user_pseudonym, credential_id, flow_id, outcome, reason, correlation_id, details";

pub(crate) struct SqliteLease {
    tx: Transaction<'static, Sqlite>,
}

impl SqliteLease {
    pub(crate) fn new(tx: Transaction<'static, Sqlite>) -> Self {
        Self { tx }
    }
}

fn parse_month(raw: &str, column: &str) -> StoreResult<Month> {
    raw.parse()
        .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

#[async_trait]
impl MaintenanceLease for SqliteLease {
    fn partitioned(&self) -> bool {
        false
    }

    async fn partitions(&mut self) -> StoreResult<Vec<Month>> {
        Ok(Vec::new())
    }

    async fn months_outside_partitions(&mut self) -> StoreResult<Vec<Month>> {
        Ok(Vec::new())
    }

    async fn create_partition(&mut self, _month: Month) -> StoreResult<u64> {
        Ok(0)
    }

    async fn months_present(&mut self) -> StoreResult<Vec<Month>> {
        months(&mut self.tx).await
    }

    async fn count_month(&mut self, month: Month) -> StoreResult<i64> {
        sqlx::query_scalar(
            "SELECT count(*) FROM audit_events WHERE occurred_at >= ? AND occurred_at < ?",
        )
        .bind(to_micros(month.start()))
        .bind(to_micros(month.end()))
        .fetch_one(&mut *self.tx)
        .await
        .map_err(map_err)
    }

    async fn archive_of(&mut self, month: Month) -> StoreResult<Option<ArchiveManifest>> {
        archive_of(&mut self.tx, month).await
    }

    async fn drop_month(&mut self, month: Month) -> StoreResult<()> {
        sqlx::query("DELETE FROM audit_events WHERE occurred_at >= ? AND occurred_at < ?")
            .bind(to_micros(month.start()))
            .bind(to_micros(month.end()))
            .execute(&mut *self.tx)
            .await
            .map(drop)
            .map_err(map_err)
    }

    async fn seal_horizon(&mut self) -> StoreResult<Option<i64>> {
        // Under the write lock every earlier writer has committed.
        sqlx::query_scalar("SELECT COALESCE(max(seq), 0) FROM audit_events")
            .fetch_one(&mut *self.tx)
            .await
            .map(Some)
            .map_err(map_err)
    }

    async fn seal_head(&mut self) -> StoreResult<Option<SealHead>> {
        let row = sqlx::query(
            "SELECT seal_no, to_seq, mac FROM audit_seals ORDER BY seal_no DESC LIMIT 1",
        )
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(map_err)?;
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
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
        ))
        .bind(after)
        .bind(upto)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        rows.iter().map(to_event).collect()
    }

    async fn count_after(&mut self, after: i64) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE seq > ?")
            .bind(after)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(map_err)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn insert_seals(&mut self, seals: &[Seal]) -> StoreResult<()> {
        for seal in seals {
            let h = &seal.header;
            sqlx::query(
                "INSERT INTO audit_seals (seal_no, month, from_seq, to_seq, event_count, entries, \
                 key_id, prev_mac, mac, sealed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(h.seal_no)
            .bind(h.month.to_string())
            .bind(h.from_seq)
            .bind(h.to_seq)
            .bind(h.event_count)
            .bind(seal.encode_entries())
            .bind(&h.key_id)
            .bind(h.prev_mac.map(|m| m.to_vec()))
            .bind(h.mac.to_vec())
            .bind(to_micros(h.sealed_at))
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        }
        Ok(())
    }

    async fn replace_seals(&mut self, seals: &[Seal]) -> StoreResult<()> {
        for seal in seals {
            let h = &seal.header;
            let replaced = sqlx::query(
                "UPDATE audit_seals SET entries = ?, key_id = ?, prev_mac = ?, mac = ? \
                 WHERE seal_no = ?",
            )
            .bind(seal.encode_entries())
            .bind(&h.key_id)
            .bind(h.prev_mac.map(|m| m.to_vec()))
            .bind(h.mac.to_vec())
            .bind(h.seal_no)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
            if replaced.rows_affected() != 1 {
                return Err(StoreError::NotFound);
            }
        }
        Ok(())
    }

    async fn release(self: Box<Self>) -> StoreResult<()> {
        self.tx.commit().await.map_err(map_err)
    }
}

async fn months(conn: &mut SqliteConnection) -> StoreResult<Vec<Month>> {
    let months: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT strftime('%Y-%m', occurred_at / 1000000, 'unixepoch') AS month \
         FROM audit_events ORDER BY month",
    )
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    months
        .iter()
        .map(|m| parse_month(m, "audit_events.occurred_at"))
        .collect()
}

pub(crate) async fn all_months(pool: &StorePool) -> StoreResult<Vec<Month>> {
    let mut conn = pool.acquire().await.map_err(map_err)?;
    months(&mut conn).await
}

fn mac(bytes: Vec<u8>, column: &str) -> StoreResult<[u8; 32]> {
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Corrupt(format!("{column}: expected 32 bytes")))
}

const SEAL_COLUMNS: &str =
    "seal_no, month, from_seq, to_seq, event_count, entries, key_id, prev_mac, mac, sealed_at";

fn to_seal(row: &SqliteRow) -> StoreResult<Seal> {
    let entries: Vec<u8> = row.try_get("entries").map_err(map_err)?;
    let month: String = row.try_get("month").map_err(map_err)?;
    Ok(Seal {
        header: SealHeader {
            seal_no: row.try_get("seal_no").map_err(map_err)?,
            month: parse_month(&month, "audit_seals.month")?,
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
            sealed_at: from_micros(
                row.try_get("sealed_at").map_err(map_err)?,
                "audit_seals.sealed_at",
            )?,
        },
        entries: Seal::decode_entries(&entries)
            .map_err(|e| StoreError::Corrupt(format!("audit_seals.entries: {e}")))?,
    })
}

pub(crate) async fn seals(pool: &StorePool, after: i64, limit: u32) -> StoreResult<Vec<Seal>> {
    let rows = sqlx::query(&format!(
        "SELECT {SEAL_COLUMNS} FROM audit_seals WHERE seal_no > ? ORDER BY seal_no LIMIT ?"
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
        "SELECT {SEAL_COLUMNS} FROM audit_seals WHERE month = ? ORDER BY seal_no"
    ))
    .bind(month.to_string())
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
        "SELECT {COLUMNS} FROM audit_events WHERE occurred_at >= ? AND occurred_at < ? \
         AND seq > ? ORDER BY seq LIMIT ?"
    ))
    .bind(to_micros(month.start()))
    .bind(to_micros(month.end()))
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    rows.iter().map(to_event).collect()
}

const ARCHIVE_COLUMNS: &str = "month, row_count, first_occurred_at, last_occurred_at, sha256, \
     file_name, archived_at, archived_by";

fn to_archive(row: &SqliteRow) -> StoreResult<ArchiveManifest> {
    let month: String = row.try_get("month").map_err(map_err)?;
    Ok(ArchiveManifest {
        month: parse_month(&month, "audit_archives.month")?,
        row_count: row.try_get("row_count").map_err(map_err)?,
        first_occurred_at: opt_from_micros(
            row.try_get("first_occurred_at").map_err(map_err)?,
            "audit_archives.first_occurred_at",
        )?,
        last_occurred_at: opt_from_micros(
            row.try_get("last_occurred_at").map_err(map_err)?,
            "audit_archives.last_occurred_at",
        )?,
        sha256: row.try_get("sha256").map_err(map_err)?,
        file_name: row.try_get("file_name").map_err(map_err)?,
        archived_at: from_micros(
            row.try_get("archived_at").map_err(map_err)?,
            "audit_archives.archived_at",
        )?,
        archived_by: row.try_get("archived_by").map_err(map_err)?,
    })
}

async fn archive_of(
    conn: &mut SqliteConnection,
    month: Month,
) -> StoreResult<Option<ArchiveManifest>> {
    let row = sqlx::query(&format!(
        "SELECT {ARCHIVE_COLUMNS} FROM audit_archives WHERE month = ?"
    ))
    .bind(month.to_string())
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    row.as_ref().map(to_archive).transpose()
}

pub(crate) async fn record_archive(
    mut tx: Transaction<'static, Sqlite>,
    m: &ArchiveManifest,
) -> StoreResult<ArchiveRecorded> {
    if let Some(existing) = archive_of(&mut tx, m.month).await? {
        return Ok(domain::audit::trail::compare_archives(existing, m));
    }
    sqlx::query(
        "INSERT INTO audit_archives (month, row_count, first_occurred_at, last_occurred_at, sha256, \
         file_name, archived_at, archived_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(m.month.to_string())
    .bind(m.row_count)
    .bind(opt_micros(m.first_occurred_at))
    .bind(opt_micros(m.last_occurred_at))
    .bind(&m.sha256)
    .bind(&m.file_name)
    .bind(to_micros(m.archived_at))
    .bind(&m.archived_by)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    Ok(ArchiveRecorded::New)
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
