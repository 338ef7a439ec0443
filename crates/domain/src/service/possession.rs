//! The possession proof: a new credential (registration, recovery:
//! `new_credential`) or an assertion by an existing one (sign-in, step-up:
//! `assertion`). In `builtin` mode the proof is first verified from the
//! flow's WebAuthn ceremony (`ceremony`).

mod assertion;
mod new_credential;

use proto::ErrorCode;
use serde_json::Value;
use uuid::Uuid;

use super::{ChangeDraft, FlowService, FlowView, RequestContext, transition_error};
use crate::error::{DomainError, DomainResult};
use crate::flow::{Fact, Flow, FlowId, NewCredential, TransitionError};
use crate::ids;
use assertion::Assertion;

/// The possession proof, as the customer's relying party verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PossessionProof {
    /// Registration, recovery: the new credential.
    NewCredential {
        webauthn_id: String,
        public_key: Option<Vec<u8>>,
        aaguid: Option<Uuid>,
        sign_count: u32,
        transports: Vec<String>,
        backup_eligible: bool,
        backup_state: bool,
        platform: Option<String>,
        device_label: Option<String>,
    },
    /// Sign-in, step-up: an assertion by an existing credential.
    Assertion {
        webauthn_id: String,
        sign_count: u32,
        backup_eligible: Option<bool>,
        backup_state: Option<bool>,
    },
    /// `builtin` mode: the authenticator's response (`RegistrationResponseJSON`
    /// or `AuthenticationResponseJSON`), verified here.
    WebAuthn {
        response: Value,
        platform: Option<String>,
        device_label: Option<String>,
    },
}

/// What an accepted proof writes: the fact, what to write with it, and the
/// flow to apply it to (carrying a new credential until the flow completes;
/// its version unchanged).
struct Possession {
    fact: Fact,
    draft: ChangeDraft,
    flow: Flow,
}

impl FlowService {
    #[tracing::instrument(target = "biometric_passkey::span", name = "flow.possession", skip_all)]
    pub async fn submit_possession(
        &self,
        ctx: &RequestContext,
        id: FlowId,
        proof: PossessionProof,
    ) -> DomainResult<FlowView> {
        let flow = self.load(id).await?;
        if flow.state.is_terminal() {
            return Err(transition_error(&flow, TransitionError::Terminal));
        }
        let now = self.clock.now();
        let (proof, passkey) = self.verified_proof(ctx, &flow, proof, now).await?;
        let possession = match (flow.flow_type.creates_credential(), proof) {
            (
                true,
                PossessionProof::NewCredential {
                    webauthn_id,
                    public_key,
                    aaguid,
                    sign_count,
                    transports,
                    backup_eligible,
                    backup_state,
                    platform,
                    device_label,
                },
            ) => {
                let credential = NewCredential {
                    id: ids::new_id(now),
                    webauthn_id,
                    public_key,
                    aaguid,
                    sign_count,
                    transports,
                    backup_eligible,
                    backup_state,
                    platform,
                    device_label,
                    passkey,
                };
                self.new_credential(ctx, flow, credential, now).await?
            }
            (
                false,
                PossessionProof::Assertion {
                    webauthn_id,
                    sign_count,
                    backup_eligible,
                    backup_state,
                },
            ) => {
                let assertion = Assertion {
                    webauthn_id,
                    sign_count,
                    backup_eligible,
                    backup_state,
                };
                self.assertion(ctx, flow, assertion, now).await?
            }
            (creates, _) => {
                let expected = if creates {
                    "a new credential"
                } else {
                    "an assertion"
                };
                return Err(DomainError::bad_request(
                    ErrorCode::InvalidCredential,
                    format!("a {} flow takes {expected}", flow.flow_type),
                ));
            }
        };
        let Possession { fact, draft, flow } = possession;
        // In `builtin` mode the ceremony is consumed by the same conditional write.
        let flow = if self.relying_party.is_some() {
            Flow {
                ceremony: None,
                ..flow
            }
        } else {
            flow
        };
        let flow = self.advance(ctx, &flow, &fact, draft).await?;
        self.view(flow, None).await
    }
}
