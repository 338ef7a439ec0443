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
    // Each kind: its statement, bound to its cut-off and the batch size.
    let (sql, cutoff) = match purge {
        Purge::IdempotencyRecords { before } => (
            "DELETE FROM idempotency_keys WHERE rowid IN (\
             SELECT rowid FROM idempotency_keys \
             WHERE COALESCE(expires_at, locked_until) <= ? LIMIT ?)",
            before,
        ),
        Purge::ProviderEvents { before } => (
            "DELETE FROM provider_events WHERE rowid IN (\
             SELECT rowid FROM provider_events WHERE received_at < ? LIMIT ?)",
            before,
        ),
        Purge::ExpiredFlowSecrets { now } => (
            "UPDATE flows SET sdk_token_sealed = NULL, webauthn_ceremony_sealed = NULL, \
             webauthn_ceremony_expires_at = NULL WHERE rowid IN (\
             SELECT rowid FROM flows WHERE expires_at <= ? \
             AND (sdk_token_sealed IS NOT NULL OR webauthn_ceremony_sealed IS NOT NULL) LIMIT ?)",
            now,
        ),
        Purge::EndedFlows { before } => (
            "DELETE FROM flows WHERE rowid IN (\
             SELECT rowid FROM flows WHERE expires_at < ? LIMIT ?)",
            before,
        ),
    };
    let deleted = sqlx::query(sql)
        .bind(to_micros(cutoff))
        .bind(limit)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
    tx.commit().await.map_err(map_err)?;
    Ok(Some(deleted))
}
