//! The `audit_events` table (partitioned by month).

use crate::StorePool;
use domain::{
    Actor, AuditEvent, AuditQuery, NewAuditEvent, Page, Pseudonym, StoreError, StoreResult,
    Subject, UserId,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use crate::errors::map_err;

pub(crate) async fn insert(conn: &mut PgConnection, e: &NewAuditEvent) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, occurred_at, event_type, actor_kind, actor_id, user_id, \
         user_pseudonym, credential_id, flow_id, outcome, reason, correlation_id, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(e.id)
    .bind(e.occurred_at)
    .bind(e.event_type.as_str())
    .bind(e.actor.kind())
    .bind(e.actor.id())
    .bind(e.subject.user_id.map(|u| u.0))
    .bind(e.subject.user_pseudonym.as_ref().map(Pseudonym::as_str))
    .bind(e.subject.credential_id)
    .bind(e.subject.flow_id)
    .bind(e.outcome.as_str())
    .bind(e.reason.as_deref())
    .bind(e.correlation_id.as_deref())
    .bind(&e.details)
    .execute(conn)
    .await
    .map(drop)
    .map_err(map_err)
}

/// Inserts a change's events with one statement, in their order (each takes
/// the next position in the trail): one round trip however many there are.
pub(crate) async fn insert_all(
    conn: &mut PgConnection,
    events: &[NewAuditEvent],
) -> StoreResult<()> {
    match events {
        [] => Ok(()),
        [one] => insert(conn, one).await,
        many => {
            let column = |f: fn(&NewAuditEvent) -> Option<&str>| -> Vec<Option<&str>> {
                many.iter().map(f).collect()
            };
            sqlx::query(
                "INSERT INTO audit_events (id, occurred_at, event_type, actor_kind, actor_id, user_id, \
                 user_pseudonym, credential_id, flow_id, outcome, reason, correlation_id, details) \
                 SELECT id, occurred_at, event_type, actor_kind, actor_id, user_id, user_pseudonym, \
                 credential_id, flow_id, outcome, reason, correlation_id, details \
                 FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], \
                 $6::uuid[], $7::text[], $8::uuid[], $9::uuid[], $10::text[], $11::text[], \
                 $12::text[], $13::jsonb[]) WITH ORDINALITY AS e (id, occurred_at, event_type, \
                 actor_kind, actor_id, user_id, user_pseudonym, credential_id, flow_id, outcome, \
                 reason, correlation_id, details, position) ORDER BY position",
            )
            .bind(many.iter().map(|e| e.id).collect::<Vec<_>>())
            .bind(many.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
            .bind(column(|e| Some(e.event_type.as_str())))
            .bind(column(|e| Some(e.actor.kind())))
            .bind(column(|e| e.actor.id()))
            .bind(many.iter().map(|e| e.subject.user_id.map(|u| u.0)).collect::<Vec<_>>())
            .bind(column(|e| e.subject.user_pseudonym.as_ref().map(Pseudonym::as_str)))
            .bind(many.iter().map(|e| e.subject.credential_id).collect::<Vec<_>>())
            .bind(many.iter().map(|e| e.subject.flow_id).collect::<Vec<_>>())
            .bind(column(|e| Some(e.outcome.as_str())))
            .bind(column(|e| e.reason.as_deref()))
            .bind(column(|e| e.correlation_id.as_deref()))
            .bind(many.iter().map(|e| &e.details).collect::<Vec<_>>())
            .execute(conn)
            .await
            .map(drop)
            .map_err(map_err)
        }
    }
}

/// Pushes onto `sql` an insertion of `events` in their order, written only
/// where `condition` (SQL over the statement's other parts) holds: how a
/// change written as one statement (`change.rs`) adds its events.
pub(crate) fn push_insert_all<'a>(
    sql: &mut QueryBuilder<'a, Postgres>,
    events: &'a [NewAuditEvent],
    condition: &str,
) {
    let column = |f: fn(&NewAuditEvent) -> Option<&str>| -> Vec<Option<&str>> {
        events.iter().map(f).collect()
    };
    sql.push(
        "INSERT INTO audit_events (id, occurred_at, event_type, actor_kind, actor_id, user_id, \
         user_pseudonym, credential_id, flow_id, outcome, reason, correlation_id, details) \
         SELECT id, occurred_at, event_type, actor_kind, actor_id, user_id, user_pseudonym, \
         credential_id, flow_id, outcome, reason, correlation_id, details FROM unnest(",
    );
    sql.push_bind(events.iter().map(|e| e.id).collect::<Vec<_>>())
        .push("::uuid[], ")
        .push_bind(events.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
        .push("::timestamptz[], ")
        .push_bind(column(|e| Some(e.event_type.as_str())))
        .push("::text[], ")
        .push_bind(column(|e| Some(e.actor.kind())))
        .push("::text[], ")
        .push_bind(column(|e| e.actor.id()))
        .push("::text[], ")
        .push_bind(
            events
                .iter()
                .map(|e| e.subject.user_id.map(|u| u.0))
                .collect::<Vec<_>>(),
        )
        .push("::uuid[], ")
        .push_bind(column(|e| {
            e.subject.user_pseudonym.as_ref().map(Pseudonym::as_str)
        }))
        .push("::text[], ")
        .push_bind(
            events
                .iter()
                .map(|e| e.subject.credential_id)
                .collect::<Vec<_>>(),
        )
        .push("::uuid[], ")
        .push_bind(events.iter().map(|e| e.subject.flow_id).collect::<Vec<_>>())
        .push("::uuid[], ")
        .push_bind(column(|e| Some(e.outcome.as_str())))
        .push("::text[], ")
        .push_bind(column(|e| e.reason.as_deref()))
        .push("::text[], ")
        .push_bind(column(|e| e.correlation_id.as_deref()))
        .push("::text[], ")
        .push_bind(events.iter().map(|e| &e.details).collect::<Vec<_>>())
        .push(
            "::jsonb[]) WITH ORDINALITY AS e (id, occurred_at, event_type, actor_kind, actor_id, \
             user_id, user_pseudonym, credential_id, flow_id, outcome, reason, correlation_id, \
             details, position) WHERE ",
        )
        .push(condition)
        .push(" ORDER BY position");
}

/// The columns [`to_event`] decodes.
pub(crate) const COLUMNS: &str = "seq, id, occurred_at, event_type, actor_kind, actor_id, user_id, \
     user_pseudonym, credential_id, flow_id, outcome, reason, correlation_id, details";

pub(crate) async fn search(pool: &StorePool, q: &AuditQuery) -> StoreResult<Page<AuditEvent, i64>> {
    let mut sql = QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit_events WHERE TRUE"));
    if let Some(user) = q.user_id {
        sql.push(" AND user_id = ").push_bind(user.0);
    }
    if let Some(flow) = q.flow_id {
        sql.push(" AND flow_id = ").push_bind(flow);
    }
    if let Some(credential) = q.credential_id {
        sql.push(" AND credential_id = ").push_bind(credential);
    }
    if let Some(t) = q.event_type {
        sql.push(" AND event_type = ").push_bind(t.as_str());
    }
    if let Some(from) = q.occurred_from {
        sql.push(" AND occurred_at >= ").push_bind(from);
    }
    if let Some(before) = q.occurred_before {
        sql.push(" AND occurred_at < ").push_bind(before);
    }
    if let Some(seq) = q.before_seq {
        sql.push(" AND seq < ").push_bind(seq);
    }
    // One row more than asked tells whether another page exists.
    sql.push(" ORDER BY seq DESC LIMIT ")
        .push_bind(i64::from(q.limit) + 1);
    let rows = sql.build().fetch_all(pool).await.map_err(map_err)?;
    let items = rows.iter().map(to_event).collect::<StoreResult<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, q.limit, |e| e.seq))
}

pub(crate) fn to_event(row: &PgRow) -> StoreResult<AuditEvent> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("audit_events.{what}: {e}"))
    };
    let event_type: String = row.try_get("event_type").map_err(map_err)?;
    let actor_kind: String = row.try_get("actor_kind").map_err(map_err)?;
    let outcome: String = row.try_get("outcome").map_err(map_err)?;
    Ok(AuditEvent {
        seq: row.try_get("seq").map_err(map_err)?,
        event: NewAuditEvent {
            id: row.try_get("id").map_err(map_err)?,
            occurred_at: row.try_get("occurred_at").map_err(map_err)?,
            event_type: event_type.parse().map_err(|e| corrupt("event_type", &e))?,
            actor: Actor::from_parts(&actor_kind, row.try_get("actor_id").map_err(map_err)?)
                .map_err(|e| corrupt("actor_kind", &e))?,
            subject: Subject {
                user_id: row
                    .try_get::<Option<uuid::Uuid>, _>("user_id")
                    .map_err(map_err)?
                    .map(UserId),
                user_pseudonym: row
                    .try_get::<Option<String>, _>("user_pseudonym")
                    .map_err(map_err)?
                    .map(Pseudonym::from_stored),
                credential_id: row.try_get("credential_id").map_err(map_err)?,
                flow_id: row.try_get("flow_id").map_err(map_err)?,
            },
            outcome: outcome.parse().map_err(|e| corrupt("outcome", &e))?,
            reason: row.try_get("reason").map_err(map_err)?,
            correlation_id: row.try_get("correlation_id").map_err(map_err)?,
            details: row.try_get("details").map_err(map_err)?,
        },
    })
}
