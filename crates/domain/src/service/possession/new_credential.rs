//! A registration's or recovery's new credential.

use proto::ErrorCode;
use serde_json::json;
use time::OffsetDateTime;

use super::Possession;
use crate::audit::{AuditEventType, NewAuditEvent, Subject};
use crate::credential::WebAuthnId;
use crate::error::{DomainError, DomainResult};
use crate::flow::{Fact, Flow, NewCredential};
use crate::possession::BackupPolicy;
use crate::service::{ChangeDraft, FlowService, RequestContext};
use crate::store::StoreError;

impl FlowService {
    /// `credential`, carried by `flow` until the flow completes; refused
    /// (audited) when its WebAuthn id is registered already, or when it can
    /// be backed up and the backup policy refuses that.
    pub(super) async fn new_credential(
        &self,
        ctx: &RequestContext,
        flow: Flow,
        credential: NewCredential,
        now: OffsetDateTime,
    ) -> DomainResult<Possession> {
        let parsed = WebAuthnId::parse(&credential.webauthn_id).map_err(|e| {
            DomainError::bad_request(ErrorCode::InvalidCredential, format!("credential.id {e}"))
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
        let subject = Subject {
            credential_id: Some(credential.id),
            ..Subject::of_flow(&flow)
        };
        let mut draft = ChangeDraft::default();
        if credential.backup_eligible {
            match self.policy.backup_policy {
                BackupPolicy::Reject => {
                    let err = DomainError::conflict(
                        ErrorCode::BackupEligibleNotAllowed,
                        "this passkey can be backed up (synced); only device-bound \
                         passkeys are accepted",
                    );
                    return Err(self.reject(ctx, &flow, err, "backup_eligible").await);
                }
                BackupPolicy::Warn => draft.push_event(NewAuditEvent {
                    details: json!({ "backup_state": credential.backup_state, "policy": "warn" }),
                    ..self.event(
                        ctx,
                        AuditEventType::CredentialBackupEligible,
                        subject.clone(),
                        now,
                    )
                }),
                BackupPolicy::Allow => {}
            }
        }
        draft.push_event(self.event(ctx, AuditEventType::FlowPossessionVerified, subject, now));
        let fact = Fact::Possession {
            credential_id: credential.id,
        };
        let flow = Flow {
            pending_credential: Some(credential),
            ..flow
        };
        Ok(Possession { fact, draft, flow })
    }
}
