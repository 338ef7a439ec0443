//! Flows: a user's flows by type and state, and one flow with its timeline.

use axum::Extension;
use axum::extract::State;
use domain::audit::Subject;
use domain::flow::{FlowId, FlowState, FlowType};
use domain::management::UserFlows;
use http_common::{ApiError, ApiJson, ApiPath, ApiQuery};
use proto::management::{AuditEventResponse, FlowDetail, FlowSummary};
use serde::Deserialize;
use serde_json::json;

use super::audit::event_response;
use super::{listed_param, page_limit, record_read, uuid_param};
use crate::ManagementState;
use crate::auth::{Operator, RequireScope, Scope};

/// A flow as the listings show it.
pub(super) fn flow_summary(f: &domain::flow::Flow) -> FlowSummary {
    FlowSummary {
        id: f.id.0,
        flow_type: f.flow_type.as_str().to_owned(),
        state: f.state.as_str().to_owned(),
        failure_reason: f.failure_reason.map(|r| r.as_str().to_owned()),
        created_at: f.created_at,
        updated_at: f.updated_at,
    }
}

/// Filters of a flow listing.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FlowFilter {
    /// The user whose flows to list.
    #[param(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._~-]{1,128}$")]
    pub external_user_id: String,
    /// `registration`, `sign_in`, `step_up` or `recovery` (empty: any);
    /// another value is `400 invalid_parameter`.
    #[serde(rename = "type")]
    #[param(
        rename = "type",
        pattern = "^(registration|sign_in|step_up|recovery)?$"
    )]
    pub flow_type: Option<String>,
    /// A flow state as it reads now (an open flow past its expiry is
    /// `expired`); empty: any; another value is `400 invalid_parameter`.
    #[param(
        pattern = "^(pending|awaiting_verification|verified|in_review|completed|failed|expired|cancelled)?$"
    )]
    pub state: Option<String>,
    /// At most this many (taken as 1–200; default 50), newest first.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295.0)]
    pub limit: Option<u32>,
}

impl FlowFilter {
    /// The listing the filters ask for; an empty type or state is any.
    fn query(&self) -> Result<domain::management::FlowFilter, ApiError> {
        let flow_type = listed_param::<FlowType>(
            self.flow_type.as_deref().filter(|raw| !raw.is_empty()),
            |_| "type must be registration, sign_in, step_up or recovery".to_owned(),
        )?;
        let state = listed_param::<FlowState>(
            self.state.as_deref().filter(|raw| !raw.is_empty()),
            |raw| format!("unknown flow state {raw:?}"),
        )?;
        Ok(domain::management::FlowFilter {
            flow_type,
            state,
            limit: page_limit(self.limit),
        })
    }
}

#[utoipa::path(get, path = "/api/management/v1/flows", tag = "flows", params(FlowFilter),
    responses((status = 200, body = [FlowSummary]), (status = 403, body = proto::ErrorBody), (status = 404, body = proto::ErrorBody)))]
/// A user's flows, newest first, optionally by type and state.
pub async fn flows(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    filter: Result<ApiQuery<FlowFilter>, ApiError>,
) -> Result<ApiJson<Vec<FlowSummary>>, ApiError> {
    operator.require(Scope::FlowsRead)?;
    let ApiQuery(filter) = filter?;
    let id = http_common::external_user_id(&filter.external_user_id)?;
    let query = filter.query()?;
    let UserFlows { user, flows } = state.management.flows(&id, &query).await?;
    let listed: Vec<FlowSummary> = flows.iter().map(flow_summary).collect();
    record_read(
        &state,
        &operator,
        "flows",
        Subject::of_user(&user),
        json!({
            "filters": { "type": filter.flow_type, "state": filter.state, "limit": query.limit },
            "rows": listed.len(),
        }),
    )
    .await?;
    Ok(ApiJson(listed))
}

#[utoipa::path(get, path = "/api/management/v1/flows/{id}", tag = "flows", params(("id" = uuid::Uuid, Path)), responses((status = 200, body = FlowDetail), (status = 403, body = proto::ErrorBody), (status = 404, body = proto::ErrorBody)))]
pub async fn flow(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<FlowDetail>, ApiError> {
    operator.require(Scope::FlowsRead)?;
    let id = FlowId(uuid_param(&raw, "id")?);
    let domain::management::FlowDetail {
        flow,
        user,
        timeline,
    } = state.management.flow(id).await?;
    let timeline: Vec<AuditEventResponse> = timeline.into_iter().map(event_response).collect();
    record_read(
        &state,
        &operator,
        "flow",
        Subject::of_flow(&flow),
        json!({ "timeline_events": timeline.len() }),
    )
    .await?;
    Ok(ApiJson(FlowDetail {
        flow: flow_summary(&flow),
        external_user_id: user.external_id.as_str().to_owned(),
        identity_status: flow.identity.as_str().to_owned(),
        possession_verified: flow.possession_done,
        credential_id: flow.credential_id,
        cross_platform: flow.cross_platform,
        transaction_context_hmac: flow
            .transaction_context_digest
            .as_ref()
            .map(|d| d.hmac.clone()),
        transaction_context_key_id: flow.transaction_context_digest.map(|d| d.key_id),
        expires_at: flow.expires_at,
        timeline,
    }))
}
