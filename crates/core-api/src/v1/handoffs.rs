//! Cross-platform step-up: the enrolled phone claims a flow started elsewhere.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use domain::audit::Actor;
use domain::tally::TallyKind;
use http_common::{ApiError, ApiJson};
use proto::ErrorBody;
use proto::core::{ClaimHandoffRequest, FlowResponse};

use super::integration;
use crate::CoreState;
use crate::convert::external_user_id;
use crate::refusals::too_many;

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
        (status = 429, description = "`too_many_refused_requests`: too many of this user's claims were refused within the minute", body = ErrorBody),
    )
)]
pub async fn claim(
    State(state): State<Arc<CoreState>>,
    ApiJson(body): ApiJson<ClaimHandoffRequest>,
) -> Result<Response, ApiError> {
    let user = external_user_id(&body.external_user_id)?;
    let ctx = integration();
    // Refusals count per API key and user (see `crate::refusals`).
    let key = match &ctx.actor {
        Actor::Integration(key) => key.clone(),
        _ => None,
    };
    let source = (key, user.as_str().to_owned());
    if let Some(retry_in) = state.handoff_refusals.blocked(&source, state.clock.now()) {
        state
            .flows
            .note_refusal(TallyKind::ClaimRefused, "handoff_limited", &ctx.actor)
            .await?;
        return Ok(too_many(retry_in));
    }
    match state.flows.claim_handoff(&ctx, &body.code, &user).await {
        Ok(view) => Ok(super::flows::user_flow_response(view).into_response()),
        Err(e) => {
            let e = ApiError::from(e);
            if e.status.is_client_error() {
                state.handoff_refusals.refused(source, state.clock.now());
            }
            Err(e)
        }
    }
}
