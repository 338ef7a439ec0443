//! The archive manifests: one per month archived before retention drops it.

use domain::audit::month::Month;
use domain::audit::trail::{ArchiveManifest, ArchiveRecorded};
use domain::{StoreError, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::partitions::month_of_date;
use crate::StorePool;
use crate::errors::map_err;

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

pub(super) async fn archive_of(
    conn: &mut PgConnection,
    month: Month,
) -> StoreResult<Option<ArchiveManifest>> {
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
