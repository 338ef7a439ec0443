//! The possession proof: a new credential (registration, recovery) or an
//! assertion by an existing one (sign-in, step-up).

use proto::ErrorCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{FlowService, FlowView, RequestContext, transition_error};
use crate::audit::{AuditEventType, NewAuditEvent, Outcome, Subject};
use crate::credential::{CredentialStatus, WebAuthnId, counter_is_valid};
use crate::error::{DomainError, DomainResult};
use crate::flow::{Fact, Flow, FlowId, NewCredential, TransitionError};
use crate::ids;
use crate::possession::{BackupPolicy, CounterPolicy};
use crate::store::{Effect, StoreError};

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
impl FlowService {
    /// A security event about a credential (`reason` = its type's last part).
    /// With `refusal`, the event is recorded alone (outcome `rejected`) and the
    /// refusal returned; without, it is returned (outcome `success`: let
    /// through by the policy) to be written with the change it accompanies.
    #[allow(clippy::too_many_arguments)]
    async fn security_event(
        &self,
        ctx: &RequestContext,
        event_type: AuditEventType,
        subject: &Subject,
        details: Value,
        refusal: Option<DomainError>,
        now: OffsetDateTime,
    ) -> DomainResult<NewAuditEvent> {
        let reason = event_type
            .as_str()
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        let event = NewAuditEvent {
            outcome: if refusal.is_some() {
                Outcome::Rejected
            } else {
                Outcome::Success
            },
            reason: Some(reason),
            details,
            ..self.event(ctx, event_type, subject.clone(), now)
        };
        match refusal {
            Some(err) => {
                self.repo.append_audit(&event).await?;
                Err(err)
            }
            None => Ok(event),
        }
    }

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
        let builtin = self.relying_party.is_some();
        let (fact, effects, events, flow) = match (flow.flow_type.creates_credential(), proof) {
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
                let parsed = WebAuthnId::parse(&webauthn_id).map_err(|e| {
                    DomainError::bad_request(
                        ErrorCode::InvalidCredential,
                        format!("credential.id {e}"),
                    )
                })?;
                match self.repo.credential_by_webauthn_id(parsed.as_str()).await {
                    Ok(_) => {
                        let err = DomainError::conflict(
                            ErrorCode::CredentialAlreadyRegistered,
                            "a credential with this WebAuthn id is registered already",
                        );
                        return Err(self
                            .reject(ctx, &flow, err, "credential_already_registered")
                            .await);
                    }
                    Err(StoreError::NotFound) => {}
                    Err(other) => return Err(other.into()),
                }
                let new_id = ids::new_id(now);
                let mut events = Vec::new();
                if backup_eligible {
                    match self.policy.backup_policy {
                        BackupPolicy::Reject => {
                            let err = DomainError::conflict(
                                ErrorCode::BackupEligibleNotAllowed,
                                "this passkey can be backed up (synced); only device-bound \
                                 passkeys are accepted",
                            );
                            return Err(self.reject(ctx, &flow, err, "backup_eligible").await);
                        }
                        BackupPolicy::Warn => events.push(NewAuditEvent {
                            details: json!({ "backup_state": backup_state, "policy": "warn" }),
                            ..self.event(
                                ctx,
                                AuditEventType::CredentialBackupEligible,
                                Subject {
                                    credential_id: Some(new_id),
                                    ..Subject::of_flow(&flow)
                                },
                                now,
                            )
                        }),
                        BackupPolicy::Allow => {}
                    }
                }
                let mut with_pending = flow.clone();
                with_pending.pending_credential = Some(NewCredential {
                    id: new_id,
                    webauthn_id: parsed.as_str().to_owned(),
                    public_key,
                    aaguid,
                    sign_count,
                    transports,
                    backup_eligible,
                    backup_state,
                    platform,
                    device_label,
                    passkey,
                });
                let subject = Subject {
                    credential_id: Some(new_id),
                    ..Subject::of_flow(&flow)
                };
                events.push(self.event(ctx, AuditEventType::FlowPossessionVerified, subject, now));
                (
                    Fact::Possession {
                        credential_id: new_id,
                    },
                    vec![],
                    events,
                    with_pending,
                )
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
                let credential = match self.repo.credential_by_webauthn_id(&webauthn_id).await {
                    Ok(c) if c.user_id == flow.user_id => c,
                    Ok(_) | Err(StoreError::NotFound) => {
                        // Another user's credential is answered like an unknown one.
                        let err = DomainError::not_found(
                            ErrorCode::CredentialNotFound,
                            "no such credential for this user",
                        );
                        return Err(self
                            .reject(ctx, &flow, err, "credential_unknown_or_of_another_user")
                            .await);
                    }
                    Err(other) => return Err(other.into()),
                };
                if credential.status != CredentialStatus::Active {
                    let err = DomainError::conflict(
                        ErrorCode::CredentialNotActive,
                        "the credential is suspended or revoked",
                    );
                    let reason = format!("credential_{}", credential.status.as_str());
                    return Err(self.reject(ctx, &flow, err, &reason).await);
                }
                let subject = Subject {
                    credential_id: Some(credential.id),
                    ..Subject::of_flow(&flow)
                };
                let mut security_events = Vec::new();
                if !counter_is_valid(credential.sign_count, sign_count) {
                    let enforce = self.policy.counter_policy == CounterPolicy::Enforce;
                    security_events.push(
                        self.security_event(
                            ctx,
                            AuditEventType::CredentialCounterRegression,
                            &subject,
                            json!({
                                "stored": credential.sign_count,
                                "reported": sign_count,
                                "policy": self.policy.counter_policy.as_str(),
                            }),
                            enforce.then(|| {
                                DomainError::conflict(
                                    ErrorCode::CounterRegression,
                                    "the signature counter did not grow; the authenticator may be cloned",
                                )
                            }),
                            now,
                        )
                        .await?,
                    );
                }
                if let Some(reported) = backup_eligible
                    && reported != credential.backup_eligible
                {
                    let reject = self.policy.backup_policy == BackupPolicy::Reject;
                    security_events.push(
                        self.security_event(
                            ctx,
                            AuditEventType::CredentialBackupEligibilityChanged,
                            &subject,
                            json!({
                                "registered": credential.backup_eligible,
                                "reported": reported,
                                "policy": self.policy.backup_policy.as_str(),
                            }),
                            reject.then(|| {
                                DomainError::conflict(
                                    ErrorCode::BackupEligibilityChanged,
                                    "the credential's backup eligibility changed since it was registered",
                                )
                            }),
                            now,
                        )
                        .await?,
                    );
                }
                let backup_state = backup_state.unwrap_or(credential.backup_state);
                let effects = vec![if counter_is_valid(credential.sign_count, sign_count) {
                    Effect::UseCredential {
                        id: credential.id,
                        sign_count,
                        backup_state,
                        at: now,
                    }
                } else {
                    // Let through under `warn`: the stored counter is kept.
                    Effect::UseCredentialKeepingCounter {
                        id: credential.id,
                        backup_state,
                        at: now,
                    }
                }];
                let mut events = security_events;
                events.push(self.event(
                    ctx,
                    AuditEventType::FlowPossessionVerified,
                    subject.clone(),
                    now,
                ));
                events.push(self.event(ctx, AuditEventType::CredentialUsed, subject, now));
                (
                    Fact::Possession {
                        credential_id: credential.id,
                    },
                    effects,
                    events,
                    flow,
                )
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
        // `flow` may carry the pending credential; its version is unchanged.
        // In `builtin` mode the ceremony is consumed by the same conditional write.
        let flow = if builtin {
            Flow {
                ceremony: None,
                ..flow
            }
        } else {
            flow
        };
        let flow = self.advance(ctx, &flow, &fact, effects, events).await?;
        self.view(flow, None).await
    }
}
