//! The `idempotency_keys` and `provider_events` tables.

use crate::StorePool;
use domain::store::{IdempotencyBegin, StoredResponse};
use domain::{StoreResult, UserId};
use sqlx::SqliteConnection;
use time::OffsetDateTime;

use crate::codec::to_micros;
use crate::errors::map_err;

pub(crate) async fn begin(
    pool: &StorePool,
    scope: &str,
    key: &str,
    request_sha256: &[u8; 32],
    now: OffsetDateTime,
    lock_until: OffsetDateTime,
) -> StoreResult<IdempotencyBegin> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_sha256, locked_until, created_at) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope, key) DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(request_sha256.as_slice())
    .bind(to_micros(lock_until))
    .bind(to_micros(now))
    .execute(pool)
    .await
    .map_err(map_err)?;
    if inserted.rows_affected() == 1 {
        return Ok(IdempotencyBegin::Proceed);
    }
    type Row = (Vec<u8>, Option<i64>, Option<Vec<u8>>, i64, Option<i64>);
    let (stored_hash, status, body, locked, expires): Row = sqlx::query_as(
        "SELECT request_sha256, status, body_sealed, locked_until, expires_at FROM idempotency_keys \
         WHERE scope = ? AND key = ?",
    )
    .bind(scope)
    .bind(key)
    .fetch_one(pool)
    .await
    .map_err(map_err)?;
    let now_micros = to_micros(now);
    let retakable =
        expires.is_some_and(|e| e <= now_micros) || (status.is_none() && locked <= now_micros);
    if retakable {
        let retaken = sqlx::query(
            "UPDATE idempotency_keys SET request_sha256 = ?, status = NULL, body_sealed = NULL, \
             locked_until = ?, expires_at = NULL, created_at = ? \
             WHERE scope = ? AND key = ? AND locked_until = ?",
        )
        .bind(request_sha256.as_slice())
        .bind(to_micros(lock_until))
        .bind(now_micros)
        .bind(scope)
        .bind(key)
        .bind(locked)
        .execute(pool)
        .await
        .map_err(map_err)?;
        return Ok(if retaken.rows_affected() == 1 {
            IdempotencyBegin::Proceed
        } else {
            IdempotencyBegin::InProgress
        });
    }
    if stored_hash.as_slice() != request_sha256.as_slice() {
        return Ok(IdempotencyBegin::Mismatch);
    }
    Ok(match (status, body) {
        (Some(status), Some(body_sealed)) => IdempotencyBegin::Replay(StoredResponse {
            status: u16::try_from(status).unwrap_or(500),
            body_sealed,
        }),
        _ => IdempotencyBegin::InProgress,
    })
}

pub(crate) async fn finish(
    pool: &StorePool,
    scope: &str,
    key: &str,
    response: &StoredResponse,
    expires_at: OffsetDateTime,
    user: Option<UserId>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = ?1, body_sealed = ?2, expires_at = ?3, user_id = ?4 \
         WHERE scope = ?5 AND key = ?6 \
         AND (?4 IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = ?4))",
    )
    .bind(i64::from(response.status))
    .bind(&response.body_sealed)
    .bind(to_micros(expires_at))
    .bind(user.map(|u| u.0.as_bytes().to_vec()))
    .bind(scope)
    .bind(key)
    .execute(pool)
    .await
    .map(drop)
    .map_err(map_err)
}

pub(crate) async fn abandon(pool: &StorePool, scope: &str, key: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND status IS NULL")
        .bind(scope)
        .bind(key)
        .execute(pool)
        .await
        .map(drop)
        .map_err(map_err)
}

pub(crate) async fn record_provider_event(
    conn: &mut SqliteConnection,
    dedupe_key: &str,
    run_id: &str,
    at: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO provider_events (dedupe_key, run_id, received_at) VALUES (?, ?, ?)")
        .bind(dedupe_key)
        .bind(run_id)
        .bind(to_micros(at))
        .execute(conn)
        .await
        .map(drop)
        .map_err(map_err)
}

pub(crate) async fn provider_event_seen(pool: &StorePool, dedupe_key: &str) -> StoreResult<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM provider_events WHERE dedupe_key = ?)")
        .bind(dedupe_key)
        .fetch_one(pool)
        .await
        .map_err(map_err)
}
