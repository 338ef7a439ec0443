//! The baseline's audit events, as the product writes them, and what a
//! flow's completion writes.

use axum::http::StatusCode;
use domain::credential::{Credential, CredentialStatus, WebAuthnId};
use domain::custody::BiometricReference;
use domain::flow::{Flow, FlowType};
use domain::{Actor, AuditEventType, Effect, NewAuditEvent, Repository, Subject, ids};
use serde_json::json;
use time::OffsetDateTime;

use super::{Baseline, KEY_ID, bad, fail};

/// An event with a correlation id, as the product's.
pub(super) fn audit(
    t: AuditEventType,
    actor: Actor,
    subject: Subject,
    at: OffsetDateTime,
) -> NewAuditEvent {
    NewAuditEvent {
        correlation_id: Some(ids::new_id(at).to_string()),
        ..NewAuditEvent::new(t, actor, subject, at)
    }
}

/// The customer's backend, by the fingerprint of the load generator's API
/// key, as the product records it.
pub(super) fn integration() -> Actor {
    static KEY_ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(crate::load::API_KEY.as_bytes());
        format!("key-{}", hex::encode(&digest[..8]))
    });
    Actor::Integration(Some(KEY_ID.clone()))
}

/// An event about `flow` by the customer's backend.
pub(super) fn event(t: AuditEventType, flow: &Flow, at: OffsetDateTime) -> NewAuditEvent {
    audit(t, integration(), Subject::of_flow(flow), at)
}

/// The same, by the provider (its outcome or its webhook).
pub(super) fn provider_event(t: AuditEventType, flow: &Flow, at: OffsetDateTime) -> NewAuditEvent {
    audit(t, Actor::Provider, Subject::of_flow(flow), at)
}

fn flow_completed(event: NewAuditEvent, flow: &Flow) -> NewAuditEvent {
    NewAuditEvent {
        details: json!({
            "type": flow.flow_type.as_str(),
            "transaction_context_hmac": flow.transaction_context_digest.as_ref().map(|d| &d.hmac),
            "transaction_context_key_id": flow.transaction_context_digest.as_ref().map(|d| &d.key_id),
        }),
        ..event
    }
}

/// What the product writes with a flow's completion by `actor`, after the
/// events of the step that completes it (its `transition_records`): the new
/// credential, the staged reference made the user's (`staged_now` when the
/// same change stages it, else read as the product reads it), a recovery's
/// cancellations and revocations as set-based effects, the re-check of a
/// passkey asserted before, and the completion's event: the effects and
/// the events to write after the step's own.
pub(super) async fn completion(
    s: &Baseline,
    actor: Actor,
    before: &Flow,
    next: &Flow,
    staged_now: Option<Vec<u8>>,
    at: OffsetDateTime,
) -> Result<(Vec<Effect>, Vec<NewAuditEvent>), (StatusCode, String)> {
    let mut effects = Vec::new();
    let mut events = Vec::new();
    let about = |t: AuditEventType, subject: Subject| audit(t, actor.clone(), subject, at);
    if let Some(new) = &next.pending_credential {
        effects.push(Effect::InsertCredential(Credential {
            id: new.id,
            user_id: next.user_id,
            webauthn_id: WebAuthnId::parse(&new.webauthn_id).map_err(bad)?,
            public_key: new.public_key.clone(),
            aaguid: None,
            sign_count: new.sign_count,
            transports: new.transports.clone(),
            backup_eligible: false,
            backup_state: false,
            platform: new.platform.clone(),
            device_label: new.device_label.clone(),
            passkey: new.passkey.clone(),
            created_by_flow: next.id,
            status: CredentialStatus::Active,
            status_reason: None,
            created_at: at,
            updated_at: at,
            last_used_at: None,
        }));
        events.push(about(
            AuditEventType::CredentialRegistered,
            Subject::of_flow(next),
        ));
    }
    if next.reference_stored {
        let staged = match staged_now {
            Some(sealed) => sealed,
            None => s.repo.staged_reference_of(next.id).await.map_err(fail)?,
        };
        let reference = BiometricReference {
            user_id: next.user_id,
            sealed: s.sealed(s.unsealed(&staged)),
            created_by_flow: next.id,
            created_at: at,
        };
        events.push(NewAuditEvent {
            details: json!({ "key_id": KEY_ID }),
            ..about(
                AuditEventType::BiometricReferenceStored,
                Subject::of_flow(next),
            )
        });
        effects.push(if next.flow_type == FlowType::Registration {
            Effect::EnrolReference(reference)
        } else {
            Effect::StoreReference(reference)
        });
        effects.push(Effect::DiscardStagedReference(next.id));
    }
    if next.flow_type == FlowType::Recovery {
        effects.push(Effect::CancelOtherFlows {
            user_id: next.user_id,
            keep: next.id,
            at,
            event: NewAuditEvent {
                reason: Some("recovery".into()),
                details: json!({ "recovery_flow_id": next.id }),
                ..about(
                    AuditEventType::FlowCancelled,
                    Subject {
                        user_id: Some(next.user_id),
                        ..Subject::default()
                    },
                )
            },
        });
        if let Some(new) = &next.pending_credential {
            effects.push(Effect::RevokeOtherCredentials {
                user_id: next.user_id,
                keep: new.id,
                reason: "recovery".into(),
                at,
                event: NewAuditEvent {
                    reason: Some("recovery".into()),
                    ..about(AuditEventType::CredentialRevoked, Subject::of_flow(next))
                },
            });
        }
    }
    if !next.flow_type.creates_credential()
        && before.possession_done
        && let Some(credential) = next.credential_id
    {
        effects.push(Effect::RequireActiveCredential(credential));
    }
    events.push(flow_completed(
        about(AuditEventType::FlowCompleted, Subject::of_flow(next)),
        next,
    ));
    Ok((effects, events))
}
