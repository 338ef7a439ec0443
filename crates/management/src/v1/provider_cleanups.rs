//! The provider clean-ups of deleted users still queued.

use axum::Extension;
use axum::extract::State;
use domain::audit::Subject;
use http_common::{ApiError, ApiJson};
use proto::management::{ProviderCleanupItem, ProviderCleanupList};
use serde_json::json;

use super::record_read;
use crate::ManagementState;
use crate::auth::{Operator, RequireScope, Scope};

/// The most provider clean-ups listed.
pub const MAX_PROVIDER_CLEANUPS: u32 = 500;

/// The provider clean-ups still queued, dead ones included, oldest first (at
/// most 500).
#[utoipa::path(get, path = "/api/management/v1/provider-cleanups", tag = "users", responses((status = 200, body = ProviderCleanupList), (status = 403, body = proto::ErrorBody)))]
pub async fn provider_cleanups(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
) -> Result<ApiJson<ProviderCleanupList>, ApiError> {
    operator.require(Scope::UsersRead)?;
    let items = state
        .management
        .provider_cleanups(MAX_PROVIDER_CLEANUPS)
        .await?
        .into_iter()
        .map(|c| ProviderCleanupItem {
            user_id: c.user_id.0,
            requested_at: c.requested_at,
            attempts: c.attempts,
            last_attempt_at: c.last_attempt_at,
            next_attempt_at: c.next_attempt_at,
            dead: c.dead_at.is_some(),
            dead_at: c.dead_at,
        })
        .collect::<Vec<_>>();
    record_read(
        &state,
        &operator,
        "provider_cleanups",
        Subject::default(),
        json!({ "rows": items.len() }),
    )
    .await?;
    Ok(ApiJson(ProviderCleanupList { items }))
}
