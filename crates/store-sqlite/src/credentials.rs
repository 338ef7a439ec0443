//! The `credentials` and `biometric_references` tables.

use domain::credential::{Credential, CredentialStatus, WebAuthnId};
use domain::custody::BiometricReference;
use domain::flow::FlowId;
use domain::{Conflict, StoreError, StoreResult, UserId};
use sqlx::sqlite::{SqliteExecutor, SqliteRow};
use sqlx::{Row, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::codec::{
    from_micros, opt_from_micros, opt_micros, opt_uuid_from, to_micros, uuid_bytes, uuid_from,
};
use crate::errors::map_err;

const COLUMNS: &str = "id, user_id, webauthn_id, public_key, aaguid, sign_count, transports, backup_eligible, \
    backup_state, platform, device_label, created_by_flow, status, status_reason, created_at, updated_at, last_used_at, \
    passkey";

pub(crate) async fn insert(conn: &mut SqliteConnection, c: &Credential) -> StoreResult<()> {
    let transports =
        serde_json::to_string(&c.transports).map_err(|e| StoreError::Other(e.to_string()))?;
    let passkey = c
        .passkey
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Other(e.to_string()))?;
    sqlx::query(&format!(
        "INSERT INTO credentials ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(uuid_bytes(c.id))
    .bind(uuid_bytes(c.user_id.0))
    .bind(c.webauthn_id.as_str())
    .bind(c.public_key.as_deref())
    .bind(c.aaguid.map(uuid_bytes))
    .bind(i64::from(c.sign_count))
    .bind(transports)
    .bind(c.backup_eligible)
    .bind(c.backup_state)
    .bind(c.platform.as_deref())
    .bind(c.device_label.as_deref())
    .bind(uuid_bytes(c.created_by_flow.0))
    .bind(c.status.as_str())
    .bind(c.status_reason.as_deref())
    .bind(to_micros(c.created_at))
    .bind(to_micros(c.updated_at))
    .bind(opt_micros(c.last_used_at))
    .bind(passkey)
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
    conn: &mut SqliteConnection,
    id: Uuid,
    sign_count: Option<u32>,
    backup_state: bool,
    at: OffsetDateTime,
) -> StoreResult<()> {
    let updated = sqlx::query(
        "UPDATE credentials SET sign_count = COALESCE(?1, sign_count), backup_state = ?2, \
         last_used_at = ?3, updated_at = ?3 \
         WHERE id = ?4 AND status = 'active' \
         AND (?1 IS NULL OR ?1 > sign_count OR (sign_count = 0 AND ?1 = 0))",
    )
    .bind(sign_count.map(i64::from))
    .bind(backup_state)
    .bind(to_micros(at))
    .bind(uuid_bytes(id))
    .execute(conn)
    .await
    .map_err(map_err)?;
    if updated.rows_affected() == 0 {
        return Err(changed());
    }
    Ok(())
}

pub(crate) async fn set_status(
    conn: &mut SqliteConnection,
    id: Uuid,
    from: CredentialStatus,
    to: CredentialStatus,
    reason: Option<&str>,
    at: OffsetDateTime,
) -> StoreResult<()> {
    let updated = sqlx::query(
        "UPDATE credentials SET status = ?, status_reason = ?, updated_at = ? WHERE id = ? AND status = ?",
    )
    .bind(to.as_str())
    .bind(reason)
    .bind(to_micros(at))
    .bind(uuid_bytes(id))
    .bind(from.as_str())
    .execute(conn)
    .await
    .map_err(map_err)?;
    if updated.rows_affected() == 0 {
        return Err(changed());
    }
    Ok(())
}

pub(crate) async fn by_id(db: impl SqliteExecutor<'_>, id: Uuid) -> StoreResult<Credential> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM credentials WHERE id = ?"))
        .bind(uuid_bytes(id))
        .fetch_one(db)
        .await
        .map_err(map_err)?;
    to_credential(&row)
}

pub(crate) async fn by_webauthn_id(
    db: impl SqliteExecutor<'_>,
    webauthn_id: &str,
) -> StoreResult<Credential> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM credentials WHERE webauthn_id = ?"
    ))
    .bind(webauthn_id)
    .fetch_one(db)
    .await
    .map_err(map_err)?;
    to_credential(&row)
}

pub(crate) async fn has_active(db: impl SqliteExecutor<'_>, user: UserId) -> StoreResult<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM credentials WHERE user_id = ? AND status = 'active')",
    )
    .bind(uuid_bytes(user.0))
    .fetch_one(db)
    .await
    .map_err(map_err)
}

/// The user's credentials, oldest first; with `live_only`, not the revoked
/// ones (served by `credentials_live_by_user_idx`).
pub(crate) async fn of_user(
    db: impl SqliteExecutor<'_>,
    user: UserId,
    live_only: bool,
) -> StoreResult<Vec<Credential>> {
    let live = if live_only {
        " AND status <> 'revoked'"
    } else {
        ""
    };
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM credentials WHERE user_id = ?{live} ORDER BY created_at, id"
    ))
    .bind(uuid_bytes(user.0))
    .fetch_all(db)
    .await
    .map_err(map_err)?;
    rows.iter().map(to_credential).collect()
}

fn to_credential(row: &SqliteRow) -> StoreResult<Credential> {
    let corrupt = |column: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("credentials.{column}: {e}"))
    };
    let id: Vec<u8> = row.try_get("id").map_err(map_err)?;
    let user_id: Vec<u8> = row.try_get("user_id").map_err(map_err)?;
    let flow: Vec<u8> = row.try_get("created_by_flow").map_err(map_err)?;
    let webauthn_id: String = row.try_get("webauthn_id").map_err(map_err)?;
    let status: String = row.try_get("status").map_err(map_err)?;
    let sign_count: i64 = row.try_get("sign_count").map_err(map_err)?;
    let transports: String = row.try_get("transports").map_err(map_err)?;
    let passkey: Option<String> = row.try_get("passkey").map_err(map_err)?;
    Ok(Credential {
        id: uuid_from(&id, "credentials.id")?,
        user_id: UserId(uuid_from(&user_id, "credentials.user_id")?),
        webauthn_id: WebAuthnId::parse(&webauthn_id).map_err(|e| corrupt("webauthn_id", &e))?,
        public_key: row.try_get("public_key").map_err(map_err)?,
        aaguid: opt_uuid_from(
            row.try_get("aaguid").map_err(map_err)?,
            "credentials.aaguid",
        )?,
        sign_count: u32::try_from(sign_count).map_err(|e| corrupt("sign_count", &e))?,
        transports: serde_json::from_str(&transports).map_err(|e| corrupt("transports", &e))?,
        backup_eligible: row.try_get("backup_eligible").map_err(map_err)?,
        backup_state: row.try_get("backup_state").map_err(map_err)?,
        platform: row.try_get("platform").map_err(map_err)?,
        device_label: row.try_get("device_label").map_err(map_err)?,
        passkey: passkey
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|e| corrupt("passkey", &e))?,
        created_by_flow: FlowId(uuid_from(&flow, "credentials.created_by_flow")?),
        status: status.parse().map_err(|e| corrupt("status", &e))?,
        status_reason: row.try_get("status_reason").map_err(map_err)?,
        created_at: from_micros(
            row.try_get("created_at").map_err(map_err)?,
            "credentials.created_at",
        )?,
        updated_at: from_micros(
            row.try_get("updated_at").map_err(map_err)?,
            "credentials.updated_at",
        )?,
        last_used_at: opt_from_micros(
            row.try_get("last_used_at").map_err(map_err)?,
            "credentials.last_used_at",
        )?,
    })
}

/// The user's first reference: [`Conflict::ReferenceExists`] when they have
/// one.
pub(crate) async fn enrol_reference(
    conn: &mut SqliteConnection,
    r: &BiometricReference,
) -> StoreResult<()> {
    let inserted = sqlx::query(
        "INSERT INTO biometric_references (user_id, sealed, created_by_flow, created_at) \
         VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(uuid_bytes(r.user_id.0))
    .bind(&r.sealed)
    .bind(uuid_bytes(r.created_by_flow.0))
    .bind(to_micros(r.created_at))
    .execute(conn)
    .await
    .map_err(map_err)?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::Conflict(Conflict::ReferenceExists));
    }
    Ok(())
}

/// [`Conflict::CredentialNotActive`] unless the credential is
/// active (the write transaction holds the database's write lock).
pub(crate) async fn require_active(conn: &mut SqliteConnection, id: Uuid) -> StoreResult<()> {
    let active: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM credentials WHERE id = ? AND status = 'active'")
            .bind(uuid_bytes(id))
            .fetch_optional(conn)
            .await
            .map_err(map_err)?;
    match active {
        Some(_) => Ok(()),
        None => Err(StoreError::Conflict(Conflict::CredentialNotActive)),
    }
}

/// Revokes the user's credentials that are not revoked, but `keep`; the ids
/// revoked.
pub(crate) async fn revoke_others(
    conn: &mut SqliteConnection,
    user: UserId,
    keep: Uuid,
    reason: &str,
    at: OffsetDateTime,
) -> StoreResult<Vec<Uuid>> {
    let ids: Vec<Vec<u8>> = sqlx::query_scalar(
        "UPDATE credentials SET status = 'revoked', status_reason = ?3, updated_at = ?4 \
         WHERE user_id = ?1 AND id <> ?2 AND status <> 'revoked' RETURNING id",
    )
    .bind(uuid_bytes(user.0))
    .bind(uuid_bytes(keep))
    .bind(reason)
    .bind(to_micros(at))
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    ids.iter()
        .map(|id| uuid_from(id, "credentials.id"))
        .collect()
}

pub(crate) async fn store_reference(
    conn: &mut SqliteConnection,
    r: &BiometricReference,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO biometric_references (user_id, sealed, created_by_flow, created_at) VALUES (?, ?, ?, ?) \
         ON CONFLICT (user_id) DO UPDATE SET sealed = excluded.sealed, \
         created_by_flow = excluded.created_by_flow, created_at = excluded.created_at",
    )
    .bind(uuid_bytes(r.user_id.0))
    .bind(&r.sealed)
    .bind(uuid_bytes(r.created_by_flow.0))
    .bind(to_micros(r.created_at))
    .execute(conn)
    .await
    .map(drop)
    .map_err(map_err)
}

pub(crate) async fn reference_of(
    db: impl SqliteExecutor<'_>,
    user: UserId,
) -> StoreResult<BiometricReference> {
    let (sealed, created_by_flow, created_at): (Vec<u8>, Vec<u8>, i64) = sqlx::query_as(
        "SELECT sealed, created_by_flow, created_at FROM biometric_references WHERE user_id = ?",
    )
    .bind(uuid_bytes(user.0))
    .fetch_one(db)
    .await
    .map_err(map_err)?;
    Ok(BiometricReference {
        user_id: user,
        sealed,
        created_by_flow: FlowId(uuid_from(
            &created_by_flow,
            "biometric_references.created_by_flow",
        )?),
        created_at: from_micros(created_at, "biometric_references.created_at")?,
    })
}
