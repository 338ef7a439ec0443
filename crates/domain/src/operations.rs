//! What operators do through the Management API. Every action is checked
//! against the domain's rules and written with its audit event, carrying the
//! operator's `sub`, in one transaction.

use std::sync::Arc;

use proto::ErrorCode;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{AuditEventType, NewAuditEvent, Subject};
use crate::clock::Clock;
use crate::credential::export::{CoseKeyOf, Export, Users};
use crate::credential::{Credential, CredentialStatus};
use crate::error::{DomainError, DomainResult};
use crate::overview::{Bucket, Overview, OverviewQuery, PeriodRefusal};
use crate::service::RequestContext;
use crate::service::UserView;
use crate::store::{Change, Effect, Repository, StoreError};
use crate::user::{ExternalUserId, User};

/// The longest reason an operator may give.
pub const MAX_REASON_CHARS: usize = 500;

/// The user with this identifier; `404 user_not_found` when there is none.
pub async fn find_user(repo: &dyn Repository, external_id: &ExternalUserId) -> DomainResult<User> {
    repo.user_by_external_id(external_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => DomainError::not_found(
                ErrorCode::UserNotFound,
                "no user with this external_user_id",
            ),
            other => other.into(),
        })
}

/// A user with their credentials and whether a biometric reference is kept.
pub async fn user_overview(
    repo: &dyn Repository,
    external_id: &ExternalUserId,
) -> DomainResult<UserView> {
    let user = find_user(repo, external_id).await?;
    let credentials = repo.credentials_of(user.id).await?;
    let has_biometric_reference = match repo.reference_of(user.id).await {
        Ok(_) => true,
        Err(StoreError::NotFound) => false,
        Err(other) => return Err(other.into()),
    };
    Ok(UserView {
        user,
        credentials,
        has_biometric_reference,
    })
}

/// Deletes a user at once: credentials, biometric reference and flows, with
/// the `user.deleted` event (which keeps only the pseudonym). What the IDV
/// provider keeps is queued for the Core API to have forgotten, in the same
/// transaction, and retried until the provider confirms.
pub async fn delete_user(
    repo: &dyn Repository,
    clock: &dyn Clock,
    ctx: &RequestContext,
    external_id: &ExternalUserId,
) -> DomainResult<()> {
    let user = find_user(repo, external_id).await?;
    let event = NewAuditEvent {
        correlation_id: ctx.correlation_id.clone(),
        details: json!({ "provider_cleanup": "queued" }),
        ..NewAuditEvent::new(
            AuditEventType::UserDeleted,
            ctx.actor.clone(),
            Subject::of_user(&user),
            clock.now(),
        )
    };
    repo.delete_user(user.id, &event)
        .await
        .map_err(|e| match e {
            // Deleted concurrently since it was read.
            StoreError::NotFound => DomainError::not_found(
                ErrorCode::UserNotFound,
                "no user with this external_user_id",
            ),
            other => other.into(),
        })
}

/// What an operator read through the Management API: the kind of thing
/// (`user`, `users`, `flow`, `flows`, `credential`, `audit`, `audit_export`,
/// `provider_cleanups`, `credential_export`),
/// whose it was, and the filters and number of rows. Details never hold a
/// customer identifier: a search prefix is recorded by its length.
#[derive(Debug, Clone)]
pub struct OperatorRead {
    pub what: &'static str,
    pub subject: Subject,
    pub details: serde_json::Value,
}

pub struct OperatorActions {
    repo: Arc<dyn Repository>,
    clock: Arc<dyn Clock>,
}

impl OperatorActions {
    pub fn new(repo: Arc<dyn Repository>, clock: Arc<dyn Clock>) -> Self {
        Self { repo, clock }
    }

    /// Deletes a user (see [`delete_user`]), as the operator.
    pub async fn delete_user(
        &self,
        ctx: &RequestContext,
        external_id: &ExternalUserId,
    ) -> DomainResult<()> {
        delete_user(&*self.repo, &*self.clock, ctx, external_id).await
    }

    /// The overview's counts of `[from, to)` per bucket, as of now (see
    /// [`crate::overview`]). A period that is empty or longer than
    /// [`crate::overview::MAX_PERIOD`] is refused.
    pub async fn overview(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        bucket: Bucket,
    ) -> DomainResult<Overview> {
        let query =
            OverviewQuery::new(from, to, bucket, self.clock.now()).map_err(
                |refusal| match refusal {
                    PeriodRefusal::Empty => DomainError::bad_request(
                        ErrorCode::InvalidParameter,
                        "to must be after from",
                    ),
                    PeriodRefusal::TooLong => DomainError::bad_request(
                        ErrorCode::OverviewPeriodTooLong,
                        format!(
                            "the period is at most {} days",
                            crate::overview::MAX_PERIOD.whole_days()
                        ),
                    ),
                },
            )?;
        Ok(self.repo.overview(&query).await?)
    }

    pub async fn find_user(&self, external_id: &ExternalUserId) -> DomainResult<User> {
        find_user(&*self.repo, external_id).await
    }

    /// Begins a credential export of `users` (see [`Export`]), dated now;
    /// `404 user_not_found` for an unknown user. The caller records it with
    /// [`Self::record_read`] and [`Export::on_record`] when it ends.
    pub async fn start_credential_export(
        &self,
        users: Users,
        cose_key_of: CoseKeyOf,
    ) -> DomainResult<Export> {
        Export::start(self.repo.clone(), users, cose_key_of, self.clock.now()).await
    }

    /// Puts an operator's read on the record (`operator.read`). The caller
    /// answers only once this succeeded: no read goes unrecorded.
    pub async fn record_read(&self, ctx: &RequestContext, read: OperatorRead) -> DomainResult<()> {
        let mut details = read.details;
        details["read"] = json!(read.what);
        let event = NewAuditEvent {
            correlation_id: ctx.correlation_id.clone(),
            details,
            ..NewAuditEvent::new(
                AuditEventType::OperatorRead,
                ctx.actor.clone(),
                read.subject,
                self.clock.now(),
            )
        };
        Ok(self.repo.append_audit(&event).await?)
    }

    /// Puts a call the operator's scopes did not allow on the record
    /// (`operator.refused`, outcome `rejected`, the route and method in the
    /// details).
    pub async fn record_refusal(
        &self,
        ctx: &RequestContext,
        method: &str,
        route: &str,
    ) -> DomainResult<()> {
        let event = NewAuditEvent {
            correlation_id: ctx.correlation_id.clone(),
            outcome: crate::audit::Outcome::Rejected,
            reason: Some("missing_scope".to_owned()),
            details: json!({ "method": method, "route": route }),
            ..NewAuditEvent::new(
                AuditEventType::OperatorRefused,
                ctx.actor.clone(),
                Subject::default(),
                self.clock.now(),
            )
        };
        Ok(self.repo.append_audit(&event).await?)
    }

    pub async fn user_overview(&self, external_id: &ExternalUserId) -> DomainResult<UserView> {
        user_overview(&*self.repo, external_id).await
    }

    /// The provider clean-ups still queued (dead ones included), oldest
    /// request first, at most `limit`.
    pub async fn provider_cleanups(
        &self,
        limit: u32,
    ) -> DomainResult<Vec<crate::store::ProviderCleanup>> {
        Ok(self.repo.pending_provider_cleanups(limit).await?)
    }

    pub async fn credential(&self, id: Uuid) -> DomainResult<Credential> {
        self.repo.credential(id).await.map_err(|e| match e {
            StoreError::NotFound => {
                DomainError::not_found(ErrorCode::CredentialNotFound, "no credential with this id")
            }
            other => other.into(),
        })
    }

    /// Suspends, re-activates or revokes a credential, with a reason.
    /// `409 credential_transition_not_allowed` for anything but
    /// active → suspended, suspended → active, active/suspended → revoked.
    pub async fn set_credential_status(
        &self,
        ctx: &RequestContext,
        id: Uuid,
        to: CredentialStatus,
        reason: &str,
    ) -> DomainResult<Credential> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(DomainError::bad_request(
                ErrorCode::InvalidRequestBody,
                format!("reason must be 1 to {MAX_REASON_CHARS} characters"),
            ));
        }
        let credential = self.credential(id).await?;
        if !credential.status.can_become(to) {
            return Err(DomainError::conflict(
                ErrorCode::CredentialTransitionNotAllowed,
                format!("a {} credential cannot become {}", credential.status, to),
            ));
        }
        let now = self.clock.now();
        let event_type = match to {
            CredentialStatus::Active => AuditEventType::CredentialActivated,
            CredentialStatus::Suspended => AuditEventType::CredentialSuspended,
            CredentialStatus::Revoked => AuditEventType::CredentialRevoked,
        };
        let event = NewAuditEvent {
            reason: Some(reason.to_owned()),
            correlation_id: ctx.correlation_id.clone(),
            details: json!({ "from": credential.status.as_str(), "to": to.as_str() }),
            ..NewAuditEvent::new(
                event_type,
                ctx.actor.clone(),
                Subject {
                    user_id: Some(credential.user_id),
                    credential_id: Some(credential.id),
                    ..Subject::default()
                },
                now,
            )
        };
        self.repo
            .apply(&Change {
                flow: None,
                effects: vec![Effect::SetCredentialStatus {
                    id,
                    from: credential.status,
                    to,
                    reason: Some(reason.to_owned()),
                    at: now,
                }],
                events: vec![event],
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => DomainError::conflict(
                    ErrorCode::Conflict,
                    "the credential changed concurrently; read it again",
                ),
                other => other.into(),
            })?;
        self.credential(id).await
    }
}
