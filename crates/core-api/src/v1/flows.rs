//! Flows: create, read (with long-polling), possession proof, cancel, and the
//! biometric reference's custody.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use domain::service::{CreateFlow, PossessionProof};
use http_common::{ApiError, ApiJson, ApiPath, ApiQuery, RequestSlot};
use proto::ErrorBody;
use proto::ErrorCode;
use proto::core::{
    BiometricReferenceBody, CreateFlowRequest, FlowResponse, FlowWaitQuery, PossessionRequest,
};
use tokio::time::Instant;

use super::integration;
use crate::CoreState;
use crate::convert::{external_user_id, flow_id, flow_response, flow_type_from_wire};
use crate::idempotency::ConcernsUser;

/// A flow's answer, naming its user for the idempotency layer (a stored copy
/// goes with the user's deletion).
pub(crate) type UserFlowResponse = (Extension<ConcernsUser>, ApiJson<FlowResponse>);

pub(crate) fn user_flow_response(view: domain::service::FlowView) -> UserFlowResponse {
    let user = ConcernsUser(view.flow.user_id);
    (Extension(user), ApiJson(flow_response(view)))
}

/// The longest a long-poll waits.
pub const MAX_WAIT_SECONDS: u32 = 30;
/// How often a waiter re-reads the flow to see changes made by other replicas.
const RECHECK: Duration = Duration::from_millis(500);

/// Start a flow.
#[utoipa::path(
    post,
    path = "/api/core/v1/flows",
    operation_id = "create_flow",
    tag = "flows",
    request_body = CreateFlowRequest,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters. The first response to a request with this key is stored for 24 hours and replayed (with `Idempotent-Replayed: true`) to a repeat of the same request")),
    responses(
        (status = 201, description = "Created; `identity.sdk_token` starts the SDK's capture", body = FlowResponse),
        (status = 400, description = "`invalid_external_user_id`, `transaction_context_not_allowed` (only step-up takes `transaction_context` or `cross_platform`), `invalid_request_body`", body = ErrorBody),
        (status = 404, description = "`user_not_found` (only registration creates users)", body = ErrorBody),
        (status = 409, description = "`no_active_credential`, `biometric_reference_missing`, `user_already_enrolled`", body = ErrorBody),
        (status = 413, description = "`transaction_context_too_large`", body = ErrorBody),
        (status = 429, description = "`too_many_open_flows`, `idv_run_limit_reached`", body = ErrorBody),
        (status = 503, description = "`idv_unavailable` (the flow is marked failed), `service_unavailable`", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<Arc<CoreState>>,
    ApiJson(body): ApiJson<CreateFlowRequest>,
) -> Result<(StatusCode, UserFlowResponse), ApiError> {
    let request = CreateFlow {
        flow_type: flow_type_from_wire(body.flow_type),
        external_user_id: external_user_id(&body.external_user_id)?,
        transaction_context: body.transaction_context,
        cross_platform: body.cross_platform,
    };
    let view = state.flows.create_flow(&integration(), request).await?;
    Ok((StatusCode::CREATED, user_flow_response(view)))
}

/// Read a flow; with `after_version` and `wait_seconds`, wait (bounded) until it changes.
#[utoipa::path(
    get,
    path = "/api/core/v1/flows/{flow_id}",
    operation_id = "read_flow",
    tag = "flows",
    params(("flow_id" = uuid::Uuid, Path), FlowWaitQuery),
    responses(
        (status = 200, body = FlowResponse),
        (status = 400, description = "`invalid_parameter`: `flow_id` is not a UUID, `wait_seconds` is over 30, or a parameter is malformed", body = ErrorBody),
        (status = 404, description = "`flow_not_found`", body = ErrorBody),
    )
)]
pub async fn read(
    State(state): State<Arc<CoreState>>,
    ApiPath(raw_id): ApiPath<String>,
    ApiQuery(wait): ApiQuery<FlowWaitQuery>,
    slot: Option<Extension<RequestSlot>>,
) -> Result<ApiJson<FlowResponse>, ApiError> {
    let id = flow_id(&raw_id)?;
    let seconds = wait.wait_seconds.unwrap_or(0);
    if seconds > MAX_WAIT_SECONDS {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            format!("wait_seconds must be at most {MAX_WAIT_SECONDS}"),
        ));
    }
    // Wait on the flow before reading it, so a change between the read and
    // the wait is not missed. Past the replica's cap on waiters, the read
    // answers at once: the caller simply asks again.
    let mut waiter = match wait.after_version {
        Some(_) if seconds > 0 => state.watch.wait_on(id),
        _ => None,
    };
    let mut view = state.flows.get_flow(id).await?;
    let (Some(after), Some(waiter)) = (wait.after_version, waiter.as_mut()) else {
        return Ok(ApiJson(flow_response(view)));
    };
    // While it waits, the request counts against the waiters' cap, not the
    // cap on requests being worked on.
    if let Some(Extension(slot)) = slot {
        slot.release();
    }
    let deadline = Instant::now() + Duration::from_secs(u64::from(seconds));
    while view.flow.version <= after && !view.flow.state.is_terminal() && Instant::now() < deadline
    {
        let _ =
            tokio::time::timeout_at(deadline.min(Instant::now() + RECHECK), waiter.changed()).await;
        view = state.flows.get_flow(id).await?;
    }
    Ok(ApiJson(flow_response(view)))
}

/// Submit the possession proof: in `external` mode the facts the customer's
/// relying party verified, in `builtin` mode the authenticator's response.
#[utoipa::path(
    post,
    path = "/api/core/v1/flows/{flow_id}/possession",
    operation_id = "submit_possession",
    tag = "flows",
    params(("flow_id" = uuid::Uuid, Path), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters. The first response to a request with this key is stored for 24 hours and replayed (with `Idempotent-Replayed: true`) to a repeat of the same request")),
    request_body = PossessionRequest,
    responses(
        (status = 200, body = FlowResponse),
        (status = 400, description = "`invalid_credential`; builtin mode: `webauthn_response_malformed`, `webauthn_origin_not_allowed`, `webauthn_rp_id_mismatch`, `webauthn_challenge_mismatch`, `webauthn_signature_invalid`, `webauthn_user_not_verified`, `webauthn_user_not_present`, `webauthn_attestation_not_allowed`, `webauthn_authenticator_compromised`, `webauthn_credential_not_allowed`", body = ErrorBody),
        (status = 404, description = "`flow_not_found`, `credential_not_found` (unknown, or another user's)", body = ErrorBody),
        (status = 409, description = "`credential_not_active`, `counter_regression`, `credential_already_registered`, `flow_expired`, `flow_ended`, `flow_changed`, `proof_not_expected`, `proof_not_yet_accepted`, `possession_mode_mismatch`, `webauthn_ceremony_expired`, `backup_eligible_not_allowed`, `backup_eligibility_changed`", body = ErrorBody),
    )
)]
pub async fn possession(
    State(state): State<Arc<CoreState>>,
    ApiPath(raw_id): ApiPath<String>,
    ApiJson(body): ApiJson<PossessionRequest>,
) -> Result<UserFlowResponse, ApiError> {
    let id = flow_id(&raw_id)?;
    let proof = match (body.credential, body.assertion, body.webauthn) {
        (None, None, Some(w)) => PossessionProof::WebAuthn {
            response: w.response,
            platform: w.platform,
            device_label: w.device_label,
        },
        (Some(c), None, None) => PossessionProof::NewCredential {
            public_key: c
                .public_key
                .map(|k| URL_SAFE_NO_PAD.decode(k))
                .transpose()
                .map_err(|_| {
                    ApiError::bad_request(
                        ErrorCode::InvalidCredential,
                        "credential.public_key must be unpadded base64url",
                    )
                })?,
            webauthn_id: c.id,
            aaguid: c.aaguid,
            sign_count: c.sign_count,
            transports: c.transports,
            backup_eligible: c.backup_eligible,
            backup_state: c.backup_state,
            platform: c.platform,
            device_label: c.device_label,
        },
        (None, Some(a), None) => PossessionProof::Assertion {
            webauthn_id: a.credential_id,
            sign_count: a.sign_count,
            backup_eligible: a.backup_eligible,
            backup_state: a.backup_state,
        },
        _ => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidCredential,
                "give exactly one of `credential` (registration, recovery) or `assertion` \
                 (sign-in, step-up) in external mode, or `webauthn` in builtin mode",
            ));
        }
    };
    let view = state
        .flows
        .submit_possession(&integration(), id, proof)
        .await?;
    Ok(user_flow_response(view))
}

/// Cancel a flow that has not ended.
#[utoipa::path(
    post,
    path = "/api/core/v1/flows/{flow_id}/cancel",
    operation_id = "cancel_flow",
    tag = "flows",
    params(("flow_id" = uuid::Uuid, Path), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters. The first response to a request with this key is stored for 24 hours and replayed (with `Idempotent-Replayed: true`) to a repeat of the same request")),
    responses(
        (status = 200, body = FlowResponse),
        (status = 404, description = "`flow_not_found`", body = ErrorBody),
        (status = 409, description = "`flow_ended`, `flow_expired`, `flow_changed`", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<Arc<CoreState>>,
    ApiPath(raw_id): ApiPath<String>,
) -> Result<UserFlowResponse, ApiError> {
    let view = state
        .flows
        .cancel(&integration(), flow_id(&raw_id)?)
        .await?;
    Ok(user_flow_response(view))
}

fn decode_token(raw: &str) -> Result<Vec<u8>, ApiError> {
    let trimmed = raw.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| STANDARD.decode(raw))
        .map_err(|_| ApiError::bad_request(ErrorCode::InvalidRequestBody, "token must be base64"))
}

/// Store the biometric reference the IDV SDK produced during this flow's capture
/// (registration, recovery). Replaces the user's previous reference.
#[utoipa::path(
    put,
    path = "/api/core/v1/flows/{flow_id}/biometric-reference",
    operation_id = "store_biometric_reference",
    tag = "biometric reference",
    params(("flow_id" = uuid::Uuid, Path), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters. The first response to a request with this key is stored for 24 hours and replayed (with `Idempotent-Replayed: true`) to a repeat of the same request")),
    request_body = BiometricReferenceBody,
    responses(
        (status = 200, body = FlowResponse),
        (status = 400, description = "`invalid_request_body`: the token is not base64, or decodes to more than 131072 bytes", body = ErrorBody),
        (status = 404, description = "`flow_not_found`", body = ErrorBody),
        (status = 409, description = "`proof_not_expected` (not a registration or recovery flow), `flow_ended`, `flow_expired`, `flow_changed`", body = ErrorBody),
    )
)]
pub async fn store_reference(
    State(state): State<Arc<CoreState>>,
    ApiPath(raw_id): ApiPath<String>,
    ApiJson(body): ApiJson<BiometricReferenceBody>,
) -> Result<UserFlowResponse, ApiError> {
    let id = flow_id(&raw_id)?;
    let token = zeroize::Zeroizing::new(decode_token(&body.token)?);
    let view = state
        .flows
        .store_reference(&integration(), id, &token)
        .await?;
    Ok(user_flow_response(view))
}

/// Release the user's biometric reference to the SDK, for a step-up or recovery
/// flow of the same user awaiting verification. Audited.
#[utoipa::path(
    post,
    path = "/api/core/v1/flows/{flow_id}/biometric-reference/release",
    operation_id = "release_biometric_reference",
    tag = "biometric reference",
    params(("flow_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The token, base64url", body = BiometricReferenceBody),
        (status = 404, description = "`flow_not_found`", body = ErrorBody),
        (status = 409, description = "`biometric_reference_not_releasable`, `biometric_reference_missing`", body = ErrorBody),
    )
)]
pub async fn release_reference(
    State(state): State<Arc<CoreState>>,
    ApiPath(raw_id): ApiPath<String>,
) -> Result<ApiJson<BiometricReferenceBody>, ApiError> {
    let token = state
        .flows
        .release_reference(&integration(), flow_id(&raw_id)?)
        .await?;
    Ok(ApiJson(BiometricReferenceBody {
        token: URL_SAFE_NO_PAD.encode(&*token),
    }))
}
