//! The management runtime's door into the domain: what operators read
//! (users, flows with their timeline, credentials, the audit trail, the
//! overview) and what they do ([`OperatorActions`]), over the repository and
//! the clock. Every flow it returns reads as it stands at the clock's now
//! ([`Flow::as_of`]), as the Core API reads it: an open flow past its expiry
//! is `expired` whether or not a write has settled it yet.

use std::sync::Arc;

use proto::ErrorCode;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{AuditEvent, AuditQuery};
use crate::clock::Clock;
use crate::credential::export::{CoseKeyOf, Export, Users};
use crate::credential::{Credential, CredentialStatus};
use crate::error::{DomainError, DomainResult};
use crate::flow::{Flow, FlowId, FlowState, FlowType};
use crate::operations::{OperatorActions, OperatorRead};
use crate::overview::{Bucket, Overview};
use crate::service::{RequestContext, UserView};
use crate::store::{
    FlowQuery, Page, ProviderCleanup, Repository, StoreError, UserCursor, UserQuery,
};
use crate::user::{ExternalUserId, User};

/// The most events a flow's timeline holds.
pub const MAX_TIMELINE: u32 = 1000;

/// A user with their credentials, whether a biometric reference is kept, and
/// their most recent flows.
#[derive(Debug, Clone, PartialEq)]
pub struct UserDetail {
    pub view: UserView,
    pub recent_flows: Vec<Flow>,
}

/// Which of a user's flows to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowFilter {
    pub flow_type: Option<FlowType>,
    /// The state the flows read as now (`Expired` takes in the open flows
    /// past their expiry).
    pub state: Option<FlowState>,
    pub limit: u32,
}

/// A user's flows that match a [`FlowFilter`], newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFlows {
    pub user: User,
    pub flows: Vec<Flow>,
}

/// One flow, whose it is, and its audit events, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowDetail {
    pub flow: Flow,
    pub user: User,
    pub timeline: Vec<AuditEvent>,
}

/// The use cases of the Management API and the dashboard.
pub struct ManagementService {
    repo: Arc<dyn Repository>,
    clock: Arc<dyn Clock>,
    actions: OperatorActions,
}

impl ManagementService {
    pub fn new(repo: Arc<dyn Repository>, clock: Arc<dyn Clock>) -> Self {
        let actions = OperatorActions::new(repo.clone(), clock.clone());
        Self {
            repo,
            clock,
            actions,
        }
    }

    /// Users by identifier prefix, credential status and creation time.
    pub async fn search_users(&self, query: &UserQuery) -> DomainResult<Page<User, UserCursor>> {
        Ok(self.repo.search_users(query).await?)
    }

    /// The user with this identifier; `404 user_not_found` when there is none.
    pub async fn find_user(&self, external_id: &ExternalUserId) -> DomainResult<User> {
        self.actions.find_user(external_id).await
    }

    /// A user with their credentials and their `recent` newest flows.
    pub async fn user(
        &self,
        external_id: &ExternalUserId,
        recent: u32,
    ) -> DomainResult<UserDetail> {
        let view = self.actions.user_overview(external_id).await?;
        let now = self.clock.now();
        let recent_flows = self
            .repo
            .flows_of(view.user.id, recent)
            .await?
            .into_iter()
            .map(|f| f.as_of(now))
            .collect();
        Ok(UserDetail { view, recent_flows })
    }

    /// Deletes a user (see [`crate::operations::delete_user`]), as the operator.
    pub async fn delete_user(
        &self,
        ctx: &RequestContext,
        external_id: &ExternalUserId,
    ) -> DomainResult<()> {
        self.actions.delete_user(ctx, external_id).await
    }

    /// The provider clean-ups still queued (dead ones included), oldest
    /// request first, at most `limit`.
    pub async fn provider_cleanups(&self, limit: u32) -> DomainResult<Vec<ProviderCleanup>> {
        self.actions.provider_cleanups(limit).await
    }

    /// A user's flows matching `filter`, newest first, each as it stands now;
    /// `404 user_not_found` for an unknown user.
    pub async fn flows(
        &self,
        external_id: &ExternalUserId,
        filter: &FlowFilter,
    ) -> DomainResult<UserFlows> {
        let user = self.find_user(external_id).await?;
        let now = self.clock.now();
        let flows = self
            .repo
            .search_flows(&FlowQuery {
                user: user.id,
                flow_type: filter.flow_type,
                state: filter.state,
                now,
                limit: filter.limit,
            })
            .await?
            .into_iter()
            .map(|f| f.as_of(now))
            .collect();
        Ok(UserFlows { user, flows })
    }

    /// One flow as it stands now, its user and its timeline (at most
    /// [`MAX_TIMELINE`] events, oldest first); `404 flow_not_found`.
    pub async fn flow(&self, id: FlowId) -> DomainResult<FlowDetail> {
        let flow = self.repo.flow(id).await.map_err(|e| match e {
            StoreError::NotFound => {
                DomainError::not_found(ErrorCode::FlowNotFound, "no flow with this id")
            }
            other => other.into(),
        })?;
        let flow = flow.as_of(self.clock.now());
        let user = self.repo.user_by_id(flow.user_id).await?;
        let page = self
            .repo
            .audit_events(&AuditQuery {
                flow_id: Some(flow.id.0),
                limit: MAX_TIMELINE,
                ..AuditQuery::default()
            })
            .await?;
        let mut timeline = page.items;
        timeline.reverse();
        Ok(FlowDetail {
            flow,
            user,
            timeline,
        })
    }

    /// A credential; `404 credential_not_found`.
    pub async fn credential(&self, id: Uuid) -> DomainResult<Credential> {
        self.actions.credential(id).await
    }

    /// Suspends, re-activates or revokes a credential (see
    /// [`OperatorActions::set_credential_status`]).
    pub async fn set_credential_status(
        &self,
        ctx: &RequestContext,
        id: Uuid,
        to: CredentialStatus,
        reason: &str,
    ) -> DomainResult<Credential> {
        self.actions
            .set_credential_status(ctx, id, to, reason)
            .await
    }

    /// A page of the audit trail, newest first.
    pub async fn audit_events(&self, query: &AuditQuery) -> DomainResult<Page<AuditEvent, i64>> {
        Ok(self.repo.audit_events(query).await?)
    }

    /// The overview's counts of `[from, to)` per bucket, as of now.
    pub async fn overview(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        bucket: Bucket,
    ) -> DomainResult<Overview> {
        self.actions.overview(from, to, bucket).await
    }

    /// Begins a credential export of `users`, dated now.
    pub async fn start_credential_export(
        &self,
        users: Users,
        cose_key_of: CoseKeyOf,
    ) -> DomainResult<Export> {
        self.actions
            .start_credential_export(users, cose_key_of)
            .await
    }

    /// Puts an operator's read on the record (`operator.read`).
    pub async fn record_read(&self, ctx: &RequestContext, read: OperatorRead) -> DomainResult<()> {
        self.actions.record_read(ctx, read).await
    }

    /// Puts a call the operator's scopes did not allow on the record.
    pub async fn record_refusal(
        &self,
        ctx: &RequestContext,
        method: &str,
        route: &str,
    ) -> DomainResult<()> {
        self.actions.record_refusal(ctx, method, route).await
    }
}
