//! The overview's counts, each read from an index that holds every column it
//! needs (migration 0016).

use domain::overview::{
    EventCount, FlowCount, OPEN_STATES, Overview, OverviewQuery, overview_events_sql,
};
use domain::{StoreError, StoreResult};
use sqlx::Row;
use sqlx::postgres::types::PgInterval;
use time::OffsetDateTime;

use crate::errors::map_err;

/// An operator's reason for a credential action is their own words: the
/// overview groups those actions without it (`recovery` is the product's).
const OPERATOR_REASON_DROPPED: &str = "CASE WHEN event_type IN ('credential.suspended', \
     'credential.activated', 'credential.revoked') AND coalesce(reason, '') <> 'recovery' \
     THEN NULL ELSE reason END";

pub(crate) async fn overview(pool: &crate::StorePool, q: &OverviewQuery) -> StoreResult<Overview> {
    let width = || PgInterval {
        months: 0,
        days: 0,
        microseconds: q.bucket.seconds() * 1_000_000,
    };
    let open = OPEN_STATES
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let flows = sqlx::query(&format!(
        "SELECT date_bin($3, created_at, timestamptz '1970-01-01 00:00:00+00') AS bucket_start, \
         flow_type, CASE WHEN state IN ({open}) AND expires_at <= $4 THEN 'expired' ELSE state END \
         AS current_state, count(*) AS n FROM flows \
         WHERE created_at >= $1 AND created_at < $2 GROUP BY 1, 2, 3"
    ))
    .bind(q.from)
    .bind(q.to)
    .bind(width())
    .bind(q.now)
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    let events = sqlx::query(&format!(
        "SELECT date_bin($3, occurred_at, timestamptz '1970-01-01 00:00:00+00') AS bucket_start, \
         event_type, outcome, {REASON} AS reason, count(*) AS n FROM audit_events \
         WHERE occurred_at >= $1 AND occurred_at < $2 AND event_type IN ({}) \
         GROUP BY 1, 2, 3, 4",
        overview_events_sql(),
        REASON = OPERATOR_REASON_DROPPED
    ))
    .bind(q.from)
    .bind(q.to)
    .bind(width())
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    let corrupt =
        |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{what}: {e}"));
    let count = |row: &sqlx::postgres::PgRow| -> StoreResult<u64> {
        let n: i64 = row.try_get("n").map_err(map_err)?;
        u64::try_from(n).map_err(|e| corrupt("count", &e))
    };
    Ok(Overview {
        flows: flows
            .iter()
            .map(|row| {
                let flow_type: String = row.try_get("flow_type").map_err(map_err)?;
                let state: String = row.try_get("current_state").map_err(map_err)?;
                Ok(FlowCount {
                    bucket_start: row
                        .try_get::<OffsetDateTime, _>("bucket_start")
                        .map_err(map_err)?,
                    flow_type: flow_type
                        .parse()
                        .map_err(|e| corrupt("flows.flow_type", &e))?,
                    state: state.parse().map_err(|e| corrupt("flows.state", &e))?,
                    count: count(row)?,
                })
            })
            .collect::<StoreResult<_>>()?,
        events: events
            .iter()
            .map(|row| {
                let event_type: String = row.try_get("event_type").map_err(map_err)?;
                let outcome: String = row.try_get("outcome").map_err(map_err)?;
                Ok(EventCount {
                    bucket_start: row
                        .try_get::<OffsetDateTime, _>("bucket_start")
                        .map_err(map_err)?,
                    event_type: event_type
                        .parse()
                        .map_err(|e| corrupt("audit_events.event_type", &e))?,
                    outcome: outcome
                        .parse()
                        .map_err(|e| corrupt("audit_events.outcome", &e))?,
                    reason: row.try_get("reason").map_err(map_err)?,
                    count: count(row)?,
                })
            })
            .collect::<StoreResult<_>>()?,
    }
    .sorted())
}
