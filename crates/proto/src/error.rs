//! The JSON error body and the stable error codes every runtime answers with.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A stable, documented error code. The string form is the contract; the enum
/// is how the code base names it. See `docs/errors.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No route matches the request path.
    RouteNotFound,
    /// The route exists but not for this HTTP method.
    MethodNotAllowed,
    /// The request body is not valid JSON or does not match the expected shape.
    InvalidRequestBody,
    /// The request declares a content type other than `application/json`.
    UnsupportedMediaType,
    /// The request body exceeds the route's size limit.
    PayloadTooLarge,
    /// A path or query parameter is malformed.
    InvalidParameter,
    /// The request needs credentials it did not carry, or carried invalid ones.
    Unauthorized,
    /// The operator's token lacks the scope the action needs (named in the message).
    MissingScope,
    /// `dev` only: the request's `Host` is not a loopback name (a page reaching the
    /// runtime through a DNS name it controls is refused).
    HostNotAllowed,
    /// Management API: the credential cannot move to that status from its current one.
    CredentialTransitionNotAllowed,
    /// Management API: the overview's period is longer than 31 days.
    OverviewPeriodTooLong,
    /// The addressed resource does not exist.
    NotFound,
    /// The request conflicts with the resource's current state.
    Conflict,
    /// A dependency (database, provider) is unavailable; retry after `Retry-After`.
    ServiceUnavailable,
    /// The server is not ready to serve traffic (readiness probe).
    NotReady,
    /// The replica is serving as many requests as it takes at once; nothing was done. Retry after `Retry-After`.
    ServerBusy,
    /// The request took longer than the server's limit and was stopped; a change it made is kept only if it was committed. Retry after `Retry-After`, with the same `Idempotency-Key`.
    RequestTimeout,
    /// `external_user_id` is not 1–128 characters of `A-Z a-z 0-9 . _ ~ -`.
    InvalidExternalUserId,
    /// The credential in a possession proof is malformed.
    InvalidCredential,
    /// The step-up transaction context exceeds its size limit.
    TransactionContextTooLarge,
    /// Only step-up flows take a transaction context or `cross_platform`.
    TransactionContextNotAllowed,
    /// No user with this `external_user_id`.
    UserNotFound,
    /// No flow with this id.
    FlowNotFound,
    /// The user has no active credential to sign in or step up with.
    NoActiveCredential,
    /// The user has no stored biometric reference to verify against.
    BiometricReferenceMissing,
    /// The reference is released only to a step-up or recovery flow awaiting verification.
    BiometricReferenceNotReleasable,
    /// A registration for a user who is enrolled already (a biometric
    /// reference, or a passkey not revoked): enrol a new device through recovery.
    UserAlreadyEnrolled,
    /// The flow is past its expiry and can no longer change.
    FlowExpired,
    /// The flow has completed, failed or been cancelled.
    FlowEnded,
    /// A concurrent request changed the flow first; read it again.
    FlowChanged,
    /// The flow does not take this proof, or already has it.
    ProofNotExpected,
    /// The flow does not accept this proof yet (for example before its hand-off is claimed).
    ProofNotYetAccepted,
    /// The credential is suspended or revoked.
    CredentialNotActive,
    /// No credential with this id for this user.
    CredentialNotFound,
    /// A credential with this WebAuthn id is registered already.
    CredentialAlreadyRegistered,
    /// The reported signature counter did not grow: a possibly cloned authenticator. Audited.
    CounterRegression,
    /// The hand-off code is unknown, expired, already used, or for another user.
    HandoffInvalid,
    /// Too many requests from this source (webhook deliveries from one address,
    /// hand-off claims for one user) were refused within the minute; nothing was
    /// done. Retry after `Retry-After`.
    TooManyRefusedRequests,
    /// The user has too many flows in progress; finish or cancel one.
    TooManyOpenFlows,
    /// The user has started too many identity verifications in the last 24 hours.
    IdvRunLimitReached,
    /// The identity-verification provider is unavailable; the flow was marked failed. Retry with a new flow.
    IdvUnavailable,
    /// `Idempotency-Key` must be 1–255 visible ASCII characters.
    InvalidIdempotencyKey,
    /// This `Idempotency-Key` was used with a different request.
    IdempotencyKeyReused,
    /// A request with this `Idempotency-Key` is still being processed; retry shortly.
    IdempotencyRequestInProgress,
    /// The identity provider's run is not known.
    UnknownRun,
    /// A webhook delivery's `X-SHA2-Signature` is missing or does not match its body.
    WebhookSignatureInvalid,
    /// A webhook delivery is not a provider event (no `payload.action` or `payload.object.id`).
    WebhookMalformed,
    /// Reserved: a stale webhook delivery is acknowledged (`200`, result
    /// `stale`) rather than refused, so that the provider does not resend it.
    WebhookStale,
    /// The possession proof is of the other mode: `builtin` deployments take the authenticator's response (`webauthn`), `external` ones the verified facts.
    PossessionModeMismatch,
    /// The authenticator's response is not a well-formed WebAuthn response. Audited.
    WebauthnResponseMalformed,
    /// The response was made on an origin that is not in `BIOMETRIC_PASSKEY_WEBAUTHN_ORIGINS`. Audited.
    WebauthnOriginNotAllowed,
    /// The response was made for another relying party id. Audited.
    WebauthnRpIdMismatch,
    /// The response answers another ceremony's challenge (another flow's, or one already used). Audited.
    WebauthnChallengeMismatch,
    /// The flow's WebAuthn challenge has expired; start a new flow. Audited.
    WebauthnCeremonyExpired,
    /// The assertion's signature does not verify with the registered public key. Audited.
    WebauthnSignatureInvalid,
    /// User verification is required and the authenticator did not verify the user. Audited.
    WebauthnUserNotVerified,
    /// The authenticator did not report user presence. Audited.
    WebauthnUserNotPresent,
    /// Attestation is required and this authenticator's does not chain to a configured root for an allowed AAGUID. Audited.
    WebauthnAttestationNotAllowed,
    /// The attestation verifies, and the authenticator metadata (a FIDO Metadata Service BLOB) reports this authenticator model compromised or revoked. Audited, with the AAGUID and the status.
    WebauthnAuthenticatorCompromised,
    /// The response uses a credential this ceremony does not allow (unknown, another user's, excluded or not active when the flow began). Audited.
    WebauthnCredentialNotAllowed,
    /// The passkey can be backed up (synced) and the backup-eligibility policy is `reject`. Audited.
    BackupEligibleNotAllowed,
    /// The credential's backup eligibility differs from its registration and the policy is `reject`. Audited.
    BackupEligibilityChanged,
    /// An unexpected server-side failure; details are in the server log under
    /// the same correlation id.
    #[serde(rename = "internal_error")]
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: &'static [Self] = &[
        Self::RouteNotFound,
        Self::MethodNotAllowed,
        Self::InvalidRequestBody,
        Self::UnsupportedMediaType,
        Self::PayloadTooLarge,
        Self::InvalidParameter,
        Self::Unauthorized,
        Self::MissingScope,
        Self::HostNotAllowed,
        Self::CredentialTransitionNotAllowed,
        Self::OverviewPeriodTooLong,
        Self::NotFound,
        Self::Conflict,
        Self::ServiceUnavailable,
        Self::NotReady,
        Self::ServerBusy,
        Self::RequestTimeout,
        Self::InvalidExternalUserId,
        Self::InvalidCredential,
        Self::TransactionContextTooLarge,
        Self::TransactionContextNotAllowed,
        Self::UserNotFound,
        Self::FlowNotFound,
        Self::NoActiveCredential,
        Self::BiometricReferenceMissing,
        Self::BiometricReferenceNotReleasable,
        Self::UserAlreadyEnrolled,
        Self::FlowExpired,
        Self::FlowEnded,
        Self::FlowChanged,
        Self::ProofNotExpected,
        Self::ProofNotYetAccepted,
        Self::CredentialNotActive,
        Self::CredentialNotFound,
        Self::CredentialAlreadyRegistered,
        Self::CounterRegression,
        Self::HandoffInvalid,
        Self::TooManyRefusedRequests,
        Self::TooManyOpenFlows,
        Self::IdvRunLimitReached,
        Self::IdvUnavailable,
        Self::InvalidIdempotencyKey,
        Self::IdempotencyKeyReused,
        Self::IdempotencyRequestInProgress,
        Self::UnknownRun,
        Self::WebhookSignatureInvalid,
        Self::WebhookMalformed,
        Self::WebhookStale,
        Self::PossessionModeMismatch,
        Self::WebauthnResponseMalformed,
        Self::WebauthnOriginNotAllowed,
        Self::WebauthnRpIdMismatch,
        Self::WebauthnChallengeMismatch,
        Self::WebauthnCeremonyExpired,
        Self::WebauthnSignatureInvalid,
        Self::WebauthnUserNotVerified,
        Self::WebauthnUserNotPresent,
        Self::WebauthnAttestationNotAllowed,
        Self::WebauthnAuthenticatorCompromised,
        Self::WebauthnCredentialNotAllowed,
        Self::BackupEligibleNotAllowed,
        Self::BackupEligibilityChanged,
        Self::Internal,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidRequestBody => "invalid_request_body",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::InvalidParameter => "invalid_parameter",
            Self::Unauthorized => "unauthorized",
            Self::MissingScope => "missing_scope",
            Self::HostNotAllowed => "host_not_allowed",
            Self::CredentialTransitionNotAllowed => "credential_transition_not_allowed",
            Self::OverviewPeriodTooLong => "overview_period_too_long",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::ServiceUnavailable => "service_unavailable",
            Self::NotReady => "not_ready",
            Self::ServerBusy => "server_busy",
            Self::RequestTimeout => "request_timeout",
            Self::InvalidExternalUserId => "invalid_external_user_id",
            Self::InvalidCredential => "invalid_credential",
            Self::TransactionContextTooLarge => "transaction_context_too_large",
            Self::TransactionContextNotAllowed => "transaction_context_not_allowed",
            Self::UserNotFound => "user_not_found",
            Self::FlowNotFound => "flow_not_found",
            Self::NoActiveCredential => "no_active_credential",
            Self::BiometricReferenceMissing => "biometric_reference_missing",
            Self::BiometricReferenceNotReleasable => "biometric_reference_not_releasable",
            Self::UserAlreadyEnrolled => "user_already_enrolled",
            Self::FlowExpired => "flow_expired",
            Self::FlowEnded => "flow_ended",
            Self::FlowChanged => "flow_changed",
            Self::ProofNotExpected => "proof_not_expected",
            Self::ProofNotYetAccepted => "proof_not_yet_accepted",
            Self::CredentialNotActive => "credential_not_active",
            Self::CredentialNotFound => "credential_not_found",
            Self::CredentialAlreadyRegistered => "credential_already_registered",
            Self::CounterRegression => "counter_regression",
            Self::HandoffInvalid => "handoff_invalid",
            Self::TooManyRefusedRequests => "too_many_refused_requests",
            Self::TooManyOpenFlows => "too_many_open_flows",
            Self::IdvRunLimitReached => "idv_run_limit_reached",
            Self::IdvUnavailable => "idv_unavailable",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyRequestInProgress => "idempotency_request_in_progress",
            Self::UnknownRun => "unknown_run",
            Self::WebhookSignatureInvalid => "webhook_signature_invalid",
            Self::WebhookMalformed => "webhook_malformed",
            Self::WebhookStale => "webhook_stale",
            Self::PossessionModeMismatch => "possession_mode_mismatch",
            Self::WebauthnResponseMalformed => "webauthn_response_malformed",
            Self::WebauthnOriginNotAllowed => "webauthn_origin_not_allowed",
            Self::WebauthnRpIdMismatch => "webauthn_rp_id_mismatch",
            Self::WebauthnChallengeMismatch => "webauthn_challenge_mismatch",
            Self::WebauthnCeremonyExpired => "webauthn_ceremony_expired",
            Self::WebauthnSignatureInvalid => "webauthn_signature_invalid",
            Self::WebauthnUserNotVerified => "webauthn_user_not_verified",
            Self::WebauthnUserNotPresent => "webauthn_user_not_present",
            Self::WebauthnAttestationNotAllowed => "webauthn_attestation_not_allowed",
            Self::WebauthnAuthenticatorCompromised => "webauthn_authenticator_compromised",
            Self::WebauthnCredentialNotAllowed => "webauthn_credential_not_allowed",
            Self::BackupEligibleNotAllowed => "backup_eligible_not_allowed",
            Self::BackupEligibilityChanged => "backup_eligibility_changed",
            Self::Internal => "internal_error",
        }
    }
}

/// `{ "error": { "code", "message", "correlation_id" } }`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    pub correlation_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_name_matches_as_str() {
        for &code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}

#[cfg(test)]
mod documentation {
    use super::ErrorCode;

    #[test]
    fn every_code_is_documented() {
        let reference = include_str!("../../../docs/errors.md");
        for &code in ErrorCode::ALL {
            assert!(
                reference.contains(&format!("| `{}` |", code.as_str())),
                "{code:?} undocumented"
            );
        }
    }
}
