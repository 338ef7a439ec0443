//! The `flows` table.

use domain::flow::{Ceremony, Flow, FlowId, Handoff, KeyedDigest, NewCredential};
use domain::{ExternalUserId, FlowLimits, FlowPrerequisites, StoreError, StoreResult, UserId};
use sqlx::postgres::{PgExecutor, PgRow};
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use time::{Duration, OffsetDateTime};

use crate::users::{self, COLUMNS as USER_COLUMNS};

use crate::errors::map_err;

const COLUMNS: &str = "id, user_id, flow_type, state, version, identity_status, idv_run_id, sdk_token_sealed, \
    possession_done, reference_stored, credential_id, pending_credential, failure_reason, \
    transaction_context_sealed, transaction_context_hmac, cross_platform, handoff_code_sha256, \
    handoff_expires_at, handoff_claimed_at, created_at, updated_at, expires_at, completed_at, \
    webauthn_ceremony_sealed, webauthn_ceremony_expires_at, transaction_context_key_id, \
    reference_flow_id";

/// Open flows count against the per-user limit; `flows_open_by_user_idx`
/// holds exactly these rows, `flows_runs_by_user_idx` those with an IDV run.
const OPEN_STATES: &str = "('pending', 'awaiting_verification', 'verified', 'in_review')";

/// Inserts `flow` if the user's limits allow it, with the user's row locked
/// so that concurrent creations for one user are counted one after the
/// other. The counts and the insert are one statement, taken after the lock
/// (a statement's snapshot starts with it, so it sees every flow committed
/// before the lock was granted); which limit refused is asked only then.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    flow: &Flow,
    limits: &FlowLimits,
) -> StoreResult<()> {
    sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
        .bind(flow.user_id.0)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    let handoff = flow.handoff.as_ref();
    let inserted = sqlx::query(&format!(
        "INSERT INTO flows ({COLUMNS}) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
         $19, $20, $21, $22, $23, $24, $25, $31, $32 \
         WHERE (SELECT count(*) FROM flows WHERE user_id = $2 AND state IN {OPEN_STATES} \
                AND expires_at > $26) < $27 \
           AND (NOT $28 OR (SELECT count(*) FROM flows WHERE user_id = $2 \
                AND identity_status <> 'not_required' AND created_at > $29) < $30)"
    ))
    .bind(flow.id.0)
    .bind(flow.user_id.0)
    .bind(flow.flow_type.as_str())
    .bind(flow.state.as_str())
    .bind(flow.version)
    .bind(flow.identity.as_str())
    .bind(flow.idv_run_id.as_deref())
    .bind(flow.sdk_token_sealed.as_deref())
    .bind(flow.possession_done)
    .bind(flow.reference_stored)
    .bind(flow.credential_id)
    .bind(flow.pending_credential.as_ref().map(Json))
    .bind(flow.failure_reason.map(|r| r.as_str()))
    .bind(flow.transaction_context_sealed.as_deref())
    .bind(
        flow.transaction_context_digest
            .as_ref()
            .map(|d| d.hmac.as_str()),
    )
    .bind(flow.cross_platform)
    .bind(handoff.map(|h| h.code_sha256.to_vec()))
    .bind(handoff.map(|h| h.expires_at))
    .bind(handoff.and_then(|h| h.claimed_at))
    .bind(flow.created_at)
    .bind(flow.updated_at)
    .bind(flow.expires_at)
    .bind(flow.completed_at)
    .bind(flow.ceremony.as_ref().map(|c| c.state_sealed.as_slice()))
    .bind(flow.ceremony.as_ref().map(|c| c.expires_at))
    .bind(limits.now)
    .bind(i64::from(limits.max_open_flows))
    .bind(flow.flow_type.needs_identity())
    .bind(limits.now - Duration::days(1))
    .bind(i64::from(limits.max_idv_runs_per_day))
    .bind(
        flow.transaction_context_digest
            .as_ref()
            .map(|d| d.key_id.as_str()),
    )
    .bind(flow.reference_flow_id.map(|f| f.0))
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    if inserted.rows_affected() == 1 {
        return Ok(());
    }
    let open: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM flows WHERE user_id = $1 AND state IN {OPEN_STATES} AND expires_at > $2"
    ))
        .bind(flow.user_id.0)
        .bind(limits.now)
        .fetch_one(conn)
        .await
        .map_err(map_err)?;
    let what = if open >= i64::from(limits.max_open_flows) {
        "open_flows"
    } else {
        "idv_runs"
    };
    Err(StoreError::LimitReached { what: what.into() })
}

/// The user and their standing at `now`: one statement, each part an index probe.
pub(crate) async fn prerequisites(
    db: impl PgExecutor<'_>,
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
             AND f.expires_at > $2) AS open_flows, \
         (SELECT count(*) FROM flows f WHERE f.user_id = u.id \
             AND f.identity_status <> 'not_required' AND f.created_at > $3) AS idv_runs \
         FROM users u WHERE u.external_id = $1"
    ))
    .bind(external_id.as_str())
    .bind(now)
    .bind(now - Duration::days(1))
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
        reference_flow_id: row
            .try_get::<Option<uuid::Uuid>, _>("reference_flow_id")
            .map_err(map_err)?
            .map(FlowId),
        open_flows: count("open_flows")?,
        idv_runs_last_day: count("idv_runs")?,
    })
}

/// Writes `flow` only over the version it was derived from.
pub(crate) async fn update(conn: &mut PgConnection, flow: &Flow) -> StoreResult<()> {
    let updated = sqlx::query(
        "UPDATE flows SET state = $3, version = $4, identity_status = $5, idv_run_id = $6, sdk_token_sealed = $7, \
         possession_done = $8, reference_stored = $9, credential_id = $10, pending_credential = $11, \
         failure_reason = $12, handoff_claimed_at = $13, updated_at = $14, completed_at = $15, \
         webauthn_ceremony_sealed = $16, webauthn_ceremony_expires_at = $17 \
         WHERE id = $1 AND version = $2",
    )
    .bind(flow.id.0)
    .bind(flow.version - 1)
    .bind(flow.state.as_str())
    .bind(flow.version)
    .bind(flow.identity.as_str())
    .bind(flow.idv_run_id.as_deref())
    .bind(flow.sdk_token_sealed.as_deref())
    .bind(flow.possession_done)
    .bind(flow.reference_stored)
    .bind(flow.credential_id)
    .bind(flow.pending_credential.as_ref().map(Json))
    .bind(flow.failure_reason.map(|r| r.as_str()))
    .bind(flow.handoff.as_ref().and_then(|h| h.claimed_at))
    .bind(flow.updated_at)
    .bind(flow.completed_at)
    .bind(flow.ceremony.as_ref().map(|c| c.state_sealed.as_slice()))
    .bind(flow.ceremony.as_ref().map(|c| c.expires_at))
    .execute(conn)
    .await
    .map_err(map_err)?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::Conflict {
            what: "flow_version".into(),
        });
    }
    Ok(())
}

pub(crate) async fn by_id(db: impl PgExecutor<'_>, id: FlowId) -> StoreResult<Flow> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM flows WHERE id = $1"))
        .bind(id.0)
        .fetch_one(db)
        .await
        .map_err(map_err)?;
    to_flow(&row)
}

pub(crate) async fn by_handoff(
    db: impl PgExecutor<'_>,
    code_sha256: &[u8; 32],
) -> StoreResult<Flow> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM flows WHERE handoff_code_sha256 = $1"
    ))
    .bind(code_sha256.as_slice())
    .fetch_one(db)
    .await
    .map_err(map_err)?;
    to_flow(&row)
}

pub(crate) async fn by_run(db: impl PgExecutor<'_>, run_id: &str) -> StoreResult<Flow> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM flows WHERE idv_run_id = $1"
    ))
    .bind(run_id)
    .fetch_one(db)
    .await
    .map_err(map_err)?;
    to_flow(&row)
}

pub(crate) async fn of_user(
    db: impl PgExecutor<'_>,
    user: UserId,
    limit: u32,
) -> StoreResult<Vec<Flow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM flows WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(user.0)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
    .map_err(map_err)?;
    rows.iter().map(to_flow).collect()
}

fn parsed<T: std::str::FromStr>(row: &PgRow, column: &str) -> StoreResult<T>
where
    T::Err: std::fmt::Display,
{
    let raw: String = row.try_get(column).map_err(map_err)?;
    raw.parse()
        .map_err(|e| StoreError::Corrupt(format!("flows.{column}: {e}")))
}

fn digest(row: &PgRow) -> StoreResult<Option<KeyedDigest>> {
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

/// Stages a reference on a flow, replacing what the flow staged before.
pub(crate) async fn stage_reference(
    conn: &mut PgConnection,
    flow: FlowId,
    sealed: &[u8],
    at: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO staged_references (flow_id, sealed, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (flow_id) DO UPDATE SET sealed = EXCLUDED.sealed, created_at = EXCLUDED.created_at",
    )
    .bind(flow.0)
    .bind(sealed)
    .bind(at)
    .execute(conn)
    .await
    .map(drop)
    .map_err(map_err)
}

pub(crate) async fn discard_staged_reference(
    conn: &mut PgConnection,
    flow: FlowId,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM staged_references WHERE flow_id = $1")
        .bind(flow.0)
        .execute(conn)
        .await
        .map(drop)
        .map_err(map_err)
}

pub(crate) async fn staged_reference_of(
    db: impl PgExecutor<'_>,
    flow: FlowId,
) -> StoreResult<Vec<u8>> {
    sqlx::query_scalar("SELECT sealed FROM staged_references WHERE flow_id = $1")
        .bind(flow.0)
        .fetch_one(db)
        .await
        .map_err(map_err)
}

pub(crate) async fn discard_stale_staged_references(
    db: impl PgExecutor<'_>,
    now: OffsetDateTime,
) -> StoreResult<u64> {
    sqlx::query(&format!(
        "DELETE FROM staged_references s USING flows f \
         WHERE f.id = s.flow_id AND (f.state NOT IN {OPEN_STATES} OR f.expires_at <= $1)"
    ))
    .bind(now)
    .execute(db)
    .await
    .map(|done| done.rows_affected())
    .map_err(map_err)
}

/// Cancels the user's flows in progress but `keep`, discarding what they
/// staged; the ids of the flows cancelled. Run under the user's lock.
pub(crate) async fn cancel_others(
    conn: &mut PgConnection,
    user: UserId,
    keep: FlowId,
    at: OffsetDateTime,
) -> StoreResult<Vec<uuid::Uuid>> {
    // The flows first: a reference staged concurrently on one of them is
    // then committed before its flow is cancelled, and deleted below.
    let cancelled: Vec<uuid::Uuid> = sqlx::query_scalar(&format!(
        "UPDATE flows SET state = 'cancelled', version = version + 1, updated_at = $3, \
         webauthn_ceremony_sealed = NULL, webauthn_ceremony_expires_at = NULL, sdk_token_sealed = NULL \
         WHERE user_id = $1 AND id <> $2 AND state IN {OPEN_STATES} AND expires_at > $3 \
         RETURNING id"
    ))
    .bind(user.0)
    .bind(keep.0)
    .bind(at)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    if !cancelled.is_empty() {
        sqlx::query("DELETE FROM staged_references WHERE flow_id = ANY($1)")
            .bind(&cancelled)
            .execute(conn)
            .await
            .map_err(map_err)?;
    }
    Ok(cancelled)
}

fn to_flow(row: &PgRow) -> StoreResult<Flow> {
    let code: Option<Vec<u8>> = row.try_get("handoff_code_sha256").map_err(map_err)?;
    let handoff = match code {
        Some(code) => Some(Handoff {
            code_sha256: code.try_into().map_err(|_| {
                StoreError::Corrupt("flows.handoff_code_sha256: not 32 bytes".into())
            })?,
            expires_at: row
                .try_get::<Option<_>, _>("handoff_expires_at")
                .map_err(map_err)?
                .ok_or_else(|| StoreError::Corrupt("flows.handoff_expires_at: missing".into()))?,
            claimed_at: row.try_get("handoff_claimed_at").map_err(map_err)?,
        }),
        None => None,
    };
    let ceremony_sealed: Option<Vec<u8>> =
        row.try_get("webauthn_ceremony_sealed").map_err(map_err)?;
    let ceremony = match ceremony_sealed {
        Some(state_sealed) => Some(Ceremony {
            state_sealed,
            expires_at: row
                .try_get::<Option<_>, _>("webauthn_ceremony_expires_at")
                .map_err(map_err)?
                .ok_or_else(|| {
                    StoreError::Corrupt("flows.webauthn_ceremony_expires_at: missing".into())
                })?,
        }),
        None => None,
    };
    let failure: Option<String> = row.try_get("failure_reason").map_err(map_err)?;
    let pending: Option<Json<NewCredential>> =
        row.try_get("pending_credential").map_err(map_err)?;
    Ok(Flow {
        id: FlowId(row.try_get("id").map_err(map_err)?),
        user_id: UserId(row.try_get("user_id").map_err(map_err)?),
        flow_type: parsed(row, "flow_type")?,
        state: parsed(row, "state")?,
        version: row.try_get("version").map_err(map_err)?,
        identity: parsed(row, "identity_status")?,
        idv_run_id: row.try_get("idv_run_id").map_err(map_err)?,
        sdk_token_sealed: row.try_get("sdk_token_sealed").map_err(map_err)?,
        possession_done: row.try_get("possession_done").map_err(map_err)?,
        reference_stored: row.try_get("reference_stored").map_err(map_err)?,
        credential_id: row.try_get("credential_id").map_err(map_err)?,
        pending_credential: pending.map(|Json(c)| c),
        failure_reason: failure
            .map(|r| r.parse())
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("flows.failure_reason: {e}")))?,
        transaction_context_sealed: row.try_get("transaction_context_sealed").map_err(map_err)?,
        transaction_context_digest: digest(row)?,
        reference_flow_id: row
            .try_get::<Option<uuid::Uuid>, _>("reference_flow_id")
            .map_err(map_err)?
            .map(FlowId),
        cross_platform: row.try_get("cross_platform").map_err(map_err)?,
        handoff,
        ceremony,
        created_at: row.try_get("created_at").map_err(map_err)?,
        updated_at: row.try_get("updated_at").map_err(map_err)?,
        expires_at: row.try_get("expires_at").map_err(map_err)?,
        completed_at: row.try_get("completed_at").map_err(map_err)?,
    })
}

pub(crate) async fn awaiting_provider(
    db: impl PgExecutor<'_>,
    checked_before: time::OffsetDateTime,
    now: time::OffsetDateTime,
    limit: u32,
) -> StoreResult<Vec<Flow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM flows \
         WHERE state IN ('awaiting_verification', 'in_review') AND idv_run_id IS NOT NULL \
         AND coalesce(provider_checked_at, updated_at) < $1 AND expires_at > $2 \
         ORDER BY coalesce(provider_checked_at, updated_at), id LIMIT $3"
    ))
    .bind(checked_before)
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
    .map_err(map_err)?;
    rows.iter().map(to_flow).collect()
}

pub(crate) async fn mark_provider_checked(
    db: impl PgExecutor<'_>,
    id: FlowId,
    at: time::OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query("UPDATE flows SET provider_checked_at = $2 WHERE id = $1")
        .bind(id.0)
        .bind(at)
        .execute(db)
        .await
        .map(drop)
        .map_err(map_err)
}
