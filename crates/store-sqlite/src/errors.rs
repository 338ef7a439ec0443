//! The one place SQLite's errors become domain errors: the driver's errors,
//! and a flow's insertion refused by the user's limits.

use domain::{Conflict, FlowLimits, Limit, StoreError};
use sqlx::migrate::MigrateError;

/// Maps a driver error: unique violation → `Conflict` (what conflicted:
/// [`unique_violation`]), missing row → `NotFound`,
/// busy database, IO failure or pool timeout → `Unavailable`.
pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict(unique_violation(db.message()));
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // Primary result codes: SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_IOERR (10),
            // SQLITE_FULL (13), SQLITE_CANTOPEN (14); extended codes keep them in the low byte.
            let primary = code.parse::<i32>().map(|c| c & 0xff).unwrap_or(0);
            if matches!(primary, 5 | 6 | 10 | 13 | 14) {
                StoreError::Unavailable(format!("sqlite error {code}"))
            } else {
                StoreError::Other(format!("sqlite error {code}: {}", db.message()))
            }
        }
        other => StoreError::Other(other.to_string()),
    }
}

/// What a unique constraint's violation means, from SQLite's message
/// (`UNIQUE constraint failed: table.column`).
fn unique_violation(message: &str) -> Conflict {
    match message.strip_prefix("UNIQUE constraint failed: ") {
        Some("users.external_id") => Conflict::ExternalIdTaken,
        Some("credentials.webauthn_id") => Conflict::WebAuthnIdTaken,
        Some("provider_events.dedupe_key") => Conflict::ProviderEvent,
        other => Conflict::Unique(other.unwrap_or("unique").to_owned()),
    }
}

/// `LimitReached` when the user's flows counted for `limit` (their open
/// flows, or their IDV runs of the last 24 hours) are at its maximum already.
pub(crate) fn within_limit(
    limit: Limit,
    counted: i64,
    limits: &FlowLimits,
) -> Result<(), StoreError> {
    let max = match limit {
        Limit::OpenFlows => limits.max_open_flows,
        Limit::IdvRuns => limits.max_idv_runs_per_day,
    };
    if counted >= i64::from(max) {
        Err(StoreError::LimitReached(limit))
    } else {
        Ok(())
    }
}

pub(crate) fn map_migrate_err(err: MigrateError) -> StoreError {
    match err {
        MigrateError::Execute(inner) => map_err(inner),
        other => StoreError::Other(format!("migration failed: {other}")),
    }
}
