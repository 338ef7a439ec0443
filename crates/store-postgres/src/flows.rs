//! The `flows` table.

use domain::flow::{Ceremony, Flow, FlowId, Handoff, KeyedDigest, NewCredential};
use domain::{
    Conflict, ExternalUserId, FlowLimits, FlowPrerequisites, FlowQuery, StoreError, StoreResult,
    UserId,
};
use sqlx::postgres::{PgExecutor, PgRow};
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use time::{Duration, OffsetDateTime};

use crate::users::{self, COLUMNS as USER_COLUMNS};

use crate::errors::{self, map_err};

const COLUMNS: &str = "id, user_id, flow_type, state, version, identity_status, idv_run_id, sdk_token_sealed, \
    possession_done, reference_stored, credential_id, pending_credential, failure_reason, \
    transaction_context_sealed, transaction_context_hmac, cross_platform, handoff_code_sha256, \
    handoff_expires_at, handoff_claimed_at, created_at, updated_at, expires_at, completed_at, \
    webauthn_ceremony_sealed, webauthn_ceremony_expires_at, transaction_context_key_id, \
    reference_flow_id";

/// Open flows count against the per-user limit; `flows_open_by_user_idx`
/// holds exactly these rows, `flows_runs_by_user_idx` those with an IDV run.
const OPEN_STATES: &str = "('pending', 'awaiting_verification', 'verified', 'in_review')";

/// Pushes onto `sql` the parts of a statement that insert `flow` if the
/// user's limits allow it: `gate` locks the user's row and counts their flows
/// (`flow_insert_gate`, whose counts start after the lock is granted, so
/// concurrent creations for one user are counted one after the other), and
/// `name` inserts the flow where the counts allow it, returning its id.
/// [`errors::insert_refused`] reads what refused it.
pub(crate) fn push_insert<'a>(
    sql: &mut QueryBuilder<'a, Postgres>,
    name: &str,
    flow: &'a Flow,
    limits: &'a FlowLimits,
) {
    let needs_identity = flow.flow_type.needs_identity();
    sql.push("gate AS (SELECT open_flows, idv_runs FROM flow_insert_gate(")
        .push_bind(flow.user_id.0)
        .push(", ")
        .push_bind(limits.now)
        .push(", ")
        .push_bind(limits.now - Duration::days(1))
        .push(", ")
        .push_bind(needs_identity)
        .push(format!(
            ")), {name} AS (INSERT INTO flows ({COLUMNS}) SELECT "
        ));
    let handoff = flow.handoff.as_ref();
    let mut values = sql.separated(", ");
    values
        .push_bind(flow.id.0)
        .push_bind(flow.user_id.0)
        .push_bind(flow.flow_type.as_str())
        .push_bind(flow.state.as_str())
        .push_bind(flow.version)
        .push_bind(flow.identity.as_str())
        .push_bind(flow.idv_run_id.as_deref())
        .push_bind(flow.sdk_token_sealed.as_deref())
        .push_bind(flow.possession_done)
        .push_bind(flow.reference_stored)
        .push_bind(flow.credential_id)
        .push_bind(flow.pending_credential.as_ref().map(Json))
        .push_bind(flow.failure_reason.map(|r| r.as_str()))
        .push_bind(flow.transaction_context_sealed.as_deref())
        .push_bind(
            flow.transaction_context_digest
                .as_ref()
                .map(|d| d.hmac.as_str()),
        )
        .push_bind(flow.cross_platform)
        .push_bind(handoff.map(|h| h.code_sha256.to_vec()))
        .push_bind(handoff.map(|h| h.expires_at))
        .push_bind(handoff.and_then(|h| h.claimed_at))
        .push_bind(flow.created_at)
        .push_bind(flow.updated_at)
        .push_bind(flow.expires_at)
        .push_bind(flow.completed_at)
        .push_bind(flow.ceremony.as_ref().map(|c| c.state_sealed.as_slice()))
        .push_bind(flow.ceremony.as_ref().map(|c| c.expires_at))
        .push_bind(
            flow.transaction_context_digest
                .as_ref()
                .map(|d| d.key_id.as_str()),
        )
        .push_bind(flow.reference_flow_id.map(|f| f.0));
    sql.push(" FROM gate WHERE gate.open_flows < ")
        .push_bind(i64::from(limits.max_open_flows));
    if needs_identity {
        sql.push(" AND gate.idv_runs < ")
            .push_bind(i64::from(limits.max_idv_runs_per_day));
    }
    sql.push(" RETURNING id)");
}

/// Inserts `flow` if the user's limits allow it ([`push_insert`]), in the
/// caller's transaction.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    flow: &Flow,
    limits: &FlowLimits,
) -> StoreResult<()> {
    let mut sql = QueryBuilder::new("WITH ");
    push_insert(&mut sql, "f", flow, limits);
    sql.push(
        " SELECT (SELECT open_flows FROM gate) AS open_flows, \
         EXISTS (SELECT 1 FROM f) AS inserted",
    );
    let row = sql.build().fetch_one(conn).await.map_err(map_err)?;
    if row.try_get::<bool, _>("inserted").map_err(map_err)? {
        return Ok(());
    }
    Err(errors::insert_refused(
        row.try_get("open_flows").map_err(map_err)?,
        limits,
    ))
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

/// Pushes onto `sql` the part of a statement named `name` that writes
/// `flow` only over the version it was derived from, returning its id.
pub(crate) fn push_update<'a>(sql: &mut QueryBuilder<'a, Postgres>, name: &str, flow: &'a Flow) {
    sql.push(format!("{name} AS (UPDATE flows SET state = "))
        .push_bind(flow.state.as_str())
        .push(", version = ")
        .push_bind(flow.version)
        .push(", identity_status = ")
        .push_bind(flow.identity.as_str())
        .push(", idv_run_id = ")
        .push_bind(flow.idv_run_id.as_deref())
        .push(", sdk_token_sealed = ")
        .push_bind(flow.sdk_token_sealed.as_deref())
        .push(", possession_done = ")
        .push_bind(flow.possession_done)
        .push(", reference_stored = ")
        .push_bind(flow.reference_stored)
        .push(", credential_id = ")
        .push_bind(flow.credential_id)
        .push(", pending_credential = ")
        .push_bind(flow.pending_credential.as_ref().map(Json))
        .push(", failure_reason = ")
        .push_bind(flow.failure_reason.map(|r| r.as_str()))
        .push(", handoff_claimed_at = ")
        .push_bind(flow.handoff.as_ref().and_then(|h| h.claimed_at))
        .push(", updated_at = ")
        .push_bind(flow.updated_at)
        .push(", completed_at = ")
        .push_bind(flow.completed_at)
        .push(", webauthn_ceremony_sealed = ")
        .push_bind(flow.ceremony.as_ref().map(|c| c.state_sealed.as_slice()))
        .push(", webauthn_ceremony_expires_at = ")
        .push_bind(flow.ceremony.as_ref().map(|c| c.expires_at))
        .push(" WHERE id = ")
        .push_bind(flow.id.0)
        .push(" AND version = ")
        .push_bind(flow.version - 1)
        .push(" RETURNING id)");
}

/// The refusal of [`push_update`] (and [`update`]).
pub(crate) fn stale_version() -> StoreError {
    StoreError::Conflict(Conflict::FlowVersion)
}

/// Writes `flow` only over the version it was derived from ([`push_update`]),
/// in the caller's transaction.
pub(crate) async fn update(conn: &mut PgConnection, flow: &Flow) -> StoreResult<()> {
    let mut sql = QueryBuilder::new("WITH ");
    push_update(&mut sql, "f", flow);
    sql.push(" SELECT EXISTS (SELECT 1 FROM f)");
    let updated: bool = sql
        .build_query_scalar()
        .fetch_one(conn)
        .await
        .map_err(map_err)?;
    if updated {
        Ok(())
    } else {
        Err(stale_version())
    }
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

/// A user's flows by type and by the state each reads as at `query.now`
/// (an open flow past its expiry reads `expired`), newest first, over
/// `flows_user_idx`.
pub(crate) async fn search(db: impl PgExecutor<'_>, query: &FlowQuery) -> StoreResult<Vec<Flow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM flows WHERE user_id = $1 \
         AND ($2::text IS NULL OR flow_type = $2) \
         AND ($3::text IS NULL OR CASE WHEN state IN {OPEN_STATES} AND expires_at <= $4 \
         THEN 'expired' ELSE state END = $3) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    ))
    .bind(query.user.0)
    .bind(query.flow_type.map(|t| t.as_str()))
    .bind(query.state.map(|s| s.as_str()))
    .bind(query.now)
    .bind(i64::from(query.limit))
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

pub(crate) async fn awaiting_run_lookup(
    db: impl PgExecutor<'_>,
    failed_before: time::OffsetDateTime,
    limit: u32,
) -> StoreResult<Vec<Flow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM flows \
         WHERE run_lookup_pending AND updated_at < $1 \
         ORDER BY updated_at, id LIMIT $2"
    ))
    .bind(failed_before)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
    .map_err(map_err)?;
    rows.iter().map(to_flow).collect()
}

pub(crate) async fn set_run_lookup(
    db: impl PgExecutor<'_>,
    id: FlowId,
    pending: bool,
) -> StoreResult<()> {
    sqlx::query("UPDATE flows SET run_lookup_pending = $2 WHERE id = $1")
        .bind(id.0)
        .bind(pending)
        .execute(db)
        .await
        .map(drop)
        .map_err(map_err)
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
