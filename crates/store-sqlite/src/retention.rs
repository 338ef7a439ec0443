//! Removal of rows past their retention (`domain::retention`), one batch per
//! write transaction: SQLite's write lock already lets one purge (and one
//! writer) run at a time.

use domain::StoreResult;
use domain::store::Purge;
use sqlx::{Sqlite, Transaction};

use crate::codec::to_micros;
use crate::errors::map_err;

pub(crate) async fn purge(
    mut tx: Transaction<'static, Sqlite>,
    purge: Purge,
    limit: u32,
) -> StoreResult<Option<u64>> {
    let limit = i64::from(limit);
    let deleted = match purge {
        Purge::IdempotencyRecords { before } => sqlx::query(
            "DELETE FROM idempotency_keys WHERE rowid IN (\
             SELECT rowid FROM idempotency_keys \
             WHERE COALESCE(expires_at, locked_until) <= ? LIMIT ?)",
        )
        .bind(to_micros(before))
        .bind(limit),
        Purge::ProviderEvents { before } => sqlx::query(
            "DELETE FROM provider_events WHERE rowid IN (\
             SELECT rowid FROM provider_events WHERE received_at < ? LIMIT ?)",
        )
        .bind(to_micros(before))
        .bind(limit),
        Purge::ExpiredFlowSecrets { now } => sqlx::query(
            "UPDATE flows SET sdk_token_sealed = NULL, webauthn_ceremony_sealed = NULL, \
             webauthn_ceremony_expires_at = NULL WHERE rowid IN (\
             SELECT rowid FROM flows WHERE expires_at <= ? \
             AND (sdk_token_sealed IS NOT NULL OR webauthn_ceremony_sealed IS NOT NULL) LIMIT ?)",
        )
        .bind(to_micros(now))
        .bind(limit),
        Purge::EndedFlows { before } => sqlx::query(
            "DELETE FROM flows WHERE rowid IN (\
             SELECT rowid FROM flows WHERE expires_at < ? LIMIT ?)",
        )
        .bind(to_micros(before))
        .bind(limit),
    }
    .execute(&mut *tx)
    .await
    .map_err(map_err)?
    .rows_affected();
    tx.commit().await.map_err(map_err)?;
    Ok(Some(deleted))
}
