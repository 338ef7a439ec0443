//! The `users` table.

use domain::{ExternalUserId, Pseudonym, StoreError, StoreResult, User, UserId};
use sqlx::PgConnection;
use sqlx::postgres::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;

pub(crate) async fn insert(conn: &mut PgConnection, user: &User) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO users (id, external_id, pseudonym, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(user.id.0)
    .bind(user.external_id.as_str())
    .bind(user.pseudonym.as_str())
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
    let row: (Uuid, String, String, OffsetDateTime) = sqlx::query_as(
        "SELECT id, external_id, pseudonym, created_at FROM users WHERE external_id = $1",
    )
    .bind(external_id.as_str())
    .fetch_one(db)
    .await
    .map_err(map_err)?;
    to_user(row)
}

pub(crate) async fn delete(conn: &mut PgConnection, id: UserId) -> StoreResult<()> {
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

fn to_user(
    (id, external_id, pseudonym, created_at): (Uuid, String, String, OffsetDateTime),
) -> StoreResult<User> {
    Ok(User {
        id: UserId(id),
        external_id: ExternalUserId::parse(&external_id)
            .map_err(|e| StoreError::Corrupt(format!("users.external_id: {e}")))?,
        pseudonym: Pseudonym::from_stored(pseudonym),
        created_at,
    })
}
