//! A user as the integration sees them, and their deletion.

use super::{FlowService, RequestContext};
use crate::credential::Credential;
use crate::error::DomainResult;
use crate::user::{ExternalUserId, User};

/// A user as the integration sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserView {
    pub user: User,
    pub credentials: Vec<Credential>,
    pub has_biometric_reference: bool,
}
impl FlowService {
    pub async fn user_view(&self, external_id: &ExternalUserId) -> DomainResult<UserView> {
        crate::operations::user_overview(&*self.repo, external_id).await
    }

    /// Deletes a user at once; the provider forgets them through the cleanup
    /// queue (see [`FlowService::process_provider_cleanups`]).
    #[tracing::instrument(target = "biometric_passkey::span", name = "user.delete", skip_all)]
    pub async fn delete_user(
        &self,
        ctx: &RequestContext,
        external_id: &ExternalUserId,
    ) -> DomainResult<()> {
        self.external_ids.forget(external_id);
        crate::operations::delete_user(&*self.repo, &*self.clock, ctx, external_id).await
    }
}
