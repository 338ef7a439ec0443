//! The `idempotency_keys` and `provider_events` tables.

use crate::StorePool;
use domain::store::{IdempotencyBegin, StoredResponse};
use domain::{StoreResult, UserId};
use sqlx::PgConnection;
use time::OffsetDateTime;

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
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO NOTHING",
    )
    .bind(scope)
    .bind(key)
    .bind(request_sha256.as_slice())
    .bind(lock_until)
    .bind(now)
    .execute(pool)
    .await
    .map_err(map_err)?;
    if inserted.rows_affected() == 1 {
        return Ok(IdempotencyBegin::Proceed);
    }
    type Row = (
        Vec<u8>,
        Option<i32>,
        Option<Vec<u8>>,
        OffsetDateTime,
        Option<OffsetDateTime>,
    );
    let (stored_hash, status, body, locked, expires): Row = sqlx::query_as(
        "SELECT request_sha256, status, body_sealed, locked_until, expires_at FROM idempotency_keys \
         WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_one(pool)
    .await
    .map_err(map_err)?;
    // A finished record past its retention, or an unfinished claim past its lock, may be retaken.
    let retakable = expires.is_some_and(|e| e <= now) || (status.is_none() && locked <= now);
    if retakable {
        let retaken = sqlx::query(
            "UPDATE idempotency_keys SET request_sha256 = $3, status = NULL, body_sealed = NULL, \
             locked_until = $4, expires_at = NULL, created_at = $5 \
             WHERE scope = $1 AND key = $2 AND locked_until = $6",
        )
        .bind(scope)
        .bind(key)
        .bind(request_sha256.as_slice())
        .bind(lock_until)
        .bind(now)
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
        "UPDATE idempotency_keys SET status = $3, body_sealed = $4, expires_at = $5, user_id = $6 \
         WHERE scope = $1 AND key = $2 \
         AND ($6::uuid IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = $6))",
    )
    .bind(scope)
    .bind(key)
    .bind(i32::from(response.status))
    .bind(&response.body_sealed)
    .bind(expires_at)
    .bind(user.map(|u| u.0))
    .execute(pool)
    .await
    .map(drop)
    .map_err(map_err)
}

pub(crate) async fn abandon(pool: &StorePool, scope: &str, key: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status IS NULL")
        .bind(scope)
        .bind(key)
        .execute(pool)
        .await
        .map(drop)
        .map_err(map_err)
}

pub(crate) async fn record_provider_event(
    conn: &mut PgConnection,
    dedupe_key: &str,
    run_id: &str,
    at: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO provider_events (dedupe_key, run_id, received_at) VALUES ($1, $2, $3)")
        .bind(dedupe_key)
        .bind(run_id)
        .bind(at)
        .execute(conn)
        .await
        .map(drop)
        .map_err(map_err)
}

pub(crate) async fn provider_event_seen(pool: &StorePool, dedupe_key: &str) -> StoreResult<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM provider_events WHERE dedupe_key = $1)")
        .bind(dedupe_key)
        .fetch_one(pool)
        .await
        .map_err(map_err)
}
