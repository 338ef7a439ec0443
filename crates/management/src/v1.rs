//! `/api/management/v1`: every route needs an operator's bearer token; each
//! action checks its own `management.*` scope.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Router, middleware};
use domain::ExternalUserId;
use http_common::{ApiError, ApiJson};
use proto::ErrorCode;
use proto::management::{CredentialSummary, FlowSummary, OperatorResponse, UserDetail};

use crate::ManagementState;
use crate::auth::{Operator, Scope, authenticate};

pub fn routes(state: ManagementState) -> Router {
    Router::new()
        .route("/api/management/v1/me", get(me))
        .route("/api/management/v1/users/{external_user_id}", get(user))
        .route_layer(middleware::from_fn_with_state(
            state.verifier.clone(),
            authenticate,
        ))
        .with_state(state)
}

/// Who the operator is and what they may do; the dashboard shows only that.
async fn me(Extension(operator): Extension<Operator>) -> ApiJson<OperatorResponse> {
    ApiJson(OperatorResponse {
        sub: operator.sub,
        scopes: operator
            .scopes
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
    })
}

/// A user with their credentials and most recent flows. Never a biometric
/// reference, a ciphertext, an IDV token or the customer's secrets.
async fn user(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    Path(raw): Path<String>,
) -> Result<ApiJson<UserDetail>, ApiError> {
    operator.require(Scope::UsersRead)?;
    let id = ExternalUserId::parse(&raw)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidExternalUserId, e.to_string()))?;
    let user = state
        .repo
        .user_by_external_id(&id)
        .await
        .map_err(|e| match e {
            domain::StoreError::NotFound => ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                ErrorCode::UserNotFound,
                "no user with this external_user_id",
            ),
            other => other.into(),
        })?;
    let credentials = state.repo.credentials_of(user.id).await?;
    let has_biometric_reference = match state.repo.reference_of(user.id).await {
        Ok(_) => true,
        Err(domain::StoreError::NotFound) => false,
        Err(other) => return Err(other.into()),
    };
    let flows = state.repo.flows_of(user.id, 20).await?;
    Ok(ApiJson(UserDetail {
        external_user_id: user.external_id.as_str().to_owned(),
        pseudonym: user.pseudonym.as_str().to_owned(),
        created_at: user.created_at,
        has_biometric_reference,
        credentials: credentials
            .into_iter()
            .map(|c| CredentialSummary {
                id: c.id,
                status: c.status.as_str().to_owned(),
                status_reason: c.status_reason,
                aaguid: c.aaguid,
                platform: c.platform,
                device_label: c.device_label,
                created_at: c.created_at,
                last_used_at: c.last_used_at,
            })
            .collect(),
        recent_flows: flows
            .into_iter()
            .map(|f| FlowSummary {
                id: f.id.0,
                flow_type: f.flow_type.as_str().to_owned(),
                state: f.state.as_str().to_owned(),
                failure_reason: f.failure_reason.map(|r| r.as_str().to_owned()),
                created_at: f.created_at,
                updated_at: f.updated_at,
            })
            .collect(),
    }))
}
