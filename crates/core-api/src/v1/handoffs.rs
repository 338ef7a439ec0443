//! Cross-platform step-up: the enrolled phone claims a flow started elsewhere.

use std::sync::Arc;

use axum::extract::State;
use http_common::{ApiError, ApiJson};
use proto::ErrorBody;
use proto::core::{ClaimHandoffRequest, FlowResponse};

use super::integration;
use crate::CoreState;
use crate::convert::external_user_id;

/// Claim a cross-platform step-up with its single-use hand-off code. The answer
/// carries the SDK token for the phone's capture.
#[utoipa::path(
    post,
    path = "/api/core/v1/handoffs/claim",
    tag = "flows",
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = ClaimHandoffRequest,
    responses(
        (status = 200, body = FlowResponse),
        (status = 404, description = "`handoff_invalid`: unknown, expired, already claimed, or another user's", body = ErrorBody),
    )
)]
pub async fn claim(
    State(state): State<Arc<CoreState>>,
    ApiJson(body): ApiJson<ClaimHandoffRequest>,
) -> Result<super::flows::UserFlowResponse, ApiError> {
    let user = external_user_id(&body.external_user_id)?;
    let view = state
        .flows
        .claim_handoff(&integration(), &body.code, &user)
        .await?;
    Ok(super::flows::user_flow_response(view))
}
