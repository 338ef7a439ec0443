//! Between the domain's types and the wire's.

use axum::http::StatusCode;
use domain::credential::Credential;
use domain::flow::{self, FlowId, FlowState, IdentityStatus};
use domain::service::{FlowView, UserView};
use http_common::ApiError;
use proto::ErrorCode;
use proto::core as wire;

pub fn flow_type_from_wire(t: wire::FlowType) -> flow::FlowType {
    match t {
        wire::FlowType::Registration => flow::FlowType::Registration,
        wire::FlowType::SignIn => flow::FlowType::SignIn,
        wire::FlowType::StepUp => flow::FlowType::StepUp,
        wire::FlowType::Recovery => flow::FlowType::Recovery,
    }
}

fn flow_type_to_wire(t: flow::FlowType) -> wire::FlowType {
    match t {
        flow::FlowType::Registration => wire::FlowType::Registration,
        flow::FlowType::SignIn => wire::FlowType::SignIn,
        flow::FlowType::StepUp => wire::FlowType::StepUp,
        flow::FlowType::Recovery => wire::FlowType::Recovery,
    }
}

fn state_to_wire(s: FlowState) -> wire::FlowState {
    match s {
        FlowState::Pending => wire::FlowState::Pending,
        FlowState::AwaitingVerification => wire::FlowState::AwaitingVerification,
        FlowState::Verified => wire::FlowState::Verified,
        FlowState::InReview => wire::FlowState::InReview,
        FlowState::Completed => wire::FlowState::Completed,
        FlowState::Failed => wire::FlowState::Failed,
        FlowState::Expired => wire::FlowState::Expired,
        FlowState::Cancelled => wire::FlowState::Cancelled,
    }
}

pub fn flow_response(view: FlowView) -> wire::FlowResponse {
    let f = view.flow;
    let result = (f.state == FlowState::Completed).then(|| wire::FlowResult {
        assurance: if f.flow_type.needs_identity() {
            "possession_and_biometric".to_owned()
        } else {
            "possession".to_owned()
        },
        credential_id: f.credential_id,
        transaction_context_sha256: view.transaction_context_sha256.clone(),
        completed_at: f.completed_at.unwrap_or(f.updated_at),
    });
    wire::FlowResponse {
        id: f.id.0,
        flow_type: flow_type_to_wire(f.flow_type),
        state: state_to_wire(f.state),
        version: f.version,
        external_user_id: view.external_user_id.as_str().to_owned(),
        identity: wire::IdentityProof {
            status: f.identity.as_str().to_owned(),
            provider: if f.identity == IdentityStatus::NotRequired {
                "none".to_owned()
            } else {
                view.provider.to_owned()
            },
            workflow_run_id: f.idv_run_id.clone(),
            sdk_token: view.sdk_token.map(|t| t.as_str().to_owned()),
        },
        possession: wire::PossessionProofStatus {
            status: if f.possession_done {
                "verified"
            } else {
                "pending"
            }
            .to_owned(),
            credential_id: f.credential_id,
            webauthn_options: view.webauthn_options,
        },
        biometric_reference_stored: f
            .flow_type
            .creates_credential()
            .then_some(f.reference_stored),
        failure_reason: f.failure_reason.map(|r| r.as_str().to_owned()),
        transaction_context: view.transaction_context,
        transaction_context_sha256: view.transaction_context_sha256,
        cross_platform: f.cross_platform,
        handoff: f.handoff.map(|h| wire::HandoffStatus {
            code: view.handoff_code.map(|c| c.as_str().to_owned()),
            expires_at: h.expires_at,
            claimed: h.claimed_at.is_some(),
        }),
        result,
        created_at: f.created_at,
        updated_at: f.updated_at,
        expires_at: f.expires_at,
    }
}

fn credential_response(c: Credential) -> wire::CredentialResponse {
    wire::CredentialResponse {
        id: c.id,
        webauthn_id: c.webauthn_id.as_str().to_owned(),
        status: c.status.as_str().to_owned(),
        status_reason: c.status_reason,
        aaguid: c.aaguid,
        sign_count: c.sign_count,
        transports: c.transports,
        backup_eligible: c.backup_eligible,
        backup_state: c.backup_state,
        platform: c.platform,
        device_label: c.device_label,
        created_by_flow: c.created_by_flow.0,
        created_at: c.created_at,
        last_used_at: c.last_used_at,
    }
}

pub fn user_response(view: UserView) -> wire::UserResponse {
    wire::UserResponse {
        external_user_id: view.user.external_id.as_str().to_owned(),
        created_at: view.user.created_at,
        has_biometric_reference: view.has_biometric_reference,
        credentials: view
            .credentials
            .into_iter()
            .map(credential_response)
            .collect(),
    }
}

pub use http_common::external_user_id;

pub fn flow_id(raw: &str) -> Result<FlowId, ApiError> {
    uuid::Uuid::parse_str(raw).map(FlowId).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidParameter,
            "flow_id must be a UUID",
        )
    })
}
