//! Users, by the customer's identifier.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use http_common::{ApiError, ApiJson, ApiPath};
use proto::ErrorBody;
use proto::core::UserResponse;

use super::integration;
use crate::CoreState;
use crate::convert::{external_user_id, user_response};

/// A user with their credentials.
#[utoipa::path(
    get,
    path = "/api/core/v1/users/{external_user_id}",
    operation_id = "read_user",
    tag = "users",
    params(("external_user_id" = String, Path, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._~-]{1,128}$")),
    responses(
        (status = 200, body = UserResponse),
        (status = 400, description = "`invalid_external_user_id`", body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
    )
)]
pub async fn read(
    State(state): State<Arc<CoreState>>,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<UserResponse>, ApiError> {
    let view = state.flows.user_view(&external_user_id(&raw)?).await?;
    Ok(ApiJson(user_response(view)))
}

/// Delete a user: their credentials, biometric reference and flows at once;
/// what the IDV provider keeps is queued and forgotten in the background,
/// retried until the provider confirms. The audit trail keeps a pseudonym.
#[utoipa::path(
    delete,
    path = "/api/core/v1/users/{external_user_id}",
    operation_id = "delete_user",
    tag = "users",
    params(("external_user_id" = String, Path, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._~-]{1,128}$"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters. The first response to a request with this key is stored for 24 hours and replayed (with `Idempotent-Replayed: true`) to a repeat of the same request")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`invalid_external_user_id`", body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<Arc<CoreState>>,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .flows
        .delete_user(&integration(), &external_user_id(&raw)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
