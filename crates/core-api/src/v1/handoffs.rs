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
    operation_id = "claim_handoff",
    tag = "flows",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters. The first response to a request with this key is stored for 24 hours and replayed (with `Idempotent-Replayed: true`) to a repeat of the same request")),
    request_body = ClaimHandoffRequest,
    responses(
        (status = 200, body = FlowResponse),
        (status = 400, description = "`invalid_external_user_id`", body = ErrorBody),
        (status = 409, description = "`proof_not_expected`, `flow_changed`", body = ErrorBody),
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
