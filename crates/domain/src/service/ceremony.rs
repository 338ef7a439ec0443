//! `builtin` possession mode: the flow's WebAuthn ceremony, started with the
//! flow and finished by the possession proof.

use proto::ErrorCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{FlowService, PossessionProof, RequestContext, transition_error};
use crate::credential::{CredentialStatus, RegisteredPasskey};
use crate::error::{DomainError, DomainResult, ErrorKind};
use crate::flow::{Ceremony, Flow, FlowId, TransitionError};
use crate::possession::{CeremonyError, PasskeyUser, RelyingParty, StoredPasskey};
use crate::rotation::SealedColumn;
use crate::sealing::Binding;
use crate::user::User;

fn ceremony_binding(id: &FlowId) -> Binding<'_> {
    SealedColumn::FlowCeremony.binding(id.0.as_bytes())
}

/// A refused WebAuthn response as the caller sees it, and the audit reason.
fn ceremony_refusal(error: CeremonyError) -> DomainError {
    let (code, message) = match &error {
        CeremonyError::Malformed(_) => (ErrorCode::WebauthnResponseMalformed, error.to_string()),
        CeremonyError::Origin => (ErrorCode::WebauthnOriginNotAllowed, error.to_string()),
        CeremonyError::RpId => (ErrorCode::WebauthnRpIdMismatch, error.to_string()),
        CeremonyError::Challenge => (ErrorCode::WebauthnChallengeMismatch, error.to_string()),
        CeremonyError::Signature => (ErrorCode::WebauthnSignatureInvalid, error.to_string()),
        CeremonyError::UserVerification => (ErrorCode::WebauthnUserNotVerified, error.to_string()),
        CeremonyError::UserPresence => (ErrorCode::WebauthnUserNotPresent, error.to_string()),
        CeremonyError::Attestation(_) => {
            (ErrorCode::WebauthnAttestationNotAllowed, error.to_string())
        }
        CeremonyError::AuthenticatorCompromised { .. } => (
            ErrorCode::WebauthnAuthenticatorCompromised,
            error.to_string(),
        ),
        CeremonyError::CredentialNotAllowed => {
            (ErrorCode::WebauthnCredentialNotAllowed, error.to_string())
        }
        CeremonyError::BackupEligibilityChanged => {
            return DomainError::conflict(ErrorCode::BackupEligibilityChanged, error.to_string());
        }
        CeremonyError::Internal(detail) => {
            return DomainError::internal(format!("WebAuthn verification: {detail}"));
        }
    };
    DomainError::bad_request(code, message)
}
impl FlowService {
    /// `builtin` mode: the flow's WebAuthn ceremony. Registration and recovery
    /// exclude the user's passkeys that are not revoked; sign-in and step-up
    /// allow their active passkeys registered in this mode.
    ///
    /// Revoked passkeys are not excluded: an authenticator that still holds
    /// one (a phone found again, a passkey revoked as a precaution) may then
    /// enrol anew instead of refusing as "already registered", and the list
    /// stays as short as the user's live passkeys however long their history.
    /// A revoked credential itself can never be registered again: credential
    /// ids are unique in the store.
    pub(super) async fn start_ceremony(
        &self,
        rp: &dyn RelyingParty,
        user: &User,
        flow: &Flow,
        now: OffsetDateTime,
    ) -> DomainResult<(Ceremony, Value)> {
        let credentials = self.repo.live_credentials_of(user.id).await?;
        let start = if flow.flow_type.creates_credential() {
            let exclude: Vec<String> = credentials
                .iter()
                .map(|c| c.webauthn_id.as_str().to_owned())
                .collect();
            let name = user.external_id.as_str();
            rp.start_registration(
                PasskeyUser {
                    handle: user.id.0,
                    name,
                    display_name: name,
                },
                &exclude,
            )
        } else {
            let allow: Vec<StoredPasskey> = credentials
                .iter()
                .filter(|c| c.status == CredentialStatus::Active)
                .filter_map(|c| {
                    c.passkey.as_ref().map(|p| StoredPasskey {
                        webauthn_id: c.webauthn_id.as_str().to_owned(),
                        data: p.data.clone(),
                    })
                })
                .collect();
            if allow.is_empty() {
                return Err(DomainError::conflict(
                    ErrorCode::NoActiveCredential,
                    "the user has no active passkey registered by the built-in relying party",
                ));
            }
            rp.start_authentication(&allow)
        }
        .map_err(|e| DomainError::internal(format!("starting the WebAuthn ceremony: {e}")))?;
        let ceremony = Ceremony {
            state_sealed: self.key.seal(&start.state, ceremony_binding(&flow.id)),
            expires_at: (now + self.policy.ceremony_ttl).min(flow.expires_at),
        };
        Ok((ceremony, start.options))
    }

    /// The proof in the form the possession rules take: as given in `external`
    /// mode; verified by the relying party, from the flow's single-use
    /// ceremony, in `builtin` mode. A refusal is audited and changes nothing.
    pub(super) async fn verified_proof(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        proof: PossessionProof,
        now: OffsetDateTime,
    ) -> DomainResult<(PossessionProof, Option<RegisteredPasskey>)> {
        let (rp, response, platform, device_label) = match (&self.relying_party, proof) {
            (None, PossessionProof::WebAuthn { .. }) => {
                return Err(DomainError::conflict(
                    ErrorCode::PossessionModeMismatch,
                    "this deployment takes the facts your relying party verified (external mode), \
                     not an authenticator response",
                ));
            }
            (Some(_), PossessionProof::WebAuthn { .. }) if flow.ceremony.is_none() => {
                return Err(transition_error(flow, TransitionError::NotExpected));
            }
            (
                Some(rp),
                PossessionProof::WebAuthn {
                    response,
                    platform,
                    device_label,
                },
            ) => (rp, response, platform, device_label),
            (Some(_), _) => {
                return Err(DomainError::conflict(
                    ErrorCode::PossessionModeMismatch,
                    "this deployment verifies passkeys itself (builtin mode): send the \
                     authenticator's response as `webauthn`",
                ));
            }
            (None, proof) => return Ok((proof, None)),
        };
        let Some(ceremony) = &flow.ceremony else {
            return Err(transition_error(flow, TransitionError::NotExpected));
        };
        if now >= ceremony.expires_at {
            let err = DomainError::conflict(
                ErrorCode::WebauthnCeremonyExpired,
                "the WebAuthn challenge has expired; start a new flow",
            );
            return Err(self
                .reject(ctx, flow, err, "webauthn_ceremony_expired")
                .await);
        }
        let state = self
            .key
            .open(&ceremony.state_sealed, ceremony_binding(&flow.id))
            .map_err(|e| DomainError::internal(format!("WebAuthn ceremony: {e}")))?;
        if flow.flow_type.creates_credential() {
            match rp.finish_registration(&state, &response).await {
                Ok(v) => Ok((
                    PossessionProof::NewCredential {
                        webauthn_id: v.webauthn_id,
                        public_key: Some(v.public_key),
                        aaguid: v.aaguid,
                        sign_count: v.sign_count,
                        transports: v.transports,
                        backup_eligible: v.backup_eligible,
                        backup_state: v.backup_state,
                        platform,
                        device_label,
                    },
                    Some(RegisteredPasskey {
                        user_verified: v.user_verified,
                        attestation_format: v.attestation_format,
                        attestation_verified: v.attestation_verified,
                        data: v.data,
                    }),
                )),
                Err(e) => Err(self.refuse_ceremony(ctx, flow, e).await),
            }
        } else {
            match rp.finish_authentication(&state, &response).await {
                Ok(v) => Ok((
                    PossessionProof::Assertion {
                        webauthn_id: v.webauthn_id,
                        sign_count: v.sign_count,
                        backup_eligible: Some(v.backup_eligible),
                        backup_state: Some(v.backup_state),
                    },
                    None,
                )),
                Err(e) => Err(self.refuse_ceremony(ctx, flow, e).await),
            }
        }
    }

    async fn refuse_ceremony(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        error: CeremonyError,
    ) -> DomainError {
        // A compromised model is named on the record, for the operator's follow-up.
        let details = match &error {
            CeremonyError::AuthenticatorCompromised { aaguid, status } => {
                json!({ "aaguid": aaguid, "status": status })
            }
            _ => json!({}),
        };
        let err = ceremony_refusal(error);
        if err.kind == ErrorKind::Internal {
            return err;
        }
        let reason = err.code.as_str();
        self.reject_with(ctx, flow, err, reason, details).await
    }
}
