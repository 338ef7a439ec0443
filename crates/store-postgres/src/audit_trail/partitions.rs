//! The trail's monthly partitions: which exist, which months hold events,
//! creating one (moving its rows out of the default partition) and dropping
//! one.

use domain::audit::month::Month;
use domain::{StoreError, StoreResult};
use sqlx::{Connection, PgConnection};
use time::{Date, OffsetDateTime};

use crate::StorePool;
use crate::errors::map_err;

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

pub(super) fn month_of_date(date: Date, column: &str) -> StoreResult<Month> {
    Month::new(date.year(), u8::from(date.month()))
        .filter(|_| date.day() == 1)
        .ok_or_else(|| StoreError::Corrupt(format!("{column}: {date} is not a month")))
}

/// Creates `month`'s partition and moves its rows out of the default
/// partition into it; how many rows moved.
pub(super) async fn create(conn: &mut PgConnection, month: Month) -> StoreResult<u64> {
    let name = partition_name(month);
    let (from, to) = (literal(month.start()), literal(month.end()));
    let mut tx = conn.begin().await.map_err(map_err)?;
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
    Ok(moved)
}

/// Drops `month`'s partition, and deletes the month's rows that never had one.
pub(super) async fn drop_month(conn: &mut PgConnection, month: Month) -> StoreResult<()> {
    let mut tx = conn.begin().await.map_err(map_err)?;
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
    tx.commit().await.map_err(map_err)
}

/// How many events `month` holds.
pub(super) async fn count_month(conn: &mut PgConnection, month: Month) -> StoreResult<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE occurred_at >= $1 AND occurred_at < $2",
    )
    .bind(month.start())
    .bind(month.end())
    .fetch_one(conn)
    .await
    .map_err(map_err)
}

pub(super) async fn partitions(conn: &mut PgConnection) -> StoreResult<Vec<Month>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'audit_events'::regclass ORDER BY 1",
    )
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    Ok(names.iter().filter_map(|n| partition_month(n)).collect())
}

pub(super) async fn months_outside_partitions(conn: &mut PgConnection) -> StoreResult<Vec<Month>> {
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

pub(super) async fn months_present(conn: &mut PgConnection) -> StoreResult<Vec<Month>> {
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
