//! The `users` table.

use domain::{ExternalUserId, Pseudonym, StoreError, StoreResult, User, UserId};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteExecutor;

use crate::codec::{from_micros, to_micros, uuid_from};
use crate::errors::map_err;

pub(crate) async fn insert(conn: &mut SqliteConnection, user: &User) -> StoreResult<()> {
    sqlx::query("INSERT INTO users (id, external_id, pseudonym, created_at) VALUES (?, ?, ?, ?)")
        .bind(user.id.0.as_bytes().as_slice())
        .bind(user.external_id.as_str())
        .bind(user.pseudonym.as_str())
        .bind(to_micros(user.created_at))
        .execute(conn)
        .await
        .map(drop)
        .map_err(map_err)
}

pub(crate) async fn by_external_id(
    db: impl SqliteExecutor<'_>,
    external_id: &ExternalUserId,
) -> StoreResult<User> {
    let (id, external_id, pseudonym, created_at): (Vec<u8>, String, String, i64) = sqlx::query_as(
        "SELECT id, external_id, pseudonym, created_at FROM users WHERE external_id = ?",
    )
    .bind(external_id.as_str())
    .fetch_one(db)
    .await
    .map_err(map_err)?;
    Ok(User {
        id: UserId(uuid_from(&id, "users.id")?),
        external_id: ExternalUserId::parse(&external_id)
            .map_err(|e| StoreError::Corrupt(format!("users.external_id: {e}")))?,
        pseudonym: Pseudonym::from_stored(pseudonym),
        created_at: from_micros(created_at, "users.created_at")?,
    })
}

pub(crate) async fn delete(conn: &mut SqliteConnection, id: UserId) -> StoreResult<()> {
    let deleted = sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(id.0.as_bytes().as_slice())
        .execute(conn)
        .await
        .map_err(map_err)?;
    if deleted.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
