//! The `users` table.

use domain::{ExternalUserId, Pseudonym, StoreError, StoreResult, User, UserId};
use sqlx::postgres::{PgExecutor, PgRow};
use sqlx::{PgConnection, Row};

use crate::StorePool;

use crate::errors::map_err;

pub(crate) const COLUMNS: &str = "id, external_id, pseudonym, idv_applicant_sealed, created_at";

pub(crate) async fn insert(conn: &mut PgConnection, user: &User) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (id, external_id, pseudonym, idv_applicant_sealed, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user.id.0)
    .bind(user.external_id.as_str())
    .bind(user.pseudonym.as_str())
    .bind(user.idv_applicant_sealed.as_deref())
    .bind(user.created_at)
    .execute(conn)
    .await
    .map(drop)
    .map_err(map_err)
}

pub(crate) async fn by_external_id(
    db: impl PgExecutor<'_>,
    external_id: &ExternalUserId,
) -> StoreResult<User> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM users WHERE external_id = $1"
    ))
    .bind(external_id.as_str())
    .fetch_one(db)
    .await
    .map_err(map_err)?;
    to_user(&row)
}

pub(crate) async fn by_id(db: impl PgExecutor<'_>, id: UserId) -> StoreResult<User> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id.0)
        .fetch_one(db)
        .await
        .map_err(map_err)?;
    to_user(&row)
}

pub(crate) async fn set_applicant(
    conn: &mut PgConnection,
    id: UserId,
    sealed: &[u8],
) -> StoreResult<()> {
    sqlx::query("UPDATE users SET idv_applicant_sealed = $2 WHERE id = $1")
        .bind(id.0)
        .bind(sealed)
        .execute(conn)
        .await
        .map(drop)
        .map_err(map_err)
}

/// Whether it was written: not when the user has an applicant already (or
/// no longer exists).
pub(crate) async fn set_applicant_if_absent(
    db: impl PgExecutor<'_>,
    id: UserId,
    sealed: &[u8],
) -> StoreResult<bool> {
    sqlx::query(
        "UPDATE users SET idv_applicant_sealed = $2 WHERE id = $1 AND idv_applicant_sealed IS NULL",
    )
    .bind(id.0)
    .bind(sealed)
    .execute(db)
    .await
    .map(|done| done.rows_affected() == 1)
    .map_err(map_err)
}

/// Locks the user's row until the transaction ends: changes that read or
/// write all of a user's credentials or flows at once take it first.
pub(crate) async fn lock(conn: &mut PgConnection, id: UserId) -> StoreResult<()> {
    sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
        .bind(id.0)
        .fetch_one(conn)
        .await
        .map(drop)
        .map_err(map_err)
}

/// Whether it was written: not when the user's applicant is no longer
/// `current` (or the user no longer exists).
pub(crate) async fn replace_applicant(
    db: impl PgExecutor<'_>,
    id: UserId,
    current: &[u8],
    replacement: &[u8],
) -> StoreResult<bool> {
    sqlx::query(
        "UPDATE users SET idv_applicant_sealed = $3 WHERE id = $1 AND idv_applicant_sealed = $2",
    )
    .bind(id.0)
    .bind(current)
    .bind(replacement)
    .execute(db)
    .await
    .map(|done| done.rows_affected() == 1)
    .map_err(map_err)
}

pub(crate) async fn delete(
    conn: &mut PgConnection,
    id: UserId,
    at: time::OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO provider_cleanups (user_id, customer_user_id, applicant_sealed, requested_at) \
         SELECT id, pseudonym, idv_applicant_sealed, $2 FROM users WHERE id = $1 \
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(id.0)
    .bind(at)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    // Stored responses about the user (their flows, with SDK tokens) go with them.
    sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1")
        .bind(id.0)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id.0)
        .execute(conn)
        .await
        .map_err(map_err)?;
    if deleted.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) fn to_user(row: &PgRow) -> StoreResult<User> {
    let external_id: String = row.try_get("external_id").map_err(map_err)?;
    Ok(User {
        id: UserId(row.try_get("id").map_err(map_err)?),
        external_id: ExternalUserId::parse(&external_id)
            .map_err(|e| StoreError::Corrupt(format!("users.external_id: {e}")))?,
        pseudonym: Pseudonym::from_stored(row.try_get("pseudonym").map_err(map_err)?),
        idv_applicant_sealed: row.try_get("idv_applicant_sealed").map_err(map_err)?,
        created_at: row.try_get("created_at").map_err(map_err)?,
    })
}

pub(crate) async fn search(
    pool: &StorePool,
    q: &domain::UserQuery,
) -> StoreResult<domain::Page<User, domain::UserCursor>> {
    let mut sql = sqlx::QueryBuilder::new(format!("SELECT {COLUMNS} FROM users WHERE TRUE"));
    if let Some(prefix) = &q.prefix {
        // `_` is a LIKE wildcard and may appear in identifiers: escape it. With
        // COLLATE "C" a prefix LIKE is a range scan of the unique index.
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        sql.push(" AND external_id LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\'");
    }
    if let Some(status) = q.credential_status {
        sql.push(
            " AND EXISTS (SELECT 1 FROM credentials c WHERE c.user_id = users.id AND c.status = ",
        )
        .push_bind(status.as_str())
        .push(")");
    }
    match &q.after {
        Some(domain::UserCursor::ExternalId(id)) => {
            sql.push(" AND external_id > ").push_bind(id.clone());
        }
        Some(domain::UserCursor::Created(t, id)) => {
            let t = *t;
            sql.push(" AND (created_at, external_id) > (")
                .push_bind(t)
                .push(", ")
                .push_bind(id.clone())
                .push(")");
        }
        None => {}
    }
    if let Some(from) = q.created_from {
        sql.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(before) = q.created_before {
        sql.push(" AND created_at < ").push_bind(before);
    }
    let order = if q.by_creation() {
        "created_at, external_id"
    } else {
        "external_id"
    };
    sql.push(format!(" ORDER BY {order} LIMIT "))
        .push_bind(i64::from(q.limit) + 1);
    let rows = sql.build().fetch_all(pool).await.map_err(map_err)?;
    let items = rows.iter().map(to_user).collect::<StoreResult<Vec<_>>>()?;
    Ok(domain::Page::from_overfetch(items, q.limit, |u| {
        q.cursor_after(u)
    }))
}

const CLEANUP_COLUMNS: &str = "user_id, customer_user_id, applicant_sealed, requested_at, attempts, \
     last_attempt_at, next_attempt_at, dead_at";

type CleanupRow = (
    uuid::Uuid,
    String,
    Option<Vec<u8>>,
    time::OffsetDateTime,
    i32,
    Option<time::OffsetDateTime>,
    Option<time::OffsetDateTime>,
    Option<time::OffsetDateTime>,
);

fn to_cleanup(row: CleanupRow) -> domain::store::ProviderCleanup {
    let (user_id, pseudonym, applicant_sealed, requested_at, attempts, last, next, dead) = row;
    domain::store::ProviderCleanup {
        user_id: UserId(user_id),
        customer_user_id: Pseudonym::from_stored(pseudonym),
        applicant_sealed,
        requested_at,
        attempts: u32::try_from(attempts).unwrap_or(0),
        last_attempt_at: last,
        next_attempt_at: next,
        dead_at: dead,
    }
}

pub(crate) async fn pending_cleanups(
    pool: &StorePool,
    limit: u32,
) -> StoreResult<Vec<domain::store::ProviderCleanup>> {
    let rows: Vec<CleanupRow> = sqlx::query_as(&format!(
        "SELECT {CLEANUP_COLUMNS} FROM provider_cleanups ORDER BY requested_at, user_id LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    Ok(rows.into_iter().map(to_cleanup).collect())
}

pub(crate) async fn due_cleanups(
    pool: &StorePool,
    now: time::OffsetDateTime,
    limit: u32,
) -> StoreResult<Vec<domain::store::ProviderCleanup>> {
    let rows: Vec<CleanupRow> = sqlx::query_as(&format!(
        "SELECT {CLEANUP_COLUMNS} FROM provider_cleanups \
         WHERE dead_at IS NULL AND COALESCE(next_attempt_at, requested_at) <= $1 \
         ORDER BY COALESCE(next_attempt_at, requested_at), user_id LIMIT $2"
    ))
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    Ok(rows.into_iter().map(to_cleanup).collect())
}

pub(crate) async fn cleanup_counts(
    pool: &StorePool,
) -> StoreResult<domain::store::ProviderCleanupCounts> {
    let (pending, retrying, dead): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE dead_at IS NULL), \
         count(*) FILTER (WHERE dead_at IS NULL AND attempts > 0), \
         count(*) FILTER (WHERE dead_at IS NOT NULL) \
         FROM provider_cleanups",
    )
    .fetch_one(pool)
    .await
    .map_err(map_err)?;
    let count = |n: i64| u64::try_from(n).unwrap_or_default();
    Ok(domain::store::ProviderCleanupCounts {
        pending: count(pending),
        retrying: count(retrying),
        dead: count(dead),
    })
}

pub(crate) async fn finish_cleanup(pool: &StorePool, user_id: UserId) -> StoreResult<()> {
    sqlx::query("DELETE FROM provider_cleanups WHERE user_id = $1")
        .bind(user_id.0)
        .execute(pool)
        .await
        .map(drop)
        .map_err(map_err)
}

pub(crate) async fn fail_cleanup(
    pool: &StorePool,
    user_id: UserId,
    at: time::OffsetDateTime,
    retry_at: Option<time::OffsetDateTime>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE provider_cleanups SET attempts = attempts + 1, last_attempt_at = $2, \
         next_attempt_at = $3, dead_at = $4 WHERE user_id = $1",
    )
    .bind(user_id.0)
    .bind(at)
    .bind(retry_at)
    .bind(retry_at.is_none().then_some(at))
    .execute(pool)
    .await
    .map(drop)
    .map_err(map_err)
}
