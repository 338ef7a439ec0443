//! The audit seals: the horizon below which events are sealed, the seal
//! head, reading, inserting and replacing seals, and the events they cover.

use std::time::Duration;

use domain::audit::integrity::{Seal, SealHead, SealHeader};
use domain::audit::month::Month;
use domain::{AuditEvent, StoreError, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, Row};

use super::partitions::month_of_date;
use crate::StorePool;
use crate::audit::{COLUMNS, to_event};
use crate::errors::map_err;

/// How long the sealer's `SHARE` lock may wait, and so hold up writers, per
/// attempt; attempts, and the pause between them, before sealing waits for the
/// next maintenance run.
pub(super) const HORIZON_LOCK_WAIT: Duration = Duration::from_millis(20);
pub(super) const HORIZON_ATTEMPTS: u32 = 5;
pub(super) const HORIZON_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// PostgreSQL's `lock_not_available`: `lock_timeout` ran out.
pub(super) fn is_lock_timeout(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03"))
}

/// The seal head: the last seal's number, position and MAC.
pub(super) async fn head(conn: &mut PgConnection) -> StoreResult<Option<SealHead>> {
    let row =
        sqlx::query("SELECT seal_no, to_seq, mac FROM audit_seals ORDER BY seal_no DESC LIMIT 1")
            .fetch_optional(conn)
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

/// Events at positions `after < seq <= upto`, in order, at most `limit`.
pub(super) async fn events_between(
    conn: &mut PgConnection,
    after: i64,
    upto: i64,
    limit: u32,
) -> StoreResult<Vec<AuditEvent>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
    ))
    .bind(after)
    .bind(upto)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    rows.iter().map(to_event).collect()
}

/// How many events are at positions after `after`.
pub(super) async fn count_after(conn: &mut PgConnection, after: i64) -> StoreResult<u64> {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE seq > $1")
        .bind(after)
        .fetch_one(conn)
        .await
        .map_err(map_err)?;
    Ok(u64::try_from(count).unwrap_or_default())
}

/// Inserts new seals, in one transaction.
pub(super) async fn insert(conn: &mut PgConnection, seals: &[Seal]) -> StoreResult<()> {
    let mut tx = conn.begin().await.map_err(map_err)?;
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
    tx.commit().await.map_err(map_err)
}

/// Replaces stored seals (re-keyed), in one transaction; `NotFound` when one
/// of them is not stored.
pub(super) async fn replace(conn: &mut PgConnection, seals: &[Seal]) -> StoreResult<()> {
    let mut tx = conn.begin().await.map_err(map_err)?;
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
    tx.commit().await.map_err(map_err)
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
