//! `synthetic` mode only: choose a run's outcome, then process it through the
//! same event path a real provider's webhook takes.

use std::sync::Arc;

use axum::extract::State;
use domain::audit::Actor;
use domain::flow::IdentityOutcome;
use domain::idv::IdvError;
use domain::service::{EventOutcome, RequestContext};
use http_common::{ApiError, ApiJson, ApiPath, CorrelationId};
use proto::core::{ProviderEventResponse, SyntheticOutcome, SyntheticOutcomeRequest};
use proto::{ErrorBody, ErrorCode};

use crate::CoreState;

/// Give a synthetic run its outcome (tests and demos).
#[utoipa::path(
    post,
    path = "/api/core/v1/synthetic/runs/{run_id}/outcome",
    operation_id = "set_synthetic_outcome",
    tag = "synthetic",
    params(("run_id" = String, Path)),
    request_body = SyntheticOutcomeRequest,
    responses(
        (status = 200, body = ProviderEventResponse),
        (status = 404, description = "`unknown_run`; `route_not_found` where the deployment does not use the synthetic provider (the route is mounted in `synthetic` mode only)", body = ErrorBody),
    )
)]
pub async fn set_outcome(
    State(state): State<Arc<CoreState>>,
    ApiPath(run_id): ApiPath<String>,
    ApiJson(body): ApiJson<SyntheticOutcomeRequest>,
) -> Result<ApiJson<ProviderEventResponse>, ApiError> {
    let Some(control) = &state.synthetic else {
        return Err(ApiError::not_found(
            "the synthetic provider is not configured",
        ));
    };
    let (outcome, status) = match body.outcome {
        SyntheticOutcome::Approved => (IdentityOutcome::Approved, "approved"),
        SyntheticOutcome::Declined => (IdentityOutcome::Declined, "declined"),
        SyntheticOutcome::Review => (IdentityOutcome::Review, "review"),
        SyntheticOutcome::Abandoned => (IdentityOutcome::Abandoned, "abandoned"),
        SyntheticOutcome::Error => (IdentityOutcome::Error, "error"),
    };
    control.set_outcome(&run_id, outcome).map_err(|e| match e {
        IdvError::UnknownRun => ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            ErrorCode::UnknownRun,
            "the synthetic provider has no such run",
        ),
        other => ApiError::internal(other.to_string()),
    })?;
    let ctx = RequestContext {
        actor: Actor::Provider,
        correlation_id: CorrelationId::current().map(|id| id.as_str().to_owned()),
    };
    let result = state
        .flows
        .ingest_run_event(&ctx, &run_id, Some(status), None)
        .await?;
    Ok(ApiJson(ProviderEventResponse {
        result: match result {
            EventOutcome::Applied => "applied",
            EventOutcome::NoChange => "no_change",
            EventOutcome::Duplicate => "duplicate",
            EventOutcome::UnknownRun => "unknown_run",
        }
        .to_owned(),
    }))
}
