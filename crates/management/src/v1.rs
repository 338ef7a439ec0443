//! `/api/management/v1`: every route needs an operator's bearer token; each
//! action checks its own `management.*` scope; every change, every read of
//! users, flows, credentials and the audit trail, and every call refused for
//! lack of scope is audited with the operator's `sub`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router, middleware};
use domain::audit::{Actor, AuditEvent, AuditEventType, AuditQuery, Subject};
use domain::credential::export::{Users as ExportUsers, Via};
use domain::credential::{AuthenticatorNames, Credential, CredentialStatus};
use domain::flow::{FlowId, FlowState, FlowType};
use domain::management::UserFlows;
use domain::operations::OperatorRead;
use domain::overview::Bucket;
use domain::service::RequestContext;
use domain::{ExternalUserId, UserId};
use http_common::{ApiError, ApiJson, ApiPath, ApiQuery, CorrelationId};
use proto::ErrorCode;
use proto::management::{
    AuditEventResponse, AuditPage, CredentialActionRequest, CredentialSummary, FlowDetail,
    FlowSummary, OperatorResponse, Overview, OverviewEventCount, OverviewFlowCount,
    ProviderCleanupItem, ProviderCleanupList, UserDetail, UserListItem, UserPage,
    VerifiedRegistrationFacts,
};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::ManagementState;
use crate::auth::{Operator, RequireScope, Scope, authenticate};

/// The largest page an audit search returns, and the most an export streams.
pub const MAX_PAGE: u32 = 200;
pub const MAX_EXPORT: usize = 100_000;
/// The flows a user's page lists, newest first.
pub const RECENT_FLOWS: u32 = 20;

pub fn routes(state: ManagementState) -> Router {
    Router::new()
        .route("/api/management/v1/me", get(me))
        .route("/api/management/v1/users", get(users))
        .route(
            "/api/management/v1/users/{external_user_id}",
            get(user).delete(delete_user),
        )
        .route(
            "/api/management/v1/credentials/export",
            get(credential_export),
        )
        .route("/api/management/v1/credentials/{id}", get(credential))
        .route(
            "/api/management/v1/credentials/{id}/{action}",
            post(credential_action),
        )
        .route("/api/management/v1/flows", get(flows))
        .route("/api/management/v1/flows/{id}", get(flow))
        .route("/api/management/v1/audit", get(audit))
        .route("/api/management/v1/audit/export", get(audit_export))
        .route("/api/management/v1/overview", get(overview))
        .route(
            "/api/management/v1/provider-cleanups",
            get(provider_cleanups),
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

fn uuid_param(raw: &str, name: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidParameter,
            format!("{name} must be a UUID"),
        )
    })
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

fn credential_summary(c: Credential, names: &AuthenticatorNames) -> CredentialSummary {
    CredentialSummary {
        id: c.id,
        status: c.status.as_str().to_owned(),
        status_reason: c.status_reason,
        authenticator: names.name_of(c.aaguid).map(str::to_owned),
        aaguid: c.aaguid,
        platform: c.platform,
        device_label: c.device_label,
        backup_eligible: c.backup_eligible,
        backup_state: c.backup_state,
        verified_registration: c.passkey.map(|p| VerifiedRegistrationFacts {
            user_verified: p.user_verified,
            attestation_format: p.attestation_format,
            attestation_verified: p.attestation_verified,
        }),
        created_at: c.created_at,
        last_used_at: c.last_used_at,
    }
}

fn flow_summary(f: &domain::flow::Flow) -> FlowSummary {
    FlowSummary {
        id: f.id.0,
        flow_type: f.flow_type.as_str().to_owned(),
        state: f.state.as_str().to_owned(),
        failure_reason: f.failure_reason.map(|r| r.as_str().to_owned()),
        created_at: f.created_at,
        updated_at: f.updated_at,
    }
}

/// The wire form of an event: in the audit API, its export and archives.
pub fn event_response(e: AuditEvent) -> AuditEventResponse {
    let ev = e.event;
    AuditEventResponse {
        seq: e.seq,
        id: ev.id,
        occurred_at: ev.occurred_at,
        event_type: ev.event_type.as_str().to_owned(),
        actor: ev.actor.kind().to_owned(),
        actor_id: ev.actor.id().map(str::to_owned),
        user_id: ev.subject.user_id.map(|u| u.0),
        user_pseudonym: ev.subject.user_pseudonym.map(|p| p.as_str().to_owned()),
        credential_id: ev.subject.credential_id,
        flow_id: ev.subject.flow_id,
        outcome: ev.outcome.as_str().to_owned(),
        reason: ev.reason,
        correlation_id: ev.correlation_id,
        details: ev.details,
    }
}

/// Filters of a user search. Times are RFC 3339.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserFilter {
    /// Users whose identifier starts with this (empty: all).
    #[param(max_length = 128, pattern = "^[A-Za-z0-9._~-]{0,128}$")]
    pub prefix: Option<String>,
    /// Only users with a credential in this status: `active`, `suspended` or `revoked`.
    pub credential_status: Option<String>,
    #[param(format = DateTime)]
    pub created_from: Option<String>,
    #[param(format = DateTime)]
    pub created_before: Option<String>,
    /// The previous page's `next_after` (empty: the first page).
    #[param(pattern = "^(?:i:[A-Za-z0-9._~-]{1,128}|t:-?[0-9]{1,17}:[A-Za-z0-9._~-]{1,128})?$")]
    pub after: Option<String>,
    /// At most this many (taken as 1–200; default 50).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295.0)]
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/management/v1/users", tag = "users", params(UserFilter), responses((status = 200, body = UserPage), (status = 400, body = proto::ErrorBody), (status = 403, body = proto::ErrorBody)))]
/// Users by identifier prefix and creation time, in identifier order.
pub async fn users(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    filter: Result<ApiQuery<UserFilter>, ApiError>,
) -> Result<ApiJson<UserPage>, ApiError> {
    operator.require(Scope::UsersRead)?;
    let ApiQuery(filter) = filter?;
    if let Some(prefix) = filter.prefix.as_deref().filter(|p| !p.is_empty()) {
        http_common::external_user_id(prefix)?;
    }
    let after = filter
        .after
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(decode_cursor)
        .transpose()?;
    let page = state
        .management
        .search_users(&domain::UserQuery {
            prefix: filter.prefix.clone().filter(|p| !p.is_empty()),
            credential_status: filter
                .credential_status
                .as_deref()
                .map(|raw| {
                    raw.parse::<CredentialStatus>().map_err(|_| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            ErrorCode::InvalidParameter,
                            "credential_status must be active, suspended or revoked",
                        )
                    })
                })
                .transpose()?,
            created_from: time_param(filter.created_from.as_deref(), "created_from")?,
            created_before: time_param(filter.created_before.as_deref(), "created_before")?,
            after,
            limit: filter.limit.unwrap_or(50).clamp(1, MAX_PAGE),
        })
        .await?;
    record_read(
        &state,
        &operator,
        "users",
        Subject::default(),
        json!({
            "filters": {
                "prefix_length": filter.prefix.as_deref().map(str::len),
                "credential_status": filter.credential_status,
                "created_from": filter.created_from,
                "created_before": filter.created_before,
                "continued": filter.after.is_some(),
            },
            "rows": page.items.len(),
        }),
    )
    .await?;
    Ok(ApiJson(UserPage {
        users: page
            .items
            .into_iter()
            .map(|u| UserListItem {
                external_user_id: u.external_id.as_str().to_owned(),
                pseudonym: u.pseudonym.as_str().to_owned(),
                created_at: u.created_at,
            })
            .collect(),
        next_after: page.next.as_ref().map(encode_cursor),
    }))
}

/// Cursors are opaque to clients: `i:<identifier>` or `t:<unix µs>:<identifier>`
/// (identifiers hold no `:`). The document's pattern for `after` is
/// [`CURSOR_PATTERN`].
fn encode_cursor(cursor: &domain::UserCursor) -> String {
    match cursor {
        domain::UserCursor::ExternalId(id) => format!("i:{id}"),
        domain::UserCursor::Created(at, id) => {
            format!("t:{}:{id}", at.unix_timestamp_nanos() / 1000)
        }
    }
}

/// What `after` may be (the pattern of the document's `after` parameter).
pub const CURSOR_PATTERN: &str =
    "^(?:i:[A-Za-z0-9._~-]{1,128}|t:-?[0-9]{1,17}:[A-Za-z0-9._~-]{1,128})?$";

fn decode_cursor(raw: &str) -> Result<domain::UserCursor, ApiError> {
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidParameter,
            "after is not a cursor of this search",
        )
    };
    let valid_id = |id: &str| {
        ExternalUserId::parse(id)
            .map(|_| id.to_owned())
            .map_err(|_| invalid())
    };
    match raw.split_once(':') {
        Some(("i", id)) => Ok(domain::UserCursor::ExternalId(valid_id(id)?)),
        Some(("t", rest)) => {
            let (micros, id) = rest.split_once(':').ok_or_else(invalid)?;
            // At most 17 digits (a time within about 3 000 years of 1970,
            // always representable), as the documented pattern says.
            let digits = micros.strip_prefix('-').unwrap_or(micros);
            if digits.is_empty() || digits.len() > 17 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(invalid());
            }
            let micros: i128 = micros.parse().map_err(|_| invalid())?;
            let at =
                OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).map_err(|_| invalid())?;
            Ok(domain::UserCursor::Created(at, valid_id(id)?))
        }
        _ => Err(invalid()),
    }
}

#[utoipa::path(get, path = "/api/management/v1/users/{external_user_id}", tag = "users", params(("external_user_id" = String, Path, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._~-]{1,128}$")), responses((status = 200, body = UserDetail), (status = 403, body = proto::ErrorBody), (status = 404, body = proto::ErrorBody)))]
/// A user with their credentials and most recent flows. Never a biometric
/// reference, a ciphertext or an IDV token.
pub async fn user(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<UserDetail>, ApiError> {
    operator.require(Scope::UsersRead)?;
    let id = http_common::external_user_id(&raw)?;
    let domain::management::UserDetail {
        view,
        recent_flows: flows,
    } = state.management.user(&id, RECENT_FLOWS).await?;
    record_read(
        &state,
        &operator,
        "user",
        Subject::of_user(&view.user),
        json!({ "credentials": view.credentials.len(), "recent_flows": flows.len() }),
    )
    .await?;
    let user = view.user;
    Ok(ApiJson(UserDetail {
        external_user_id: user.external_id.as_str().to_owned(),
        user_id: user.id.0,
        pseudonym: user.pseudonym.as_str().to_owned(),
        created_at: user.created_at,
        has_biometric_reference: view.has_biometric_reference,
        credentials: view
            .credentials
            .into_iter()
            .map(|c| credential_summary(c, &state.authenticators))
            .collect(),
        recent_flows: flows.iter().map(flow_summary).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/management/v1/users/{external_user_id}", tag = "users", params(("external_user_id" = String, Path, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._~-]{1,128}$")), responses((status = 204, description = "Deleted"), (status = 403, body = proto::ErrorBody), (status = 404, body = proto::ErrorBody)))]
/// Deletes the user: credentials, biometric reference and flows at once; the
/// provider-side data through the Core API's cleanup queue. Audited with the
/// operator's `sub`; the trail keeps the user's pseudonym.
pub async fn delete_user(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    operator.require(Scope::UsersDelete)?;
    let id = http_common::external_user_id(&raw)?;
    state
        .management
        .delete_user(&operator_context(&operator), &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

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

#[utoipa::path(get, path = "/api/management/v1/credentials/{id}", tag = "credentials", params(("id" = uuid::Uuid, Path)), responses((status = 200, body = CredentialSummary), (status = 403, body = proto::ErrorBody), (status = 404, body = proto::ErrorBody)))]
pub async fn credential(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<CredentialSummary>, ApiError> {
    operator.require(Scope::CredentialsRead)?;
    let credential = state.management.credential(uuid_param(&raw, "id")?).await?;
    let subject = Subject {
        user_id: Some(credential.user_id),
        credential_id: Some(credential.id),
        ..Subject::default()
    };
    record_read(&state, &operator, "credential", subject, json!({})).await?;
    Ok(ApiJson(credential_summary(
        credential,
        &state.authenticators,
    )))
}

#[utoipa::path(post, path = "/api/management/v1/credentials/{id}/{action}", tag = "credentials", params(("id" = uuid::Uuid, Path), ("action" = String, Path, description = "`suspend` (management.credentials.suspend), `activate` (management.credentials.activate) or `revoke` (management.credentials.revoke)")), request_body = CredentialActionRequest, responses((status = 200, body = CredentialSummary), (status = 403, body = proto::ErrorBody), (status = 404, body = proto::ErrorBody), (status = 409, description = "`credential_transition_not_allowed`", body = proto::ErrorBody)))]
/// `suspend`, `activate` or `revoke`, each under its own scope.
pub async fn credential_action(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    ApiPath((raw, action)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<CredentialActionRequest>,
) -> Result<ApiJson<CredentialSummary>, ApiError> {
    let (scope, to) = match action.as_str() {
        "suspend" => (Scope::CredentialsSuspend, CredentialStatus::Suspended),
        "activate" => (Scope::CredentialsActivate, CredentialStatus::Active),
        "revoke" => (Scope::CredentialsRevoke, CredentialStatus::Revoked),
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::RouteNotFound,
                "no such route",
            ));
        }
    };
    operator.require(scope)?;
    let id = uuid_param(&raw, "id")?;
    let credential = state
        .management
        .set_credential_status(&operator_context(&operator), id, to, &body.reason)
        .await?;
    Ok(ApiJson(credential_summary(
        credential,
        &state.authenticators,
    )))
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
    let flow_type = filter
        .flow_type
        .as_deref()
        .filter(|raw| !raw.is_empty())
        .map(|raw| {
            raw.parse::<FlowType>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidParameter,
                    "type must be registration, sign_in, step_up or recovery",
                )
            })
        })
        .transpose()?;
    let flow_state = filter
        .state
        .as_deref()
        .filter(|raw| !raw.is_empty())
        .map(|raw| {
            raw.parse::<FlowState>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidParameter,
                    format!("unknown flow state {raw:?}"),
                )
            })
        })
        .transpose()?;
    let limit = filter.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let UserFlows { user, flows } = state
        .management
        .flows(
            &id,
            &domain::management::FlowFilter {
                flow_type,
                state: flow_state,
                limit,
            },
        )
        .await?;
    let listed: Vec<FlowSummary> = flows.iter().map(flow_summary).collect();
    record_read(
        &state,
        &operator,
        "flows",
        Subject::of_user(&user),
        json!({
            "filters": { "type": filter.flow_type, "state": filter.state, "limit": limit },
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

/// Filters of an audit search. Times are RFC 3339.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    pub user_id: Option<Uuid>,
    pub flow_id: Option<Uuid>,
    pub credential_id: Option<Uuid>,
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    #[param(format = DateTime)]
    pub from: Option<String>,
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// The previous page's `next_before`.
    pub before: Option<i64>,
    /// At most this many (taken as 1–200; default 50).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295.0)]
    pub limit: Option<u32>,
}

fn time_param(raw: Option<&str>, name: &str) -> Result<Option<OffsetDateTime>, ApiError> {
    raw.map(|r| required_time(r, name)).transpose()
}

fn required_time(raw: &str, name: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidParameter,
            format!("{name} must be an RFC 3339 time"),
        )
    })
}

impl AuditFilter {
    /// The filters as the audit trail records them.
    fn on_record(&self) -> serde_json::Value {
        json!({
            "user_id": self.user_id,
            "flow_id": self.flow_id,
            "credential_id": self.credential_id,
            "type": self.event_type,
            "from": self.from,
            "until": self.until,
            "before": self.before,
        })
    }
}

fn audit_query(filter: &AuditFilter, limit: u32) -> Result<AuditQuery, ApiError> {
    let event_type = filter
        .event_type
        .as_deref()
        .map(|t| {
            t.parse::<AuditEventType>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidParameter,
                    format!("unknown event type {t:?}"),
                )
            })
        })
        .transpose()?;
    Ok(AuditQuery {
        user_id: filter.user_id.map(UserId),
        flow_id: filter.flow_id,
        credential_id: filter.credential_id,
        event_type,
        occurred_from: time_param(filter.from.as_deref(), "from")?,
        occurred_before: time_param(filter.until.as_deref(), "until")?,
        before_seq: filter.before,
        limit,
    })
}

#[utoipa::path(get, path = "/api/management/v1/audit", tag = "audit", params(AuditFilter), responses((status = 200, body = AuditPage), (status = 400, body = proto::ErrorBody), (status = 403, body = proto::ErrorBody)))]
/// Search the audit trail, newest first.
pub async fn audit(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    filter: Result<ApiQuery<AuditFilter>, ApiError>,
) -> Result<ApiJson<AuditPage>, ApiError> {
    operator.require(Scope::AuditRead)?;
    let ApiQuery(filter) = filter?;
    let limit = filter.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let page = state
        .management
        .audit_events(&audit_query(&filter, limit)?)
        .await?;
    record_read(
        &state,
        &operator,
        "audit",
        Subject::default(),
        json!({ "filters": filter.on_record(), "rows": page.items.len() }),
    )
    .await?;
    Ok(ApiJson(AuditPage {
        events: page.items.into_iter().map(event_response).collect(),
        next_before: page.next,
    }))
}

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
        Some(raw) => Bucket::parse(raw).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidParameter,
                "bucket must be hour or day",
            )
        })?,
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

#[utoipa::path(get, path = "/api/management/v1/audit/export", tag = "audit", params(AuditFilter), responses((status = 200, description = "JSON lines, one AuditEventResponse each", content_type = "application/x-ndjson"), (status = 403, body = proto::ErrorBody), (status = 503, description = "`server_busy`: as many exports as this replica runs at once are running", body = proto::ErrorBody)))]
/// The matching events as JSON lines (`application/x-ndjson`), newest first,
/// at most 100 000 per call: continue from the last `seq` with `before`.
/// Streamed a page at a time; at most [`MAX_CONCURRENT_EXPORTS`] run at once
/// per replica. A failure after the first page cuts the body short (the
/// chunked encoding is not terminated), so a truncated export is never taken
/// for a whole one.
pub async fn audit_export(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    filter: Result<ApiQuery<AuditFilter>, ApiError>,
) -> Result<Response, ApiError> {
    operator.require(Scope::AuditRead)?;
    let ApiQuery(filter) = filter?;
    let query = audit_query(&filter, EXPORT_PAGE)?;
    let place = export_place(&state)?;
    // The first page is read before answering: a database that is down is a
    // clean 503, not a cut body.
    let first = state.management.audit_events(&query).await?;
    let export = Export {
        state: state.clone(),
        ctx: operator_context(&operator),
        filters: filter.on_record(),
        query,
        first: Some(first),
        rows: 0,
        done: false,
        recorded: false,
        _place: place,
    };
    let body = futures_util::stream::try_unfold(export, Export::next_chunk);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// Exports (audit and credential together) streamed at once per replica;
/// one more is answered `503 server_busy`.
pub const MAX_CONCURRENT_EXPORTS: usize = 2;

/// A place under [`MAX_CONCURRENT_EXPORTS`], or the `503` saying there is none.
fn export_place(state: &ManagementState) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    state.exports.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerBusy,
            format!(
                "this replica runs at most {MAX_CONCURRENT_EXPORTS} exports at once; retry later"
            ),
        )
    })
}
/// Events read per page of an export.
const EXPORT_PAGE: u32 = 1_000;

/// An export in progress: where it is, and its place under the cap.
struct Export {
    state: ManagementState,
    ctx: RequestContext,
    filters: serde_json::Value,
    query: AuditQuery,
    first: Option<domain::Page<AuditEvent, i64>>,
    rows: usize,
    done: bool,
    recorded: bool,
    _place: tokio::sync::OwnedSemaphorePermit,
}

impl Export {
    /// The next page as JSON lines; `None` once the export is complete (and
    /// on the record).
    async fn next_chunk(mut self) -> Result<Option<(Vec<u8>, Self)>, std::io::Error> {
        if self.done {
            self.record(true).await?;
            return Ok(None);
        }
        let page = match self.first.take() {
            Some(page) => page,
            None => self
                .state
                .management
                .audit_events(&self.query)
                .await
                .map_err(|e| std::io::Error::other(e.message))?,
        };
        let mut chunk = Vec::new();
        for event in page.items {
            serde_json::to_writer(&mut chunk, &event_response(event))?;
            chunk.push(b'\n');
            self.rows += 1;
        }
        match page.next {
            Some(next) if self.rows < MAX_EXPORT => self.query.before_seq = Some(next),
            _ => self.done = true,
        }
        Ok(Some((chunk, self)))
    }

    /// Puts the export on the record with the rows it sent.
    async fn record(&mut self, complete: bool) -> Result<(), std::io::Error> {
        self.recorded = true;
        let read = OperatorRead {
            what: "audit_export",
            subject: Subject::default(),
            details: json!({ "filters": self.filters, "rows": self.rows, "complete": complete }),
        };
        self.state
            .management
            .record_read(&self.ctx, read)
            .await
            .map_err(|e| std::io::Error::other(e.message))
    }
}

impl Drop for Export {
    /// An export the client stopped reading is recorded too, with the rows
    /// sent so far.
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        let management = self.state.management.clone();
        let ctx = self.ctx.clone();
        let read = OperatorRead {
            what: "audit_export",
            subject: Subject::default(),
            details: json!({ "filters": self.filters, "rows": self.rows, "complete": false }),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = management.record_read(&ctx, read).await {
                    tracing::error!(error = %e.message, "an interrupted audit export could not be audited");
                }
            });
        }
    }
}

/// Which users a credential export covers.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CredentialExportFilter {
    /// Only this user's passkeys (absent: every user's).
    #[param(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._~-]{1,128}$")]
    pub external_user_id: Option<String>,
}

#[utoipa::path(get, path = "/api/management/v1/credentials/export", tag = "credentials", params(CredentialExportFilter), responses((status = 200, description = "The credential export, format `biometric-passkey.credentials` version 1 (docs/credential-export.md): a header line, one line per passkey, an `end` line", content_type = "application/x-ndjson"), (status = 400, description = "`invalid_external_user_id`", body = proto::ErrorBody), (status = 403, body = proto::ErrorBody), (status = 404, description = "`user_not_found`", body = proto::ErrorBody), (status = 503, description = "`server_busy`: as many exports as this replica runs at once are running", body = proto::ErrorBody)))]
/// Every passkey, or one user's, with its COSE public key and signature
/// counter, as JSON lines (`application/x-ndjson`) in the credential export
/// format, so a relying party of your own can take them over. Needs
/// `management.credentials.export`. Streamed a page of users at a time and
/// shares the replica's places for exports with the audit export. Complete
/// only with its `end` line: a failure after the first page cuts the body
/// short (the chunked encoding is not terminated). Recorded when it ends,
/// incomplete too, as `operator.read` `credential_export` `via` `api`.
pub async fn credential_export(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    filter: Result<ApiQuery<CredentialExportFilter>, ApiError>,
) -> Result<Response, ApiError> {
    operator.require(Scope::CredentialsExport)?;
    let ApiQuery(filter) = filter?;
    let users = match filter.external_user_id.as_deref() {
        None => ExportUsers::All,
        Some(raw) => ExportUsers::One(http_common::external_user_id(raw)?),
    };
    let place = export_place(&state)?;
    let mut export = state
        .management
        .start_credential_export(users, state.cose_key_of)
        .await?;
    // The header and the first page are read before answering: a database
    // that is down is a clean 503, not a cut body.
    let mut first = Vec::new();
    for _ in 0..2 {
        if let Some(chunk) = export.next_chunk().await? {
            first.extend(chunk);
        }
    }
    let export = CredentialExport {
        state: state.clone(),
        ctx: operator_context(&operator),
        export,
        first: Some(first),
        recorded: false,
        _place: place,
    };
    let body = futures_util::stream::try_unfold(export, CredentialExport::next_chunk);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// A credential export in progress, and its place under the cap.
struct CredentialExport {
    state: ManagementState,
    ctx: RequestContext,
    export: domain::credential::export::Export,
    first: Option<Vec<u8>>,
    recorded: bool,
    _place: tokio::sync::OwnedSemaphorePermit,
}

impl CredentialExport {
    /// The next lines; `None` once the end line is sent (and on the record).
    async fn next_chunk(mut self) -> Result<Option<(Vec<u8>, Self)>, std::io::Error> {
        if let Some(first) = self.first.take() {
            return Ok(Some((first, self)));
        }
        match self.export.next_chunk().await {
            Ok(Some(chunk)) => Ok(Some((chunk, self))),
            Ok(None) => {
                self.recorded = true;
                let read = self.export.on_record(Via::Api, true);
                self.state
                    .management
                    .record_read(&self.ctx, read)
                    .await
                    .map_err(|e| std::io::Error::other(e.message))?;
                Ok(None)
            }
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }
}

impl Drop for CredentialExport {
    /// An export cut short (by a failure, or a client that stopped reading)
    /// is recorded too, as incomplete, with what was sent so far.
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        let management = self.state.management.clone();
        let ctx = self.ctx.clone();
        let read = self.export.on_record(Via::Api, false);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = management.record_read(&ctx, read).await {
                    tracing::error!(error = %e.message, "an interrupted credential export could not be audited");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_exactly_what_the_documented_pattern_allows() {
        for (raw, accepted) in [
            ("i:acme-1", true),
            ("t:1767225600000000:acme-1", true),
            ("t:-99999999999999999:a", true),
            ("t:99999999999999999:a", true),
            // More than 17 digits, a sign the pattern does not allow, or none.
            ("t:100000000000000000:a", false),
            ("t:+1:a", false),
            ("t::a", false),
            ("t:-:a", false),
            ("i:", false),
            ("i:a b", false),
            ("x:a", false),
        ] {
            assert_eq!(decode_cursor(raw).is_ok(), accepted, "{raw}");
        }
        let encoded = encode_cursor(&domain::UserCursor::Created(
            OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap(),
            "acme-1".to_owned(),
        ));
        assert_eq!(encoded, "t:1767225600000000:acme-1");
        assert!(decode_cursor(&encoded).is_ok());
    }
}
