//! What a flow's transition writes besides the flow: its audit events, and
//! the effects of completing it (the credential, the reference promoted, a
//! recovery's cancellations and revocations).

use serde_json::json;
use time::OffsetDateTime;

use super::{FlowService, RequestContext, staged_reference_binding};
use crate::audit::{AuditEventType, NewAuditEvent, Outcome, Subject};
use crate::credential::{Credential, CredentialStatus, WebAuthnId};
use crate::custody::{self, BiometricReference};
use crate::error::{DomainError, DomainResult};
use crate::flow::{Flow, FlowState, FlowType, IdentityStatus, NewCredential};
use crate::store::{Effect, StoreError};

impl FlowService {
    /// The events a transition from `before` to `after` implies, and the
    /// effects of completing the flow. `pending` are the effects already
    /// bound for the same change (a reference staged by it, say).
    pub(super) async fn transition_records(
        &self,
        ctx: &RequestContext,
        before: &Flow,
        after: &Flow,
        now: OffsetDateTime,
        pending: &[Effect],
    ) -> DomainResult<(Vec<Effect>, Vec<NewAuditEvent>)> {
        let mut effects = Vec::new();
        let mut events = Vec::new();
        let subject = Subject::of_flow(after);
        let state_event = match after.state {
            _ if after.state == before.state => None,
            FlowState::Verified => Some(AuditEventType::FlowVerified),
            FlowState::InReview => Some(AuditEventType::FlowInReview),
            FlowState::Failed => Some(AuditEventType::FlowFailed),
            FlowState::Expired => Some(AuditEventType::FlowExpired),
            FlowState::Cancelled => Some(AuditEventType::FlowCancelled),
            FlowState::AwaitingVerification => Some(AuditEventType::FlowIdvStarted),
            FlowState::Completed | FlowState::Pending => None,
        };
        if before.identity != IdentityStatus::Verified
            && after.identity == IdentityStatus::Verified
            && after.state == FlowState::Completed
        {
            events.push(self.event(ctx, AuditEventType::FlowVerified, subject.clone(), now));
        }
        if let Some(t) = state_event {
            let mut event = self.event(ctx, t, subject.clone(), now);
            if let Some(reason) = after.failure_reason {
                event.outcome = Outcome::Failure;
                event.reason = Some(reason.as_str().to_owned());
            }
            events.push(event);
        }
        let completed = after.state == FlowState::Completed && before.state != FlowState::Completed;
        if !completed {
            // A flow that ends otherwise leaves the user's reference as it was.
            if after.state.is_terminal() && !before.state.is_terminal() && after.reference_stored {
                effects.push(Effect::DiscardStagedReference(after.id));
            }
            return Ok((effects, events));
        }
        if let Some(new) = &after.pending_credential {
            effects.push(Effect::InsertCredential(
                self.registered_credential(after, new, now)?,
            ));
            events.push(self.event(
                ctx,
                AuditEventType::CredentialRegistered,
                subject.clone(),
                now,
            ));
        }
        if after.reference_stored
            && let Some(reference) = self.promoted_reference(before, after, now, pending).await?
        {
            // The identity proof is in: the staged reference becomes the
            // user's, in the transaction that completes the flow.
            events.push(NewAuditEvent {
                details: json!({ "key_id": self.key.id().as_str() }),
                ..self.event(
                    ctx,
                    AuditEventType::BiometricReferenceStored,
                    subject.clone(),
                    now,
                )
            });
            effects.push(if after.flow_type == FlowType::Registration {
                Effect::EnrolReference(reference)
            } else {
                Effect::StoreReference(reference)
            });
            effects.push(Effect::DiscardStagedReference(after.id));
        }
        if after.flow_type == FlowType::Recovery {
            // Nothing started before the recovery outlives it: the user's
            // other flows are cancelled (first: see `Effect::CancelOtherFlows`)
            // and their passkeys revoked, each a set-based write under the
            // user's lock in this transaction.
            effects.push(Effect::CancelOtherFlows {
                user_id: after.user_id,
                keep: after.id,
                at: now,
                event: NewAuditEvent {
                    reason: Some("recovery".to_owned()),
                    details: json!({ "recovery_flow_id": after.id }),
                    ..self.event(
                        ctx,
                        AuditEventType::FlowCancelled,
                        Subject {
                            user_id: Some(after.user_id),
                            ..Subject::default()
                        },
                        now,
                    )
                },
            });
            if let (true, Some(new)) = (
                self.policy.recovery_revokes_existing,
                &after.pending_credential,
            ) {
                effects.push(Effect::RevokeOtherCredentials {
                    user_id: after.user_id,
                    keep: new.id,
                    reason: "recovery".to_owned(),
                    at: now,
                    event: NewAuditEvent {
                        reason: Some("recovery".to_owned()),
                        ..self.event(
                            ctx,
                            AuditEventType::CredentialRevoked,
                            Subject {
                                credential_id: None,
                                ..subject.clone()
                            },
                            now,
                        )
                    },
                });
            }
        }
        if !after.flow_type.creates_credential()
            && before.possession_done
            && let Some(credential) = after.credential_id
        {
            // The assertion came first: the passkey must still be active now
            // (a fraud team may have suspended it since).
            effects.push(Effect::RequireActiveCredential(credential));
        }
        events.push(NewAuditEvent {
            details: json!({
                "type": after.flow_type.as_str(),
                "transaction_context_hmac": after.transaction_context_digest.as_ref().map(|d| &d.hmac),
                "transaction_context_key_id": after.transaction_context_digest.as_ref().map(|d| &d.key_id),
            }),
            ..self.event(ctx, AuditEventType::FlowCompleted, subject, now)
        });
        Ok((effects, events))
    }

    /// The credential a completing flow inserts.
    fn registered_credential(
        &self,
        flow: &Flow,
        new: &NewCredential,
        now: OffsetDateTime,
    ) -> DomainResult<Credential> {
        Ok(Credential {
            id: new.id,
            user_id: flow.user_id,
            webauthn_id: WebAuthnId::parse(&new.webauthn_id)
                .map_err(|e| DomainError::internal(format!("stored pending credential: {e}")))?,
            public_key: new.public_key.clone(),
            aaguid: new.aaguid,
            sign_count: new.sign_count,
            transports: new.transports.clone(),
            backup_eligible: new.backup_eligible,
            backup_state: new.backup_state,
            platform: new.platform.clone(),
            device_label: new.device_label.clone(),
            passkey: new.passkey.clone(),
            created_by_flow: flow.id,
            status: CredentialStatus::Active,
            status_reason: None,
            created_at: now,
            updated_at: now,
            last_used_at: None,
        })
    }

    /// The reference staged on `flow` (by this change, or stored before),
    /// sealed anew as the user's. `None` for a flow that an earlier release
    /// made store its reference as the user's at once (nothing staged, the
    /// flow unchanged since it was read).
    async fn promoted_reference(
        &self,
        before: &Flow,
        flow: &Flow,
        now: OffsetDateTime,
        pending: &[Effect],
    ) -> DomainResult<Option<BiometricReference>> {
        let staged_now = pending.iter().rev().find_map(|e| match e {
            Effect::StageReference {
                flow_id, sealed, ..
            } if *flow_id == flow.id => Some(sealed.clone()),
            _ => None,
        });
        let staged = match staged_now {
            Some(sealed) => sealed,
            None => match self.repo.staged_reference_of(flow.id).await {
                Ok(sealed) => sealed,
                Err(StoreError::NotFound) => {
                    // Discarded since the flow was read: another change (a
                    // recovery of the user, say) ended it; this one loses.
                    if self.repo.flow(flow.id).await?.version != before.version {
                        return Err(StoreError::Conflict {
                            what: "flow_version".into(),
                        }
                        .into());
                    }
                    return Ok(None);
                }
                Err(other) => return Err(other.into()),
            },
        };
        let token = self
            .key
            .open(&staged, staged_reference_binding(&flow.id))
            .map_err(|e| DomainError::internal(format!("staged biometric reference: {e}")))?;
        Ok(Some(BiometricReference {
            user_id: flow.user_id,
            sealed: self.key.seal(&token, custody::binding(&flow.user_id)),
            created_by_flow: flow.id,
            created_at: now,
        }))
    }
}
