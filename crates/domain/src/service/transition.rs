//! What a flow's transition writes besides the flow: its audit events, and
//! the effects of completing it (the credential, the reference promoted, a
//! recovery's cancellations and revocations). The staged reference a
//! completion promotes is read first ([`FlowService::staged_to_promote`]);
//! the decision ([`Recorder::records`]) reads nothing.

use serde_json::json;
use time::OffsetDateTime;

use super::{
    ChangeDraft, FlowPolicy, FlowService, RequestContext, audit_event, staged_reference_binding,
};
use crate::audit::{AuditEventType, NewAuditEvent, Outcome, Subject};
use crate::credential::{Credential, CredentialStatus, WebAuthnId};
use crate::custody::{self, BiometricReference};
use crate::error::{DomainError, DomainResult};
use crate::flow::{Flow, FlowState, FlowType, IdentityStatus, NewCredential};
use crate::sealing::DataKey;
use crate::store::{Conflict, Effect, StoreError};

/// Whether the transition from `before` to `after` completes the flow.
fn completes(before: &Flow, after: &Flow) -> bool {
    after.state == FlowState::Completed && before.state != FlowState::Completed
}

impl FlowService {
    /// Decides transitions' records for the one asking in `ctx`, at `now`.
    pub(super) fn recorder<'a>(
        &'a self,
        ctx: &'a RequestContext,
        now: OffsetDateTime,
    ) -> Recorder<'a> {
        Recorder {
            key: &self.key,
            policy: &self.policy,
            ctx,
            now,
        }
    }

    /// The sealed reference a transition from `before` to `after` promotes
    /// to the user's: staged by the change `draft` holds, or stored before.
    /// `None` when the transition promotes none, or for a flow that an
    /// earlier release made store its reference as the user's at once
    /// (nothing staged, the flow unchanged since it was read).
    pub(super) async fn staged_to_promote(
        &self,
        before: &Flow,
        after: &Flow,
        draft: &ChangeDraft,
    ) -> DomainResult<Option<Vec<u8>>> {
        if !completes(before, after) || !after.reference_stored {
            return Ok(None);
        }
        if let Some(sealed) = draft.staged_reference(after.id) {
            return Ok(Some(sealed.to_vec()));
        }
        match self.repo.staged_reference_of(after.id).await {
            Ok(sealed) => Ok(Some(sealed)),
            Err(StoreError::NotFound) => {
                // Discarded since the flow was read: another change (a
                // recovery of the user, say) ended it; this one loses.
                if self.repo.flow(after.id).await?.version != before.version {
                    return Err(StoreError::Conflict(Conflict::FlowVersion).into());
                }
                Ok(None)
            }
            Err(other) => Err(other.into()),
        }
    }
}

/// Decides what a transition writes besides the flow, from its two versions
/// and what was read before: it reads nothing.
pub(super) struct Recorder<'a> {
    key: &'a DataKey,
    policy: &'a FlowPolicy,
    ctx: &'a RequestContext,
    now: OffsetDateTime,
}

impl Recorder<'_> {
    fn event(&self, event_type: AuditEventType, subject: Subject) -> NewAuditEvent {
        audit_event(self.ctx, event_type, subject, self.now)
    }

    /// The events a transition from `before` to `after` implies, and the
    /// effects of completing the flow. `staged` is the sealed reference the
    /// completion promotes ([`FlowService::staged_to_promote`]).
    pub(super) fn records(
        &self,
        before: &Flow,
        after: &Flow,
        staged: Option<&[u8]>,
    ) -> DomainResult<ChangeDraft> {
        let mut draft = ChangeDraft::default();
        self.state_events(before, after, &mut draft);
        if !completes(before, after) {
            // A flow that ends otherwise leaves the user's reference as it was.
            if after.state.is_terminal() && !before.state.is_terminal() && after.reference_stored {
                draft.push_effect(Effect::DiscardStagedReference(after.id));
            }
            return Ok(draft);
        }
        self.completion(before, after, staged, &mut draft)?;
        Ok(draft)
    }

    /// The event of the flow's new state, after that of its identity proof
    /// when the step that verifies it also completes the flow.
    fn state_events(&self, before: &Flow, after: &Flow, draft: &mut ChangeDraft) {
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
            draft.push_event(self.event(AuditEventType::FlowVerified, subject.clone()));
        }
        if let Some(t) = state_event {
            let mut event = self.event(t, subject);
            if let Some(reason) = after.failure_reason {
                event.outcome = Outcome::Failure;
                event.reason = Some(reason.as_str().to_owned());
            }
            draft.push_event(event);
        }
    }

    /// What completing the flow writes: its new credential, the reference
    /// promoted, a recovery's clean slate, the check that the passkey of an
    /// earlier assertion is still active, and the completion's event.
    fn completion(
        &self,
        before: &Flow,
        after: &Flow,
        staged: Option<&[u8]>,
        draft: &mut ChangeDraft,
    ) -> DomainResult<()> {
        let subject = Subject::of_flow(after);
        if let Some(new) = &after.pending_credential {
            draft.push_effect(Effect::InsertCredential(registered_credential(
                after, new, self.now,
            )?));
            draft.push_event(self.event(AuditEventType::CredentialRegistered, subject.clone()));
        }
        if after.reference_stored
            && let Some(sealed) = staged
        {
            // The identity proof is in: the staged reference becomes the
            // user's, in the transaction that completes the flow.
            let reference = self.promoted_reference(after, sealed)?;
            draft.push_event(NewAuditEvent {
                details: json!({ "key_id": self.key.id().as_str() }),
                ..self.event(AuditEventType::BiometricReferenceStored, subject.clone())
            });
            draft.push_effect(if after.flow_type == FlowType::Registration {
                Effect::EnrolReference(reference)
            } else {
                Effect::StoreReference(reference)
            });
            draft.push_effect(Effect::DiscardStagedReference(after.id));
        }
        if after.flow_type == FlowType::Recovery {
            self.recovery(after, &subject, draft);
        }
        if !after.flow_type.creates_credential()
            && before.possession_done
            && let Some(credential) = after.credential_id
        {
            // The assertion came first: the passkey must still be active now
            // (a fraud team may have suspended it since).
            draft.push_effect(Effect::RequireActiveCredential(credential));
        }
        draft.push_event(NewAuditEvent {
            details: json!({
                "type": after.flow_type.as_str(),
                "transaction_context_hmac": after.transaction_context_digest.as_ref().map(|d| &d.hmac),
                "transaction_context_key_id": after.transaction_context_digest.as_ref().map(|d| &d.key_id),
            }),
            ..self.event(AuditEventType::FlowCompleted, subject)
        });
        Ok(())
    }

    /// A completed recovery: nothing started before it outlives it. The
    /// user's other flows are cancelled (first: see `Effect::CancelOtherFlows`)
    /// and their passkeys revoked, each a set-based write under the user's
    /// lock in the completing transaction.
    fn recovery(&self, after: &Flow, subject: &Subject, draft: &mut ChangeDraft) {
        draft.push_effect(Effect::CancelOtherFlows {
            user_id: after.user_id,
            keep: after.id,
            at: self.now,
            event: NewAuditEvent {
                reason: Some("recovery".to_owned()),
                details: json!({ "recovery_flow_id": after.id }),
                ..self.event(
                    AuditEventType::FlowCancelled,
                    Subject {
                        user_id: Some(after.user_id),
                        ..Subject::default()
                    },
                )
            },
        });
        if let (true, Some(new)) = (
            self.policy.recovery_revokes_existing,
            &after.pending_credential,
        ) {
            draft.push_effect(Effect::RevokeOtherCredentials {
                user_id: after.user_id,
                keep: new.id,
                reason: "recovery".to_owned(),
                at: self.now,
                event: NewAuditEvent {
                    reason: Some("recovery".to_owned()),
                    ..self.event(
                        AuditEventType::CredentialRevoked,
                        Subject {
                            credential_id: None,
                            ..subject.clone()
                        },
                    )
                },
            });
        }
    }

    /// The reference staged on `flow` (`sealed` to the flow), sealed anew as
    /// the user's.
    fn promoted_reference(&self, flow: &Flow, sealed: &[u8]) -> DomainResult<BiometricReference> {
        let token = self
            .key
            .open(sealed, staged_reference_binding(&flow.id))
            .map_err(|e| DomainError::internal(format!("staged biometric reference: {e}")))?;
        Ok(BiometricReference {
            user_id: flow.user_id,
            sealed: self.key.seal(&token, custody::binding(&flow.user_id)),
            created_by_flow: flow.id,
            created_at: self.now,
        })
    }
}

/// The credential a completing flow inserts.
fn registered_credential(
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

#[cfg(test)]
mod tests {
    use time::{Duration, OffsetDateTime};
    use uuid::Uuid;

    use super::Recorder;
    use crate::audit::{Actor, AuditEventType};
    use crate::custody;
    use crate::flow::{Flow, FlowId, FlowState, FlowType, IdentityStatus, NewCredential};
    use crate::sealing::{DataKey, KeyId};
    use crate::service::{FlowPolicy, RequestContext, staged_reference_binding};
    use crate::store::Effect;
    use crate::user::UserId;

    #[test]
    fn a_completed_recovery_promotes_its_staged_reference_and_clears_the_slate() {
        let (key, _) = DataKey::generate(KeyId::parse("test").unwrap());
        let policy = FlowPolicy::default();
        let ctx = RequestContext {
            actor: Actor::System,
            correlation_id: None,
        };
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let recorder = Recorder {
            key: &key,
            policy: &policy,
            ctx: &ctx,
            now,
        };
        let id = FlowId(Uuid::from_u128(1));
        let user_id = UserId(Uuid::from_u128(2));
        let before = Flow {
            state: FlowState::AwaitingVerification,
            possession_done: true,
            reference_stored: true,
            pending_credential: Some(NewCredential {
                id: Uuid::from_u128(3),
                webauthn_id: "AAAA".to_owned(),
                public_key: None,
                aaguid: None,
                sign_count: 0,
                transports: vec![],
                backup_eligible: false,
                backup_state: false,
                platform: None,
                device_label: None,
                passkey: None,
            }),
            ..Flow::new(
                id,
                user_id,
                FlowType::Recovery,
                now,
                now + Duration::minutes(15),
            )
        };
        let after = Flow {
            state: FlowState::Completed,
            identity: IdentityStatus::Verified,
            ..before.clone()
        };
        let staged = key.seal(b"template", staged_reference_binding(&id));

        let change = recorder
            .records(&before, &after, Some(staged.as_slice()))
            .unwrap()
            .into_change(None);

        let events: Vec<_> = change.events.iter().map(|e| e.event_type).collect();
        assert_eq!(
            events,
            [
                AuditEventType::FlowVerified,
                AuditEventType::CredentialRegistered,
                AuditEventType::BiometricReferenceStored,
                AuditEventType::FlowCompleted,
            ]
        );
        let [
            Effect::InsertCredential(credential),
            Effect::StoreReference(reference),
            Effect::DiscardStagedReference(discarded),
            Effect::CancelOtherFlows { keep, .. },
            Effect::RevokeOtherCredentials { keep: kept, .. },
        ] = change.effects.as_slice()
        else {
            panic!("unexpected effects: {:?}", change.effects);
        };
        assert_eq!(
            (credential.id, *kept),
            (Uuid::from_u128(3), Uuid::from_u128(3))
        );
        assert_eq!((*discarded, *keep), (id, id));
        let opened = key
            .open(&reference.sealed, custody::binding(&user_id))
            .unwrap();
        assert_eq!(opened.as_slice(), b"template");

        let failed = Flow {
            state: FlowState::Failed,
            ..before.clone()
        };
        let change = recorder
            .records(&before, &failed, None)
            .unwrap()
            .into_change(None);
        assert!(matches!(
            change.effects.as_slice(),
            [Effect::DiscardStagedReference(discarded)] if *discarded == id
        ));
    }
}
