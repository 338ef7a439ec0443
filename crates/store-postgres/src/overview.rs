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
use sqlx::postgres::PgRow;
use sqlx::postgres::types::PgInterval;
use time::OffsetDateTime;

use crate::errors::map_err;

/// An operator's reason for a credential action is their own words: the
/// overview groups those actions without it (`recovery` is the product's).
const OPERATOR_REASON_DROPPED: &str = "CASE WHEN event_type IN ('credential.suspended', \
     'credential.activated', 'credential.revoked') AND coalesce(reason, '') <> 'recovery' \
     THEN NULL ELSE reason END";

pub(crate) async fn overview(pool: &crate::StorePool, q: &OverviewQuery) -> StoreResult<Overview> {
    let flows = flow_counts(pool, q).await?;
    let events = event_counts(pool, q).await?;
    Ok(Overview {
        flows: flows
            .iter()
            .map(to_flow_count)
            .collect::<StoreResult<_>>()?,
        events: events
            .iter()
            .map(to_event_count)
            .collect::<StoreResult<_>>()?,
    }
    .sorted())
}

/// A bucket's width, as `date_bin` takes it.
fn bucket_width(q: &OverviewQuery) -> PgInterval {
    PgInterval {
        months: 0,
        days: 0,
        microseconds: q.bucket.seconds() * 1_000_000,
    }
}

/// The flows created in the period, by bucket, type and state as of `q.now`.
async fn flow_counts(pool: &crate::StorePool, q: &OverviewQuery) -> StoreResult<Vec<PgRow>> {
    let open = OPEN_STATES
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    // The period is three spans: the whole hours the roll-up holds,
    // `[first, rolled)`, and before and after them what is counted from the
    // flows (`[from, first)` and `[rolled, to)`). With no hour rolled up,
    // `rolled` is `first` and the flows' spans cover the whole period.
    let (first, last) = q.whole_hours();
    let rolled = "greatest($5, least($6, coalesce((SELECT counted_to FROM overview_rollup), $5)))";
    let live = |range: &str| {
        format!(
            "SELECT date_bin($3, created_at, timestamptz '1970-01-01 00:00:00+00') AS bucket_start, \
             flow_type, CASE WHEN state IN ({open}) AND expires_at <= $4 THEN 'expired' \
             ELSE state END AS current_state, 1::bigint AS n FROM flows WHERE {range}"
        )
    };
    sqlx::query(&format!(
        "SELECT bucket_start, flow_type, current_state, sum(n)::bigint AS n FROM (\
         SELECT date_bin($3, hour_start, timestamptz '1970-01-01 00:00:00+00') AS bucket_start, \
         flow_type, state AS current_state, flows AS n FROM overview_flow_counts \
         WHERE hour_start >= $5 AND hour_start < {rolled} \
         UNION ALL {head} UNION ALL {tail}) counted GROUP BY 1, 2, 3",
        head = live("created_at >= $1 AND created_at < least($2, $5)"),
        tail = live(&format!(
            "created_at >= greatest($1, {rolled}) AND created_at < $2"
        )),
    ))
    .bind(q.from)
    .bind(q.to)
    .bind(bucket_width(q))
    .bind(q.now)
    .bind(first)
    .bind(last)
    .fetch_all(pool)
    .await
    .map_err(map_err)
}

/// The overview's events that occurred in the period, by bucket, type,
/// outcome and reason.
async fn event_counts(pool: &crate::StorePool, q: &OverviewQuery) -> StoreResult<Vec<PgRow>> {
    sqlx::query(&format!(
        "SELECT date_bin($3, occurred_at, timestamptz '1970-01-01 00:00:00+00') AS bucket_start, \
         event_type, outcome, {REASON} AS reason, count(*) AS n FROM audit_events \
         WHERE occurred_at >= $1 AND occurred_at < $2 AND event_type IN ({}) \
         GROUP BY 1, 2, 3, 4",
        overview_events_sql(),
        REASON = OPERATOR_REASON_DROPPED
    ))
    .bind(q.from)
    .bind(q.to)
    .bind(bucket_width(q))
    .fetch_all(pool)
    .await
    .map_err(map_err)
}

fn corrupt(what: &str, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn count(row: &PgRow) -> StoreResult<u64> {
    let n: i64 = row.try_get("n").map_err(map_err)?;
    u64::try_from(n).map_err(|e| corrupt("count", &e))
}

fn to_flow_count(row: &PgRow) -> StoreResult<FlowCount> {
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
}

fn to_event_count(row: &PgRow) -> StoreResult<EventCount> {
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
}

/// One step of the roll-up (`Repository::roll_up_flow_counts`). The
/// roll-up's one row is locked for the step; a replica that finds it locked
/// skips.
pub(crate) async fn roll_up(
    pool: &crate::StorePool,
    settled_at: OffsetDateTime,
    max_hours: u32,
) -> StoreResult<Option<RollUpStep>> {
    let open = OPEN_STATES
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut tx = pool.begin().await.map_err(map_err)?;
    let progress: Option<Option<OffsetDateTime>> =
        sqlx::query_scalar("SELECT counted_to FROM overview_rollup FOR UPDATE SKIP LOCKED")
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
    let Some(counted_to) = progress else {
        tx.rollback().await.map_err(map_err)?;
        return Ok(None);
    };
    let horizon = Bucket::Hour.start_of(settled_at);
    let start = match counted_to {
        Some(at) => at,
        None => {
            let oldest: Option<OffsetDateTime> =
                sqlx::query_scalar("SELECT min(created_at) FROM flows")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
            oldest.map_or(horizon, |at| Bucket::Hour.start_of(at).min(horizon))
        }
    };
    let limit = (start + time::Duration::hours(i64::from(max_hours))).min(horizon);
    let mut end = start;
    if limit > start {
        let unsettled: Option<OffsetDateTime> = sqlx::query_scalar(&format!(
            "SELECT min(created_at) FROM flows WHERE created_at >= $1 AND created_at < $2 \
             AND state IN ({open}) AND expires_at > $3"
        ))
        .bind(start)
        .bind(limit)
        .bind(settled_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        end = unsettled.map_or(limit, |at| Bucket::Hour.start_of(at).min(limit));
    }
    if end > start {
        sqlx::query(&format!(
            "INSERT INTO overview_flow_counts (hour_start, flow_type, state, flows) \
             SELECT date_bin('1 hour', created_at, timestamptz '1970-01-01 00:00:00+00'), \
             flow_type, CASE WHEN state IN ({open}) AND expires_at <= $3 THEN 'expired' \
             ELSE state END, count(*) FROM flows \
             WHERE created_at >= $1 AND created_at < $2 GROUP BY 1, 2, 3"
        ))
        .bind(start)
        .bind(end)
        .bind(settled_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    }
    if counted_to != Some(end) {
        sqlx::query("UPDATE overview_rollup SET counted_to = $1")
            .bind(end)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)?;
    let hours = (end - start).whole_hours();
    Ok(Some(RollUpStep {
        hours: u32::try_from(hours).unwrap_or(u32::MAX),
        counted_to: Some(end),
    }))
}
