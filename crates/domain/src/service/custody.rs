//! Biometric-reference custody: a reference staged on a flow, and the user's
//! reference released to a flow that verifies against it.

use proto::ErrorCode;
use serde_json::json;
use zeroize::Zeroizing;

use super::{
    ChangeDraft, FlowService, FlowView, RequestContext, staged_reference_binding, transition_error,
};
use crate::audit::{AuditEventType, NewAuditEvent, Subject};
use crate::custody::{self, MAX_REFERENCE_BYTES};
use crate::error::{DomainError, DomainResult};
use crate::flow::{Fact, FlowId, FlowState, TransitionError};
use crate::store::{Effect, StoreError};

impl FlowService {
    #[tracing::instrument(
        target = "biometric_passkey::span",
        name = "flow.store_reference",
        skip_all
    )]
    pub async fn store_reference(
        &self,
        ctx: &RequestContext,
        id: FlowId,
        token: &[u8],
    ) -> DomainResult<FlowView> {
        if token.is_empty() || token.len() > MAX_REFERENCE_BYTES {
            return Err(DomainError::bad_request(
                ErrorCode::InvalidRequestBody,
                format!("the biometric reference must be 1 to {MAX_REFERENCE_BYTES} bytes"),
            ));
        }
        let flow = self.load(id).await?;
        if !flow.flow_type.creates_credential() {
            return Err(transition_error(&flow, TransitionError::NotExpected));
        }
        let now = self.clock.now();
        // Staged on the flow: the user's reference changes only when the
        // flow completes with its identity proof.
        let staged = Effect::StageReference {
            flow_id: flow.id,
            sealed: self.key.seal(token, staged_reference_binding(&flow.id)),
            at: now,
        };
        let event = NewAuditEvent {
            details: json!({ "bytes": token.len(), "key_id": self.key.id().as_str() }),
            ..self.event(
                ctx,
                AuditEventType::BiometricReferenceStaged,
                Subject::of_flow(&flow),
                now,
            )
        };
        let draft = ChangeDraft::of_effect(staged).with_event(event);
        let flow = self
            .advance(ctx, &flow, &Fact::ReferenceStored, draft)
            .await?;
        self.view(flow, None).await
    }

    /// Releases the user's reference to a step-up or recovery flow of the same
    /// user that awaits verification, only if it is the reference the user had
    /// when the flow was created (never one staged by a flow); audited.
    #[tracing::instrument(
        target = "biometric_passkey::span",
        name = "flow.release_reference",
        skip_all
    )]
    pub async fn release_reference(
        &self,
        ctx: &RequestContext,
        id: FlowId,
    ) -> DomainResult<Zeroizing<Vec<u8>>> {
        let flow = self.load(id).await?;
        if !flow.flow_type.uses_reference()
            || flow.state != FlowState::AwaitingVerification
            || !flow.device_side_ready()
        {
            let err = DomainError::conflict(
                ErrorCode::BiometricReferenceNotReleasable,
                "the reference is released only to a step-up or recovery flow awaiting verification",
            );
            return Err(self
                .reject(ctx, &flow, err, "reference_not_releasable")
                .await);
        }
        let reference = self
            .repo
            .reference_of(flow.user_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => DomainError::conflict(
                    ErrorCode::BiometricReferenceMissing,
                    "no stored biometric reference",
                ),
                other => other.into(),
            })?;
        if flow.reference_flow_id != Some(reference.created_by_flow) {
            let err = DomainError::conflict(
                ErrorCode::BiometricReferenceNotReleasable,
                "the user's biometric reference changed after this flow was created; start a new flow",
            );
            return Err(self.reject(ctx, &flow, err, "reference_changed").await);
        }
        let token = self
            .key
            .open(&reference.sealed, custody::binding(&flow.user_id))
            .map_err(|e| DomainError::internal(format!("biometric reference: {e}")))?;
        let event = self.event(
            ctx,
            AuditEventType::BiometricReferenceReleased,
            Subject::of_flow(&flow),
            self.clock.now(),
        );
        self.repo.append_audit(&event).await?;
        Ok(token)
    }
}
