//! The overview's counts: flows from the roll-up's hourly counts (migration
//! 0018) for the whole hours it holds, and from the flows themselves for the
//! rest of the period; audit events from their partial covering index
//! (migration 0016).

use domain::overview::{
    Bucket, EventCount, FlowCount, OPEN_STATES, Overview, OverviewQuery, RollUpStep,
    overview_events_sql,
};
use domain::{StoreError, StoreResult};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use sqlx::{Sqlite, Transaction};
use time::OffsetDateTime;

use crate::codec::{from_micros, to_micros};
use crate::errors::map_err;

/// An operator's reason for a credential action is their own words: the
/// overview groups those actions without it (`recovery` is the product's).
const OPERATOR_REASON_DROPPED: &str = "CASE WHEN event_type IN ('credential.suspended', \
     'credential.activated', 'credential.revoked') AND coalesce(reason, '') <> 'recovery' \
     THEN NULL ELSE reason END";

pub(crate) async fn overview(pool: &crate::StorePool, q: &OverviewQuery) -> StoreResult<Overview> {
    let width = q.bucket.seconds() * 1_000_000;
    let open = OPEN_STATES
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    // Times are microseconds since the epoch (never negative here), so an
    // integer division finds the bucket. The period is three spans: the
    // whole hours the roll-up holds, `[first, rolled)`, and before and after
    // them what is counted from the flows (`[from, first)` and
    // `[rolled, to)`). With no hour rolled up, `rolled` is `first` and the
    // flows' spans cover the whole period.
    let (first, last) = q.whole_hours();
    let rolled = "max(?5, min(?6, coalesce((SELECT counted_to FROM overview_rollup), ?5)))";
    let live = |range: &str| {
        format!(
            "SELECT (created_at / ?3) * ?3 AS bucket_start, flow_type, \
             CASE WHEN state IN ({open}) AND expires_at <= ?4 THEN 'expired' ELSE state END \
             AS current_state, count(*) AS n FROM flows WHERE {range} GROUP BY 1, 2, 3"
        )
    };
    let flows = sqlx::query(&format!(
        "SELECT bucket_start, flow_type, current_state, sum(n) AS n FROM (\
         SELECT (hour_start / ?3) * ?3 AS bucket_start, flow_type, state AS current_state, \
         flows AS n FROM overview_flow_counts WHERE hour_start >= ?5 AND hour_start < {rolled} \
         UNION ALL {head} UNION ALL {tail}) GROUP BY 1, 2, 3",
        head = live("created_at >= ?1 AND created_at < min(?2, ?5)"),
        tail = live(&format!(
            "created_at >= max(?1, {rolled}) AND created_at < ?2"
        )),
    ))
    .bind(to_micros(q.from))
    .bind(to_micros(q.to))
    .bind(width)
    .bind(to_micros(q.now))
    .bind(to_micros(first))
    .bind(to_micros(last))
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    let events = sqlx::query(&format!(
        "SELECT (occurred_at / ?3) * ?3 AS bucket_start, event_type, outcome, {REASON} AS reason, \
         count(*) AS n FROM audit_events \
         WHERE occurred_at >= ?1 AND occurred_at < ?2 AND event_type IN ({}) \
         GROUP BY 1, 2, 3, 4",
        overview_events_sql(),
        REASON = OPERATOR_REASON_DROPPED
    ))
    .bind(to_micros(q.from))
    .bind(to_micros(q.to))
    .bind(width)
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    let corrupt =
        |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{what}: {e}"));
    let count = |row: &SqliteRow| -> StoreResult<u64> {
        let n: i64 = row.try_get("n").map_err(map_err)?;
        u64::try_from(n).map_err(|e| corrupt("count", &e))
    };
    let start = |row: &SqliteRow| {
        from_micros(
            row.try_get("bucket_start").map_err(map_err)?,
            "bucket_start",
        )
    };
    Ok(Overview {
        flows: flows
            .iter()
            .map(|row| {
                let flow_type: String = row.try_get("flow_type").map_err(map_err)?;
                let state: String = row.try_get("current_state").map_err(map_err)?;
                Ok(FlowCount {
                    bucket_start: start(row)?,
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
                    bucket_start: start(row)?,
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

/// One step of the roll-up (`Repository::roll_up_flow_counts`), in a write
/// transaction: SQLite's write lock lets one roll-up (and one writer) run at
/// a time.
pub(crate) async fn roll_up(
    mut tx: Transaction<'static, Sqlite>,
    settled_at: OffsetDateTime,
    max_hours: u32,
) -> StoreResult<Option<RollUpStep>> {
    let open = OPEN_STATES
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let hour = Bucket::Hour.seconds() * 1_000_000;
    let counted_to: Option<i64> = sqlx::query_scalar("SELECT counted_to FROM overview_rollup")
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
    let horizon = to_micros(Bucket::Hour.start_of(settled_at));
    let start = match counted_to {
        Some(at) => at,
        None => {
            let oldest: Option<i64> = sqlx::query_scalar("SELECT min(created_at) FROM flows")
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
            oldest.map_or(horizon, |at| (at.div_euclid(hour) * hour).min(horizon))
        }
    };
    let limit = start
        .saturating_add(i64::from(max_hours).saturating_mul(hour))
        .min(horizon);
    let mut end = start;
    if limit > start {
        let unsettled: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT min(created_at) FROM flows WHERE created_at >= ?1 AND created_at < ?2 \
             AND state IN ({open}) AND expires_at > ?3"
        ))
        .bind(start)
        .bind(limit)
        .bind(to_micros(settled_at))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        end = unsettled.map_or(limit, |at| (at.div_euclid(hour) * hour).min(limit));
    }
    if end > start {
        sqlx::query(&format!(
            "INSERT INTO overview_flow_counts (hour_start, flow_type, state, flows) \
             SELECT (created_at / ?4) * ?4, flow_type, \
             CASE WHEN state IN ({open}) AND expires_at <= ?3 THEN 'expired' ELSE state END, \
             count(*) FROM flows WHERE created_at >= ?1 AND created_at < ?2 GROUP BY 1, 2, 3"
        ))
        .bind(start)
        .bind(end)
        .bind(to_micros(settled_at))
        .bind(hour)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    if counted_to != Some(end) {
        sqlx::query("UPDATE overview_rollup SET counted_to = ?")
            .bind(end)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(Some(RollUpStep {
        hours: u32::try_from((end - start) / hour).unwrap_or(u32::MAX),
        counted_to: Some(from_micros(end, "overview_rollup.counted_to")?),
    }))
}
