//! The one place PostgreSQL's errors become domain errors: the driver's
//! errors, and a flow's insertion refused by the user's limits.

use domain::{Conflict, FlowLimits, Limit, StoreError};
use sqlx::migrate::MigrateError;

/// Maps a driver error: unique violation, a one-statement change's refusal
/// or a lost race → `Conflict` (what conflicted: [`unique_violation`],
/// [`refused`]), missing row → `NotFound`, lost connection or pool timeout →
/// `Unavailable`.
pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                // unique_violation
                "23505" => StoreError::Conflict(unique_violation(db.constraint())),
                // A change written as one statement refused by a later
                // check (`change_refused`, migration 0017): the message
                // names the conflict.
                "BPC01" => StoreError::Conflict(refused(db.message())),
                // serialization_failure, deadlock_detected: a concurrent change won.
                "40001" | "40P01" => StoreError::Conflict(Conflict::ConcurrentUpdate),
                // connection_exception class, admin_shutdown, crash_shutdown,
                // cannot_connect_now, too_many_connections, read-only standby.
                c if c.starts_with("08")
                    || matches!(c, "57P01" | "57P02" | "57P03" | "53300" | "25006") =>
                {
                    StoreError::Unavailable(format!("postgres error {c}"))
                }
                // invalid_sql_statement_name, duplicate_prepared_statement:
                // a statement prepared on one server session and used on
                // another, which only a pooler in transaction mode does.
                c @ ("26000" | "42P05") => StoreError::Unavailable(format!(
                    "postgres error {c}: prepared statements are lost between statements; \
                     DB_HOST looks like a pooler in transaction mode: set DB_POOLER_MODE=transaction"
                )),
                c => StoreError::Other(format!("postgres error {c}: {}", db.message())),
            }
        }
        other => StoreError::Other(other.to_string()),
    }
}

/// What a unique constraint's violation means.
fn unique_violation(constraint: Option<&str>) -> Conflict {
    match constraint {
        Some("users_external_id_key") => Conflict::ExternalIdTaken,
        Some("credentials_webauthn_id_key") => Conflict::WebAuthnIdTaken,
        Some("provider_events_pkey") => Conflict::ProviderEvent,
        other => Conflict::Unique(other.unwrap_or("unique").to_owned()),
    }
}

/// The conflicts a part of a one-statement change answers when it writes
/// nothing (`change.rs`); the statement hands `change_refused` the
/// conflict's name (its `Display`), read back by [`refused`].
pub(crate) const REFUSABLE: [Conflict; 3] = [
    Conflict::CredentialState,
    Conflict::CredentialNotActive,
    Conflict::ProviderEvent,
];

/// The conflict `change_refused` named.
fn refused(name: &str) -> Conflict {
    REFUSABLE
        .into_iter()
        .find(|conflict| conflict.to_string() == name)
        .unwrap_or_else(|| Conflict::Unique(name.to_owned()))
}

/// Why a flow's insertion (`flows::push_insert`) inserted nothing, from the
/// open flows its gate counted (`None`: the user does not exist): the open
/// flows' limit when they are at it, else the IDV runs' limit.
pub(crate) fn insert_refused(open_flows: Option<i64>, limits: &FlowLimits) -> StoreError {
    match open_flows {
        None => StoreError::NotFound,
        Some(open) if open >= i64::from(limits.max_open_flows) => {
            StoreError::LimitReached(Limit::OpenFlows)
        }
        Some(_) => StoreError::LimitReached(Limit::IdvRuns),
    }
}

pub(crate) fn map_migrate_err(err: MigrateError) -> StoreError {
    match err {
        MigrateError::Execute(inner) => map_err(inner),
        other => StoreError::Other(format!("migration failed: {other}")),
    }
}
