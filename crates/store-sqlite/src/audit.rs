//! The `audit_events` table.

use crate::StorePool;
use domain::{
    Actor, AuditEvent, AuditQuery, NewAuditEvent, Page, Pseudonym, StoreError, StoreResult,
    Subject, UserId,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, SqliteConnection};

use crate::codec::{from_micros, to_micros, uuid_from};
use crate::errors::map_err;

pub(crate) async fn insert(conn: &mut SqliteConnection, e: &NewAuditEvent) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, occurred_at, event_type, actor_kind, actor_id, user_id, \
         user_pseudonym, credential_id, flow_id, outcome, reason, correlation_id, details) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.id.as_bytes().as_slice())
    .bind(to_micros(e.occurred_at))
    .bind(e.event_type.as_str())
    .bind(e.actor.kind())
    .bind(e.actor.id())
    .bind(e.subject.user_id.map(|u| u.0.as_bytes().to_vec()))
    .bind(e.subject.user_pseudonym.as_ref().map(Pseudonym::as_str))
    .bind(e.subject.credential_id.map(|c| c.as_bytes().to_vec()))
    .bind(e.subject.flow_id.map(|f| f.as_bytes().to_vec()))
    .bind(e.outcome.as_str())
    .bind(e.reason.as_deref())
    .bind(e.correlation_id.as_deref())
    .bind(e.details.to_string())
    .execute(conn)
    .await
    .map(drop)
    .map_err(map_err)
}

pub(crate) async fn search(pool: &StorePool, q: &AuditQuery) -> StoreResult<Page<AuditEvent, i64>> {
    let mut sql = QueryBuilder::new(
        "SELECT seq, id, occurred_at, event_type, actor_kind, actor_id, user_id, user_pseudonym, \
         credential_id, flow_id, outcome, reason, correlation_id, details FROM audit_events WHERE 1",
    );
    if let Some(user) = q.user_id {
        sql.push(" AND user_id = ")
            .push_bind(user.0.as_bytes().to_vec());
    }
    if let Some(flow) = q.flow_id {
        sql.push(" AND flow_id = ")
            .push_bind(flow.as_bytes().to_vec());
    }
    if let Some(credential) = q.credential_id {
        sql.push(" AND credential_id = ")
            .push_bind(credential.as_bytes().to_vec());
    }
    if let Some(t) = q.event_type {
        sql.push(" AND event_type = ").push_bind(t.as_str());
    }
    if let Some(from) = q.occurred_from {
        sql.push(" AND occurred_at >= ").push_bind(to_micros(from));
    }
    if let Some(before) = q.occurred_before {
        sql.push(" AND occurred_at < ").push_bind(to_micros(before));
    }
    if let Some(seq) = q.before_seq {
        sql.push(" AND seq < ").push_bind(seq);
    }
    sql.push(" ORDER BY seq DESC LIMIT ")
        .push_bind(i64::from(q.limit) + 1);
    let rows = sql.build().fetch_all(pool).await.map_err(map_err)?;
    let items = rows.iter().map(to_event).collect::<StoreResult<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, q.limit, |e| e.seq))
}

fn opt_uuid(row: &SqliteRow, column: &str) -> StoreResult<Option<uuid::Uuid>> {
    row.try_get::<Option<Vec<u8>>, _>(column)
        .map_err(map_err)?
        .map(|b| uuid_from(&b, column))
        .transpose()
}

pub(crate) fn to_event(row: &SqliteRow) -> StoreResult<AuditEvent> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("audit_events.{what}: {e}"))
    };
    let event_type: String = row.try_get("event_type").map_err(map_err)?;
    let actor_kind: String = row.try_get("actor_kind").map_err(map_err)?;
    let outcome: String = row.try_get("outcome").map_err(map_err)?;
    let id: Vec<u8> = row.try_get("id").map_err(map_err)?;
    let details: String = row.try_get("details").map_err(map_err)?;
    Ok(AuditEvent {
        seq: row.try_get("seq").map_err(map_err)?,
        event: NewAuditEvent {
            id: uuid_from(&id, "audit_events.id")?,
            occurred_at: from_micros(
                row.try_get("occurred_at").map_err(map_err)?,
                "audit_events.occurred_at",
            )?,
            event_type: event_type.parse().map_err(|e| corrupt("event_type", &e))?,
            actor: Actor::from_parts(&actor_kind, row.try_get("actor_id").map_err(map_err)?)
                .map_err(|e| corrupt("actor_kind", &e))?,
            subject: Subject {
                user_id: opt_uuid(row, "user_id")?.map(UserId),
                user_pseudonym: row
                    .try_get::<Option<String>, _>("user_pseudonym")
                    .map_err(map_err)?
                    .map(Pseudonym::from_stored),
                credential_id: opt_uuid(row, "credential_id")?,
                flow_id: opt_uuid(row, "flow_id")?,
            },
            outcome: outcome.parse().map_err(|e| corrupt("outcome", &e))?,
            reason: row.try_get("reason").map_err(map_err)?,
            correlation_id: row.try_get("correlation_id").map_err(map_err)?,
            details: serde_json::from_str(&details).map_err(|e| corrupt("details", &e))?,
        },
    })
}
