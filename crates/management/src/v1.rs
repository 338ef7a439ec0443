//! `/api/management/v1`: every route needs an operator's bearer token; each
//! action checks its own `management.*` scope; every change, every read of
//! users, flows, credentials and the audit trail, and every call refused for
//! lack of scope is audited with the operator's `sub`.
//!
//! One file per resource: `users`, `credentials`, `flows`, `audit` (search
//! and export), `overview` and `provider_cleanups`; `exports` holds what the
//! two streamed exports share. This file holds the router, the operator's
//! audit context and the parameter rules every resource shares.

pub mod audit;
pub mod credentials;
mod exports;
pub mod flows;
pub mod overview;
pub mod provider_cleanups;
pub mod users;

use std::str::FromStr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router, middleware};
use domain::audit::{Actor, Subject};
use domain::operations::OperatorRead;
use domain::service::RequestContext;
use http_common::{ApiError, ApiJson, CorrelationId};
use proto::ErrorCode;
use proto::management::OperatorResponse;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::ManagementState;
use crate::auth::{Operator, authenticate};

pub use self::audit::{MAX_EXPORT, event_response};
pub use self::exports::MAX_CONCURRENT_EXPORTS;
pub use self::provider_cleanups::MAX_PROVIDER_CLEANUPS;
pub use self::users::{CURSOR_PATTERN, RECENT_FLOWS};

/// The largest page a search returns (users, flows, audit events).
pub const MAX_PAGE: u32 = 200;
/// A search's page when the caller names none.
const DEFAULT_PAGE: u32 = 50;

pub fn routes(state: ManagementState) -> Router {
    Router::new()
        .route("/api/management/v1/me", get(me))
        .route("/api/management/v1/users", get(users::users))
        .route(
            "/api/management/v1/users/{external_user_id}",
            get(users::user).delete(users::delete_user),
        )
        .route(
            "/api/management/v1/credentials/export",
            get(credentials::credential_export),
        )
        .route(
            "/api/management/v1/credentials/{id}",
            get(credentials::credential),
        )
        .route(
            "/api/management/v1/credentials/{id}/{action}",
            post(credentials::credential_action),
        )
        .route("/api/management/v1/flows", get(flows::flows))
        .route("/api/management/v1/flows/{id}", get(flows::flow))
        .route("/api/management/v1/audit", get(audit::audit))
        .route("/api/management/v1/audit/export", get(audit::audit_export))
        .route("/api/management/v1/overview", get(overview::overview))
        .route(
            "/api/management/v1/provider-cleanups",
            get(provider_cleanups::provider_cleanups),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            record_refusals,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.verifier.clone(),
            authenticate,
        ))
        .with_state(state)
}

#[utoipa::path(get, path = "/api/management/v1/me", tag = "operator", responses((status = 200, body = OperatorResponse), (status = 401, body = proto::ErrorBody)))]
/// Who the operator is and what they may do; the dashboard shows only that.
pub async fn me(Extension(operator): Extension<Operator>) -> ApiJson<OperatorResponse> {
    ApiJson(OperatorResponse {
        sub: operator.sub,
        scopes: operator
            .scopes
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
    })
}

fn operator_context(operator: &Operator) -> RequestContext {
    RequestContext {
        actor: Actor::Operator(operator.sub.clone()),
        correlation_id: CorrelationId::current().map(|id| id.as_str().to_owned()),
    }
}

/// Puts the read on the record before it is answered.
async fn record_read(
    state: &ManagementState,
    operator: &Operator,
    what: &'static str,
    subject: Subject,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    state
        .management
        .record_read(
            &operator_context(operator),
            OperatorRead {
                what,
                subject,
                details,
            },
        )
        .await
        .map_err(ApiError::from)
}

/// Records every call an operator's scopes did not allow (`403`).
async fn record_refusals(
    State(state): State<ManagementState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let operator = request.extensions().get::<Operator>().cloned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    if response.status() == StatusCode::FORBIDDEN
        && let Some(operator) = operator
        && let Err(e) = state
            .management
            .record_refusal(&operator_context(&operator), &method, &route)
            .await
    {
        tracing::error!(error = %e.message, "a refused operator call could not be audited");
    }
    response
}

/// `400 invalid_parameter` with what the parameter must be.
fn invalid_parameter(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidParameter, message)
}

/// A page's size: `limit` taken as 1–[`MAX_PAGE`], [`DEFAULT_PAGE`] without it.
fn page_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

/// An optional parameter from a closed list (`FromStr`); a value outside it
/// is `400 invalid_parameter` with `message(value)`.
fn listed_param<T: FromStr>(
    raw: Option<&str>,
    message: impl FnOnce(&str) -> String,
) -> Result<Option<T>, ApiError> {
    raw.map(|raw| {
        raw.parse::<T>()
            .map_err(|_| invalid_parameter(message(raw)))
    })
    .transpose()
}

fn uuid_param(raw: &str, name: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| invalid_parameter(format!("{name} must be a UUID")))
}

fn time_param(raw: Option<&str>, name: &str) -> Result<Option<OffsetDateTime>, ApiError> {
    raw.map(|r| required_time(r, name)).transpose()
}

fn required_time(raw: &str, name: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .map_err(|_| invalid_parameter(format!("{name} must be an RFC 3339 time")))
}
