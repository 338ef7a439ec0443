//! The `credentials` and `biometric_references` tables.

use domain::credential::{Credential, CredentialStatus, RegisteredPasskey, WebAuthnId};
use domain::custody::BiometricReference;
use domain::flow::FlowId;
use domain::{Conflict, StoreError, StoreResult, UserId};
use sqlx::postgres::{PgExecutor, PgRow};
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;

const COLUMNS: &str = "id, user_id, webauthn_id, public_key, aaguid, sign_count, transports, backup_eligible, \
    backup_state, platform, device_label, created_by_flow, status, status_reason, created_at, updated_at, last_used_at, \
    passkey";

pub(crate) async fn insert(conn: &mut PgConnection, c: &Credential) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO credentials ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    ))
    .bind(c.id)
    .bind(c.user_id.0)
    .bind(c.webauthn_id.as_str())
    .bind(c.public_key.as_deref())
    .bind(c.aaguid)
    .bind(i64::from(c.sign_count))
    .bind(Json(&c.transports))
    .bind(c.backup_eligible)
    .bind(c.backup_state)
    .bind(c.platform.as_deref())
    .bind(c.device_label.as_deref())
    .bind(c.created_by_flow.0)
    .bind(c.status.as_str())
    .bind(c.status_reason.as_deref())
    .bind(c.created_at)
    .bind(c.updated_at)
    .bind(c.last_used_at)
    .bind(c.passkey.as_ref().map(Json))
    .execute(conn)
    .await
    .map(drop)
    .map_err(map_err)
}

fn changed() -> StoreError {
    StoreError::Conflict(Conflict::CredentialState)
}

/// Records a use only while the credential is active and its counter grows.
/// Records a use. With `sign_count`, only if the counter grows (or both are
/// zero); without one (a regression let through by the `warn` policy), the
/// stored counter is kept. Either way only while the credential is active.
pub(crate) async fn record_use(
    conn: &mut PgConnection,
    id: Uuid,
    sign_count: Option<u32>,
    backup_state: bool,
    at: OffsetDateTime,
) -> StoreResult<()> {
    let updated = sqlx::query(
        "UPDATE credentials SET sign_count = COALESCE($2, sign_count), backup_state = $3, \
         last_used_at = $4, updated_at = $4 \
         WHERE id = $1 AND status = 'active' \
         AND ($2 IS NULL OR $2 > sign_count OR (sign_count = 0 AND $2 = 0))",
    )
    .bind(id)
    .bind(sign_count.map(i64::from))
    .bind(backup_state)
    .bind(at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    if updated.rows_affected() == 0 {
        return Err(changed());
    }
    Ok(())
}

pub(crate) async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    from: CredentialStatus,
    to: CredentialStatus,
    reason: Option<&str>,
    at: OffsetDateTime,
) -> StoreResult<()> {
    let updated = sqlx::query(
        "UPDATE credentials SET status = $3, status_reason = $4, updated_at = $5 WHERE id = $1 AND status = $2",
    )
    .bind(id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(reason)
    .bind(at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    if updated.rows_affected() == 0 {
        return Err(changed());
    }
    Ok(())
}

pub(crate) async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> StoreResult<Credential> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM credentials WHERE id = $1"))
        .bind(id)
        .fetch_one(db)
        .await
        .map_err(map_err)?;
    to_credential(&row)
}

pub(crate) async fn by_webauthn_id(
    db: impl PgExecutor<'_>,
    webauthn_id: &str,
) -> StoreResult<Credential> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM credentials WHERE webauthn_id = $1"
    ))
    .bind(webauthn_id)
    .fetch_one(db)
    .await
    .map_err(map_err)?;
    to_credential(&row)
}

/// The user's credentials, oldest first; with `live_only`, not the revoked
/// ones (served by `credentials_live_by_user_idx`).
pub(crate) async fn of_user(
    db: impl PgExecutor<'_>,
    user: UserId,
    live_only: bool,
) -> StoreResult<Vec<Credential>> {
    let live = if live_only {
        " AND status <> 'revoked'"
    } else {
        ""
    };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM credentials WHERE user_id = $1{live} ORDER BY created_at, id"
    ))
    .bind(user.0)
    .fetch_all(db)
    .await
    .map_err(map_err)?;
    rows.iter().map(to_credential).collect()
}

pub(crate) async fn has_active(db: impl PgExecutor<'_>, user: UserId) -> StoreResult<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM credentials WHERE user_id = $1 AND status = 'active')",
    )
    .bind(user.0)
    .fetch_one(db)
    .await
    .map_err(map_err)
}

fn to_credential(row: &PgRow) -> StoreResult<Credential> {
    let corrupt = |column: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("credentials.{column}: {e}"))
    };
    let webauthn_id: String = row.try_get("webauthn_id").map_err(map_err)?;
    let status: String = row.try_get("status").map_err(map_err)?;
    let sign_count: i64 = row.try_get("sign_count").map_err(map_err)?;
    let Json(transports): Json<Vec<String>> = row.try_get("transports").map_err(map_err)?;
    let passkey: Option<Json<RegisteredPasskey>> = row.try_get("passkey").map_err(map_err)?;
    Ok(Credential {
        id: row.try_get("id").map_err(map_err)?,
        user_id: UserId(row.try_get("user_id").map_err(map_err)?),
        webauthn_id: WebAuthnId::parse(&webauthn_id).map_err(|e| corrupt("webauthn_id", &e))?,
        public_key: row.try_get("public_key").map_err(map_err)?,
        aaguid: row.try_get("aaguid").map_err(map_err)?,
        sign_count: u32::try_from(sign_count).map_err(|e| corrupt("sign_count", &e))?,
        transports,
        backup_eligible: row.try_get("backup_eligible").map_err(map_err)?,
        backup_state: row.try_get("backup_state").map_err(map_err)?,
        platform: row.try_get("platform").map_err(map_err)?,
        device_label: row.try_get("device_label").map_err(map_err)?,
        passkey: passkey.map(|Json(p)| p),
        created_by_flow: FlowId(row.try_get("created_by_flow").map_err(map_err)?),
        status: status.parse().map_err(|e| corrupt("status", &e))?,
        status_reason: row.try_get("status_reason").map_err(map_err)?,
        created_at: row.try_get("created_at").map_err(map_err)?,
        updated_at: row.try_get("updated_at").map_err(map_err)?,
        last_used_at: row.try_get("last_used_at").map_err(map_err)?,
    })
}

/// The user's first reference: [`Conflict::ReferenceExists`] when they have
/// one.
pub(crate) async fn enrol_reference(
    conn: &mut PgConnection,
    r: &BiometricReference,
) -> StoreResult<()> {
    let inserted = sqlx::query(
        "INSERT INTO biometric_references (user_id, sealed, created_by_flow, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(r.user_id.0)
    .bind(&r.sealed)
    .bind(r.created_by_flow.0)
    .bind(r.created_at)
    .execute(conn)
    .await
    .map_err(map_err)?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::Conflict(Conflict::ReferenceExists));
    }
    Ok(())
}

/// [`Conflict::CredentialNotActive`] unless the credential is
/// active; the row is locked until the transaction ends, so a suspension
/// waits for the completion that relied on it, or wins before it.
pub(crate) async fn require_active(conn: &mut PgConnection, id: Uuid) -> StoreResult<()> {
    let active: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM credentials WHERE id = $1 AND status = 'active' FOR SHARE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(map_err)?;
    match active {
        Some(_) => Ok(()),
        None => Err(StoreError::Conflict(Conflict::CredentialNotActive)),
    }
}

/// Revokes the user's credentials that are not revoked, but `keep`; the ids
/// revoked. Run under the user's lock.
pub(crate) async fn revoke_others(
    conn: &mut PgConnection,
    user: UserId,
    keep: Uuid,
    reason: &str,
    at: OffsetDateTime,
) -> StoreResult<Vec<Uuid>> {
    sqlx::query_scalar(
        "UPDATE credentials SET status = 'revoked', status_reason = $3, updated_at = $4 \
         WHERE user_id = $1 AND id <> $2 AND status <> 'revoked' RETURNING id",
    )
    .bind(user.0)
    .bind(keep)
    .bind(reason)
    .bind(at)
    .fetch_all(conn)
    .await
    .map_err(map_err)
}

pub(crate) async fn store_reference(
    conn: &mut PgConnection,
    r: &BiometricReference,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO biometric_references (user_id, sealed, created_by_flow, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id) DO UPDATE SET sealed = EXCLUDED.sealed, \
         created_by_flow = EXCLUDED.created_by_flow, created_at = EXCLUDED.created_at",
    )
    .bind(r.user_id.0)
    .bind(&r.sealed)
    .bind(r.created_by_flow.0)
    .bind(r.created_at)
    .execute(conn)
    .await
    .map(drop)
    .map_err(map_err)
}

pub(crate) async fn reference_of(
    db: impl PgExecutor<'_>,
    user: UserId,
) -> StoreResult<BiometricReference> {
    let (sealed, created_by_flow, created_at): (Vec<u8>, Uuid, OffsetDateTime) = sqlx::query_as(
        "SELECT sealed, created_by_flow, created_at FROM biometric_references WHERE user_id = $1",
    )
    .bind(user.0)
    .fetch_one(db)
    .await
    .map_err(map_err)?;
    Ok(BiometricReference {
        user_id: user,
        sealed,
        created_by_flow: FlowId(created_by_flow),
        created_at,
    })
}
