//! The `flows` table.

use domain::flow::{Ceremony, Flow, FlowId, Handoff, KeyedDigest, NewCredential};
use domain::{
    Conflict, ExternalUserId, FlowLimits, FlowPrerequisites, FlowQuery, Limit, StoreError,
    StoreResult, UserId,
};
use sqlx::sqlite::{SqliteExecutor, SqliteRow};
use sqlx::{Row, SqliteConnection};
use time::{Duration, OffsetDateTime};

use crate::codec::{
    from_micros, opt_from_micros, opt_micros, opt_uuid_from, to_micros, uuid_bytes, uuid_from,
};
use crate::errors::{self, map_err};
use crate::users::{self, COLUMNS as USER_COLUMNS};

const COLUMNS: &str = "id, user_id, flow_type, state, version, identity_status, idv_run_id, sdk_token_sealed, \
    possession_done, reference_stored, credential_id, pending_credential, failure_reason, \
    transaction_context_sealed, transaction_context_hmac, cross_platform, handoff_code_sha256, \
    handoff_expires_at, handoff_claimed_at, created_at, updated_at, expires_at, completed_at, \
    webauthn_ceremony_sealed, webauthn_ceremony_expires_at, transaction_context_key_id, \
    reference_flow_id";

const OPEN_STATES: &str = "('pending', 'awaiting_verification', 'verified', 'in_review')";

fn pending_json(flow: &Flow) -> StoreResult<Option<String>> {
    flow.pending_credential
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Other(e.to_string()))
}

/// The user and their standing at `now`, in one statement.
pub(crate) async fn prerequisites(
    db: impl SqliteExecutor<'_>,
    external_id: &ExternalUserId,
    now: OffsetDateTime,
) -> StoreResult<FlowPrerequisites> {
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, \
         EXISTS (SELECT 1 FROM credentials c WHERE c.user_id = u.id AND c.status = 'active') \
             AS has_active_credential, \
         EXISTS (SELECT 1 FROM credentials c WHERE c.user_id = u.id AND c.status <> 'revoked') \
             AS has_live_credential, \
         (SELECT r.created_by_flow FROM biometric_references r WHERE r.user_id = u.id) \
             AS reference_flow_id, \
         (SELECT count(*) FROM flows f WHERE f.user_id = u.id AND f.state IN {OPEN_STATES} \
             AND f.expires_at > ?2) AS open_flows, \
         (SELECT count(*) FROM flows f WHERE f.user_id = u.id \
             AND f.identity_status <> 'not_required' AND f.created_at > ?3) AS idv_runs \
         FROM users u WHERE u.external_id = ?1"
    ))
    .bind(external_id.as_str())
    .bind(to_micros(now))
    .bind(to_micros(now - Duration::days(1)))
    .fetch_one(db)
    .await
    .map_err(map_err)?;
    let count = |column: &str| -> StoreResult<u32> {
        let n: i64 = row.try_get(column).map_err(map_err)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    };
    Ok(FlowPrerequisites {
        user: users::to_user(&row)?,
        has_active_credential: row.try_get("has_active_credential").map_err(map_err)?,
        has_live_credential: row.try_get("has_live_credential").map_err(map_err)?,
        reference_flow_id: opt_uuid_from(
            row.try_get("reference_flow_id").map_err(map_err)?,
            "biometric_references.created_by_flow",
        )?
        .map(FlowId),
        open_flows: count("open_flows")?,
        idv_runs_last_day: count("idv_runs")?,
    })
}

/// Inserts `flow` after checking the user's limits. Write transactions hold
/// SQLite's write lock from their start, so concurrent creations are counted
/// one after the other.
pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    flow: &Flow,
    limits: &FlowLimits,
) -> StoreResult<()> {
    let user = uuid_bytes(flow.user_id.0);
    // As on PostgreSQL: a flow for a user that no longer exists is `NotFound`.
    sqlx::query("SELECT 1 FROM users WHERE id = ?")
        .bind(&user)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    let open: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM flows WHERE user_id = ? AND state IN {OPEN_STATES} AND expires_at > ?"
    ))
    .bind(&user)
    .bind(to_micros(limits.now))
    .fetch_one(&mut *conn)
    .await
    .map_err(map_err)?;
    errors::within_limit(Limit::OpenFlows, open, limits)?;
    if flow.flow_type.needs_identity() {
        let runs: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM flows WHERE user_id = ? AND identity_status <> 'not_required' AND created_at > ?",
        )
        .bind(&user)
        .bind(to_micros(limits.now - Duration::days(1)))
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
        errors::within_limit(Limit::IdvRuns, runs, limits)?;
    }
    let handoff = flow.handoff.as_ref();
    sqlx::query(&format!(
        "INSERT INTO flows ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(uuid_bytes(flow.id.0))
    .bind(&user)
    .bind(flow.flow_type.as_str())
    .bind(flow.state.as_str())
    .bind(flow.version)
    .bind(flow.identity.as_str())
    .bind(flow.idv_run_id.as_deref())
    .bind(flow.sdk_token_sealed.as_deref())
    .bind(flow.possession_done)
    .bind(flow.reference_stored)
    .bind(flow.credential_id.map(uuid_bytes))
    .bind(pending_json(flow)?)
    .bind(flow.failure_reason.map(|r| r.as_str()))
    .bind(flow.transaction_context_sealed.as_deref())
    .bind(flow.transaction_context_digest.as_ref().map(|d| d.hmac.as_str()))
    .bind(flow.cross_platform)
    .bind(handoff.map(|h| h.code_sha256.to_vec()))
    .bind(handoff.map(|h| to_micros(h.expires_at)))
    .bind(opt_micros(handoff.and_then(|h| h.claimed_at)))
    .bind(to_micros(flow.created_at))
    .bind(to_micros(flow.updated_at))
    .bind(to_micros(flow.expires_at))
    .bind(opt_micros(flow.completed_at))
    .bind(flow.ceremony.as_ref().map(|c| c.state_sealed.as_slice()))
    .bind(opt_micros(flow.ceremony.as_ref().map(|c| c.expires_at)))
    .bind(
        flow.transaction_context_digest
            .as_ref()
            .map(|d| d.key_id.as_str()),
    )
    .bind(flow.reference_flow_id.map(|f| uuid_bytes(f.0)))
    .execute(conn)
    .await
    .map(drop)
    .map_err(map_err)
}

/// Stages a reference on a flow, replacing what the flow staged before.
pub(crate) async fn stage_reference(
    conn: &mut SqliteConnection,
    flow: FlowId,
    sealed: &[u8],
    at: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO staged_references (flow_id, sealed, created_at) VALUES (?, ?, ?) \
         ON CONFLICT (flow_id) DO UPDATE SET sealed = excluded.sealed, created_at = excluded.created_at",
    )
    .bind(uuid_bytes(flow.0))
    .bind(sealed)
    .bind(to_micros(at))
    .execute(conn)
    .await
    .map(drop)
    .map_err(map_err)
}

pub(crate) async fn discard_staged_reference(
    conn: &mut SqliteConnection,
    flow: FlowId,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM staged_references WHERE flow_id = ?")
        .bind(uuid_bytes(flow.0))
        .execute(conn)
        .await
        .map(drop)
        .map_err(map_err)
}

pub(crate) async fn staged_reference_of(
    db: impl SqliteExecutor<'_>,
    flow: FlowId,
) -> StoreResult<Vec<u8>> {
    sqlx::query_scalar("SELECT sealed FROM staged_references WHERE flow_id = ?")
        .bind(uuid_bytes(flow.0))
        .fetch_one(db)
        .await
        .map_err(map_err)
}

pub(crate) async fn discard_stale_staged_references(
    db: impl SqliteExecutor<'_>,
    now: OffsetDateTime,
) -> StoreResult<u64> {
    sqlx::query(&format!(
        "DELETE FROM staged_references WHERE flow_id IN (SELECT id FROM flows \
         WHERE state NOT IN {OPEN_STATES} OR expires_at <= ?)"
    ))
    .bind(to_micros(now))
    .execute(db)
    .await
    .map(|done| done.rows_affected())
    .map_err(map_err)
}

/// Cancels the user's flows in progress but `keep`, discarding what they
/// staged; the ids of the flows cancelled.
pub(crate) async fn cancel_others(
    conn: &mut SqliteConnection,
    user: UserId,
    keep: FlowId,
    at: OffsetDateTime,
) -> StoreResult<Vec<uuid::Uuid>> {
    // The flows first, then what they staged (as on PostgreSQL).
    let ids: Vec<Vec<u8>> = sqlx::query_scalar(&format!(
        "UPDATE flows SET state = 'cancelled', version = version + 1, updated_at = ?3, \
         webauthn_ceremony_sealed = NULL, webauthn_ceremony_expires_at = NULL, sdk_token_sealed = NULL \
         WHERE user_id = ?1 AND id <> ?2 AND state IN {OPEN_STATES} AND expires_at > ?3 \
         RETURNING id"
    ))
    .bind(uuid_bytes(user.0))
    .bind(uuid_bytes(keep.0))
    .bind(to_micros(at))
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    for id in &ids {
        sqlx::query("DELETE FROM staged_references WHERE flow_id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    ids.iter().map(|id| uuid_from(id, "flows.id")).collect()
}

/// Writes `flow` only over the version it was derived from.
pub(crate) async fn update(conn: &mut SqliteConnection, flow: &Flow) -> StoreResult<()> {
    let updated = sqlx::query(
        "UPDATE flows SET state = ?, version = ?, identity_status = ?, idv_run_id = ?, sdk_token_sealed = ?, \
         possession_done = ?, reference_stored = ?, credential_id = ?, pending_credential = ?, \
         failure_reason = ?, handoff_claimed_at = ?, updated_at = ?, completed_at = ?, \
         webauthn_ceremony_sealed = ?, webauthn_ceremony_expires_at = ? \
         WHERE id = ? AND version = ?",
    )
    .bind(flow.state.as_str())
    .bind(flow.version)
    .bind(flow.identity.as_str())
    .bind(flow.idv_run_id.as_deref())
    .bind(flow.sdk_token_sealed.as_deref())
    .bind(flow.possession_done)
    .bind(flow.reference_stored)
    .bind(flow.credential_id.map(uuid_bytes))
    .bind(pending_json(flow)?)
    .bind(flow.failure_reason.map(|r| r.as_str()))
    .bind(opt_micros(flow.handoff.as_ref().and_then(|h| h.claimed_at)))
    .bind(to_micros(flow.updated_at))
    .bind(opt_micros(flow.completed_at))
    .bind(flow.ceremony.as_ref().map(|c| c.state_sealed.as_slice()))
    .bind(opt_micros(flow.ceremony.as_ref().map(|c| c.expires_at)))
    .bind(uuid_bytes(flow.id.0))
    .bind(flow.version - 1)
    .execute(conn)
    .await
    .map_err(map_err)?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::Conflict(Conflict::FlowVersion));
    }
    Ok(())
}

async fn one(db: impl SqliteExecutor<'_>, filter: &str, value: Vec<u8>) -> StoreResult<Flow> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM flows WHERE {filter} = ?"))
        .bind(value)
        .fetch_one(db)
        .await
        .map_err(map_err)?;
    to_flow(&row)
}

pub(crate) async fn by_id(db: impl SqliteExecutor<'_>, id: FlowId) -> StoreResult<Flow> {
    one(db, "id", uuid_bytes(id.0)).await
}

pub(crate) async fn by_handoff(
    db: impl SqliteExecutor<'_>,
    code_sha256: &[u8; 32],
) -> StoreResult<Flow> {
    one(db, "handoff_code_sha256", code_sha256.to_vec()).await
}

pub(crate) async fn by_run(db: impl SqliteExecutor<'_>, run_id: &str) -> StoreResult<Flow> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM flows WHERE idv_run_id = ?"))
        .bind(run_id)
        .fetch_one(db)
        .await
        .map_err(map_err)?;
    to_flow(&row)
}

pub(crate) async fn of_user(
    db: impl SqliteExecutor<'_>,
    user: UserId,
    limit: u32,
) -> StoreResult<Vec<Flow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM flows WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?"
    ))
    .bind(uuid_bytes(user.0))
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
    .map_err(map_err)?;
    rows.iter().map(to_flow).collect()
}

/// A user's flows by type and by the state each reads as at `query.now`
/// (an open flow past its expiry reads `expired`), newest first, over
/// `flows_user_idx`.
pub(crate) async fn search(
    db: impl SqliteExecutor<'_>,
    query: &FlowQuery,
) -> StoreResult<Vec<Flow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM flows WHERE user_id = ?1 \
         AND (?2 IS NULL OR flow_type = ?2) \
         AND (?3 IS NULL OR CASE WHEN state IN {OPEN_STATES} AND expires_at <= ?4 \
         THEN 'expired' ELSE state END = ?3) \
         ORDER BY created_at DESC, id DESC LIMIT ?5"
    ))
    .bind(uuid_bytes(query.user.0))
    .bind(query.flow_type.map(|t| t.as_str()))
    .bind(query.state.map(|s| s.as_str()))
    .bind(to_micros(query.now))
    .bind(i64::from(query.limit))
    .fetch_all(db)
    .await
    .map_err(map_err)?;
    rows.iter().map(to_flow).collect()
}

fn parsed<T: std::str::FromStr>(row: &SqliteRow, column: &str) -> StoreResult<T>
where
    T::Err: std::fmt::Display,
{
    let raw: String = row.try_get(column).map_err(map_err)?;
    raw.parse()
        .map_err(|e| StoreError::Corrupt(format!("flows.{column}: {e}")))
}

fn digest(row: &SqliteRow) -> StoreResult<Option<KeyedDigest>> {
    let hmac: Option<String> = row.try_get("transaction_context_hmac").map_err(map_err)?;
    let key_id: Option<String> = row.try_get("transaction_context_key_id").map_err(map_err)?;
    match (hmac, key_id) {
        (Some(hmac), Some(key_id)) => Ok(Some(KeyedDigest { key_id, hmac })),
        (None, None) => Ok(None),
        _ => Err(StoreError::Corrupt(
            "flows.transaction_context_hmac: without its key id".into(),
        )),
    }
}

fn to_flow(row: &SqliteRow) -> StoreResult<Flow> {
    let corrupt = |column: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("flows.{column}: {e}"))
    };
    let code: Option<Vec<u8>> = row.try_get("handoff_code_sha256").map_err(map_err)?;
    let handoff = match code {
        Some(code) => Some(Handoff {
            code_sha256: code
                .try_into()
                .map_err(|_| corrupt("handoff_code_sha256", &"not 32 bytes"))?,
            expires_at: opt_from_micros(
                row.try_get("handoff_expires_at").map_err(map_err)?,
                "flows.handoff_expires_at",
            )?
            .ok_or_else(|| corrupt("handoff_expires_at", &"missing"))?,
            claimed_at: opt_from_micros(
                row.try_get("handoff_claimed_at").map_err(map_err)?,
                "flows.handoff_claimed_at",
            )?,
        }),
        None => None,
    };
    let ceremony_sealed: Option<Vec<u8>> =
        row.try_get("webauthn_ceremony_sealed").map_err(map_err)?;
    let ceremony = match ceremony_sealed {
        Some(state_sealed) => Some(Ceremony {
            state_sealed,
            expires_at: opt_from_micros(
                row.try_get("webauthn_ceremony_expires_at")
                    .map_err(map_err)?,
                "flows.webauthn_ceremony_expires_at",
            )?
            .ok_or_else(|| corrupt("webauthn_ceremony_expires_at", &"missing"))?,
        }),
        None => None,
    };
    let failure: Option<String> = row.try_get("failure_reason").map_err(map_err)?;
    let pending: Option<String> = row.try_get("pending_credential").map_err(map_err)?;
    let id: Vec<u8> = row.try_get("id").map_err(map_err)?;
    let user_id: Vec<u8> = row.try_get("user_id").map_err(map_err)?;
    Ok(Flow {
        id: FlowId(uuid_from(&id, "flows.id")?),
        user_id: UserId(uuid_from(&user_id, "flows.user_id")?),
        flow_type: parsed(row, "flow_type")?,
        state: parsed(row, "state")?,
        version: row.try_get("version").map_err(map_err)?,
        identity: parsed(row, "identity_status")?,
        idv_run_id: row.try_get("idv_run_id").map_err(map_err)?,
        sdk_token_sealed: row.try_get("sdk_token_sealed").map_err(map_err)?,
        possession_done: row.try_get("possession_done").map_err(map_err)?,
        reference_stored: row.try_get("reference_stored").map_err(map_err)?,
        credential_id: opt_uuid_from(
            row.try_get("credential_id").map_err(map_err)?,
            "flows.credential_id",
        )?,
        pending_credential: pending
            .map(|json| serde_json::from_str::<NewCredential>(&json))
            .transpose()
            .map_err(|e| corrupt("pending_credential", &e))?,
        failure_reason: failure
            .map(|r| r.parse())
            .transpose()
            .map_err(|e| corrupt("failure_reason", &e))?,
        transaction_context_sealed: row.try_get("transaction_context_sealed").map_err(map_err)?,
        transaction_context_digest: digest(row)?,
        reference_flow_id: opt_uuid_from(
            row.try_get("reference_flow_id").map_err(map_err)?,
            "flows.reference_flow_id",
        )?
        .map(FlowId),
        cross_platform: row.try_get("cross_platform").map_err(map_err)?,
        handoff,
        ceremony,
        created_at: from_micros(
            row.try_get("created_at").map_err(map_err)?,
            "flows.created_at",
        )?,
        updated_at: from_micros(
            row.try_get("updated_at").map_err(map_err)?,
            "flows.updated_at",
        )?,
        expires_at: from_micros(
            row.try_get("expires_at").map_err(map_err)?,
            "flows.expires_at",
        )?,
        completed_at: opt_from_micros(
            row.try_get("completed_at").map_err(map_err)?,
            "flows.completed_at",
        )?,
    })
}

pub(crate) async fn awaiting_provider(
    db: impl SqliteExecutor<'_>,
    checked_before: time::OffsetDateTime,
    now: time::OffsetDateTime,
    limit: u32,
) -> StoreResult<Vec<Flow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM flows \
         WHERE state IN ('awaiting_verification', 'in_review') AND idv_run_id IS NOT NULL \
         AND coalesce(provider_checked_at, updated_at) < ? AND expires_at > ? \
         ORDER BY coalesce(provider_checked_at, updated_at), id LIMIT ?"
    ))
    .bind(to_micros(checked_before))
    .bind(to_micros(now))
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
    .map_err(map_err)?;
    rows.iter().map(to_flow).collect()
}

pub(crate) async fn awaiting_run_lookup(
    db: impl SqliteExecutor<'_>,
    failed_before: time::OffsetDateTime,
    limit: u32,
) -> StoreResult<Vec<Flow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM flows \
         WHERE run_lookup_pending AND updated_at < ? \
         ORDER BY updated_at, id LIMIT ?"
    ))
    .bind(to_micros(failed_before))
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
    .map_err(map_err)?;
    rows.iter().map(to_flow).collect()
}

pub(crate) async fn set_run_lookup(
    db: impl SqliteExecutor<'_>,
    id: FlowId,
    pending: bool,
) -> StoreResult<()> {
    sqlx::query("UPDATE flows SET run_lookup_pending = ? WHERE id = ?")
        .bind(pending)
        .bind(uuid_bytes(id.0))
        .execute(db)
        .await
        .map(drop)
        .map_err(map_err)
}

pub(crate) async fn mark_provider_checked(
    db: impl SqliteExecutor<'_>,
    id: FlowId,
    at: time::OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query("UPDATE flows SET provider_checked_at = ? WHERE id = ?")
        .bind(to_micros(at))
        .bind(uuid_bytes(id.0))
        .execute(db)
        .await
        .map(drop)
        .map_err(map_err)
}
