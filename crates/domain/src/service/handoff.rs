//! Claiming a cross-platform flow on the device with its hand-off code.

use proto::ErrorCode;
use sha2::{Digest, Sha256};

use super::{ChangeDraft, FlowService, FlowView, RequestContext};
use crate::audit::{AuditEventType, Subject};
use crate::error::{DomainError, DomainResult};
use crate::flow::Fact;
use crate::store::StoreError;
use crate::tally::TallyKind;
use crate::user::ExternalUserId;

pub(super) fn handoff_hash(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

impl FlowService {
    #[tracing::instrument(
        target = "biometric_passkey::span",
        name = "flow.claim_handoff",
        skip_all
    )]
    pub async fn claim_handoff(
        &self,
        ctx: &RequestContext,
        code: &str,
        external_user_id: &ExternalUserId,
    ) -> DomainResult<FlowView> {
        let invalid = || {
            DomainError::not_found(
                ErrorCode::HandoffInvalid,
                "the hand-off code is unknown, expired or used",
            )
        };
        let flow = match self.repo.flow_by_handoff(&handoff_hash(code)).await {
            Ok(flow) => flow,
            Err(StoreError::NotFound) => {
                // Counted, not audited one by one: guesses must not grow the
                // trail. Only the request that ends a window writes (its
                // counts), so only it can meet a store error.
                self.note_refusal(TallyKind::ClaimRefused, "handoff_unknown", &ctx.actor)
                    .await?;
                return Err(invalid());
            }
            Err(other) => return Err(other.into()),
        };
        let flow = self.settle(flow).await?;
        let user = self.repo.user_by_id(flow.user_id).await?;
        let now = self.clock.now();
        let reason = match &flow.handoff {
            _ if user.external_id != *external_user_id => Some("handoff_other_user"),
            Some(h) if h.claimed_at.is_some() => Some("handoff_already_claimed"),
            Some(h) if now >= h.expires_at => Some("handoff_expired"),
            _ if flow.state.is_terminal() => Some("handoff_flow_ended"),
            _ => None,
        };
        if let Some(reason) = reason {
            return Err(self.reject(ctx, &flow, invalid(), reason).await);
        }
        let event = self.event(
            ctx,
            AuditEventType::FlowHandoffClaimed,
            Subject::of_flow(&flow),
            now,
        );
        let flow = match self
            .advance(
                ctx,
                &flow,
                &Fact::HandoffClaimed,
                ChangeDraft::of_event(event),
            )
            .await
        {
            Ok(flow) => flow,
            // Double consumption: the other claim won.
            Err(e) if e.code == ErrorCode::FlowChanged || e.code == ErrorCode::ProofNotExpected => {
                return Err(self
                    .reject(ctx, &flow, invalid(), "handoff_already_claimed")
                    .await);
            }
            Err(e) => return Err(e),
        };
        self.view(flow, None).await
    }
}
