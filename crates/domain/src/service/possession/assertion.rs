//! A sign-in's or step-up's assertion by an existing passkey.

use proto::ErrorCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::Possession;
use crate::audit::{AuditEventType, NewAuditEvent, Outcome, Subject};
use crate::credential::{Credential, CredentialStatus, counter_is_valid};
use crate::error::{DomainError, DomainResult};
use crate::flow::{Fact, Flow};
use crate::possession::{BackupPolicy, CounterPolicy};
use crate::service::{ChangeDraft, FlowPolicy, FlowService, RequestContext, audit_event};
use crate::store::{Effect, StoreError};

/// An assertion, as the possession rules take it.
pub(super) struct Assertion {
    pub(super) webauthn_id: String,
    pub(super) sign_count: u32,
    pub(super) backup_eligible: Option<bool>,
    pub(super) backup_state: Option<bool>,
}

/// What a policy makes of an assertion: a security event about the passkey,
/// and the refusal when the policy refuses the assertion.
struct Finding {
    event_type: AuditEventType,
    details: Value,
    refusal: Option<DomainError>,
}

impl FlowService {
    /// `assertion`, by an active passkey of the flow's user, its signature
    /// counter and backup eligibility held to the policies. A refusal is
    /// audited and changes nothing; a finding the policy lets through is
    /// audited with the change.
    pub(super) async fn assertion(
        &self,
        ctx: &RequestContext,
        flow: Flow,
        assertion: Assertion,
        now: OffsetDateTime,
    ) -> DomainResult<Possession> {
        let credential = self
            .asserted_credential(ctx, &flow, &assertion.webauthn_id)
            .await?;
        let subject = Subject {
            credential_id: Some(credential.id),
            ..Subject::of_flow(&flow)
        };
        let mut draft = ChangeDraft::default();
        let stored = (credential.sign_count, credential.backup_eligible);
        for finding in findings(&self.policy, stored, &assertion) {
            let event = security_event(ctx, &finding, &subject, now);
            match finding.refusal {
                Some(err) => {
                    self.repo.append_audit(&event).await?;
                    return Err(err);
                }
                None => draft.push_event(event),
            }
        }
        let backup_state = assertion.backup_state.unwrap_or(credential.backup_state);
        draft.push_effect(
            if counter_is_valid(credential.sign_count, assertion.sign_count) {
                Effect::UseCredential {
                    id: credential.id,
                    sign_count: assertion.sign_count,
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
            },
        );
        draft.push_event(self.event(
            ctx,
            AuditEventType::FlowPossessionVerified,
            subject.clone(),
            now,
        ));
        draft.push_event(self.event(ctx, AuditEventType::CredentialUsed, subject, now));
        Ok(Possession {
            fact: Fact::Possession {
                credential_id: credential.id,
            },
            draft,
            flow,
        })
    }

    /// The active passkey of the flow's user that `webauthn_id` names;
    /// refused (audited) otherwise.
    async fn asserted_credential(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        webauthn_id: &str,
    ) -> DomainResult<Credential> {
        let credential = match self.repo.credential_by_webauthn_id(webauthn_id).await {
            Ok(c) if c.user_id == flow.user_id => c,
            Ok(_) | Err(StoreError::NotFound) => {
                // Another user's credential is answered like an unknown one.
                let err = DomainError::not_found(
                    ErrorCode::CredentialNotFound,
                    "no such credential for this user",
                );
                return Err(self
                    .reject(ctx, flow, err, "credential_unknown_or_of_another_user")
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
            return Err(self.reject(ctx, flow, err, &reason).await);
        }
        Ok(credential)
    }
}

/// What `policy` makes of `assertion` by a passkey whose stored signature
/// counter and backup eligibility are `stored`, in the order they are checked.
fn findings(policy: &FlowPolicy, stored: (u32, bool), assertion: &Assertion) -> Vec<Finding> {
    let (stored_count, registered_backup_eligible) = stored;
    let mut findings = Vec::new();
    if !counter_is_valid(stored_count, assertion.sign_count) {
        let enforce = policy.counter_policy == CounterPolicy::Enforce;
        findings.push(Finding {
            event_type: AuditEventType::CredentialCounterRegression,
            details: json!({
                "stored": stored_count,
                "reported": assertion.sign_count,
                "policy": policy.counter_policy.as_str(),
            }),
            refusal: enforce.then(|| {
                DomainError::conflict(
                    ErrorCode::CounterRegression,
                    "the signature counter did not grow; the authenticator may be cloned",
                )
            }),
        });
    }
    if let Some(reported) = assertion.backup_eligible
        && reported != registered_backup_eligible
    {
        let reject = policy.backup_policy == BackupPolicy::Reject;
        findings.push(Finding {
            event_type: AuditEventType::CredentialBackupEligibilityChanged,
            details: json!({
                "registered": registered_backup_eligible,
                "reported": reported,
                "policy": policy.backup_policy.as_str(),
            }),
            refusal: reject.then(|| {
                DomainError::conflict(
                    ErrorCode::BackupEligibilityChanged,
                    "the credential's backup eligibility changed since it was registered",
                )
            }),
        });
    }
    findings
}

/// A finding's security event (`reason` = its type's last part): outcome
/// `rejected` when it refuses the assertion (recorded alone), `success` when
/// the policy lets it through (written with the change it accompanies).
fn security_event(
    ctx: &RequestContext,
    finding: &Finding,
    subject: &Subject,
    now: OffsetDateTime,
) -> NewAuditEvent {
    let reason = finding
        .event_type
        .as_str()
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_owned();
    NewAuditEvent {
        outcome: if finding.refusal.is_some() {
            Outcome::Rejected
        } else {
            Outcome::Success
        },
        reason: Some(reason),
        details: finding.details.clone(),
        ..audit_event(ctx, finding.event_type, subject.clone(), now)
    }
}

#[cfg(test)]
mod tests {
    use super::{Assertion, findings};
    use crate::audit::AuditEventType;
    use crate::possession::{BackupPolicy, CounterPolicy};
    use crate::service::FlowPolicy;
    use proto::ErrorCode;

    fn assertion(sign_count: u32, backup_eligible: Option<bool>) -> Assertion {
        Assertion {
            webauthn_id: "AAAA".to_owned(),
            sign_count,
            backup_eligible,
            backup_state: None,
        }
    }

    #[test]
    fn findings_follow_the_counter_and_backup_policies_in_order() {
        let strict = FlowPolicy {
            counter_policy: CounterPolicy::Enforce,
            backup_policy: BackupPolicy::Warn,
            ..FlowPolicy::default()
        };
        let found = findings(&strict, (7, false), &assertion(5, Some(true)));
        let kinds: Vec<_> = found.iter().map(|f| f.event_type).collect();
        assert_eq!(
            kinds,
            [
                AuditEventType::CredentialCounterRegression,
                AuditEventType::CredentialBackupEligibilityChanged,
            ]
        );
        assert_eq!(
            found[0].refusal.as_ref().map(|e| e.code),
            Some(ErrorCode::CounterRegression)
        );
        assert!(found[1].refusal.is_none(), "warn lets the change through");

        let lenient = FlowPolicy {
            counter_policy: CounterPolicy::Warn,
            ..strict.clone()
        };
        let found = findings(&lenient, (7, true), &assertion(5, Some(true)));
        assert_eq!(found.len(), 1);
        assert!(
            found[0].refusal.is_none(),
            "warn lets the regression through"
        );

        assert!(findings(&strict, (4, false), &assertion(5, None)).is_empty());
    }
}
