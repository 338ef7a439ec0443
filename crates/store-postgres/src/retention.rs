//! Removal of rows past their retention (`domain::retention`), one batch per
//! transaction. Only one replica purges at a time: each batch first takes a
//! transaction-scoped advisory lock, and a replica that cannot take it skips
//! the run. The lock is released with the batch's commit, so no connection is
//! held between runs.

use crate::StorePool;
use domain::StoreResult;
use domain::store::Purge;

use crate::errors::map_err;

/// `pg_try_advisory_xact_lock` key of the purge ("bppurge1").
pub const PURGE_LOCK: i64 = 0x6270_7075_7267_6531;

pub(crate) async fn purge(pool: &StorePool, purge: Purge, limit: u32) -> StoreResult<Option<u64>> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(PURGE_LOCK)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
    if !leader {
        tx.rollback().await.map_err(map_err)?;
        return Ok(None);
    }
    let limit = i64::from(limit);
    // Each kind: its statement, bound to its cut-off and the batch size.
    let (sql, cutoff) = match purge {
        Purge::IdempotencyRecords { before } => (
            "DELETE FROM idempotency_keys WHERE (scope, key) IN (\
             SELECT scope, key FROM idempotency_keys \
             WHERE COALESCE(expires_at, locked_until) <= $1 LIMIT $2)",
            before,
        ),
        Purge::ProviderEvents { before } => (
            "DELETE FROM provider_events WHERE dedupe_key IN (\
             SELECT dedupe_key FROM provider_events WHERE received_at < $1 LIMIT $2)",
            before,
        ),
        Purge::ExpiredFlowSecrets { now } => (
            "UPDATE flows SET sdk_token_sealed = NULL, webauthn_ceremony_sealed = NULL, \
             webauthn_ceremony_expires_at = NULL WHERE id IN (\
             SELECT id FROM flows WHERE expires_at <= $1 \
             AND (sdk_token_sealed IS NOT NULL OR webauthn_ceremony_sealed IS NOT NULL) LIMIT $2)",
            now,
        ),
        Purge::EndedFlows { before } => (
            "DELETE FROM flows WHERE id IN (\
             SELECT id FROM flows WHERE expires_at < $1 LIMIT $2)",
            before,
        ),
    };
    let deleted = sqlx::query(sql)
        .bind(cutoff)
        .bind(limit)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
    tx.commit().await.map_err(map_err)?;
    Ok(Some(deleted))
}
