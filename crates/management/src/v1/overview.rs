//! The dashboard's overview: counts per hour or day of a period.

use axum::Extension;
use axum::extract::State;
use domain::audit::Subject;
use domain::overview::Bucket;
use http_common::{ApiError, ApiJson, ApiQuery};
use proto::management::{Overview, OverviewEventCount, OverviewFlowCount};
use serde::Deserialize;
use serde_json::json;

use super::{invalid_parameter, record_read, required_time};
use crate::ManagementState;
use crate::auth::{Operator, RequireScope, Scope};

/// The overview's period. Times are RFC 3339.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OverviewFilter {
    /// The period's start (inclusive).
    #[param(format = DateTime)]
    pub from: String,
    /// The period's end (exclusive): after `from`, at most 31 days later.
    #[param(format = DateTime)]
    pub to: String,
    /// `hour` or `day` (default `hour`).
    #[param(pattern = "^(hour|day)$")]
    pub bucket: Option<String>,
}

#[utoipa::path(get, path = "/api/management/v1/overview", tag = "audit", params(OverviewFilter), responses((status = 200, body = Overview), (status = 400, description = "`invalid_parameter`, or `overview_period_too_long`: the period is longer than 31 days", body = proto::ErrorBody), (status = 403, body = proto::ErrorBody)))]
/// Counts for the dashboard's overview, per hour or day of a period of at
/// most 31 days: flows created by type and current state, and the audit
/// events support and fraud teams watch (IDV declines and manual reviews,
/// refused requests by reason, credentials suspended and revoked).
pub async fn overview(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    filter: Result<ApiQuery<OverviewFilter>, ApiError>,
) -> Result<ApiJson<Overview>, ApiError> {
    operator.require(Scope::AuditRead)?;
    let ApiQuery(filter) = filter?;
    let bucket = match filter.bucket.as_deref() {
        None => Bucket::Hour,
        Some(raw) => {
            Bucket::parse(raw).ok_or_else(|| invalid_parameter("bucket must be hour or day"))?
        }
    };
    let from = required_time(&filter.from, "from")?;
    let to = required_time(&filter.to, "to")?;
    let counts = state.management.overview(from, to, bucket).await?;
    record_read(
        &state,
        &operator,
        "overview",
        Subject::default(),
        json!({
            "filters": { "from": filter.from, "to": filter.to, "bucket": bucket.as_str() },
            "rows": counts.flows.len() + counts.events.len(),
        }),
    )
    .await?;
    Ok(ApiJson(Overview {
        from,
        to,
        bucket: bucket.as_str().to_owned(),
        flows: counts
            .flows
            .into_iter()
            .map(|c| OverviewFlowCount {
                bucket_start: c.bucket_start,
                flow_type: c.flow_type.as_str().to_owned(),
                state: c.state.as_str().to_owned(),
                count: c.count,
            })
            .collect(),
        events: counts
            .events
            .into_iter()
            .map(|c| OverviewEventCount {
                bucket_start: c.bucket_start,
                event_type: c.event_type.as_str().to_owned(),
                outcome: c.outcome.as_str().to_owned(),
                reason: c.reason,
                count: c.count,
            })
            .collect(),
    }))
}
