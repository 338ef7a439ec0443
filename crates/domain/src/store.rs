//! The persistence port. The trait speaks the domain (create a user, append an
//! event), not tables; each store commits a state change and its audit event in
//! one transaction. Both stores pass the same conformance suite
//! (`store-conformance`), which is this trait's executable specification.

use async_trait::async_trait;

use crate::audit::{AuditEvent, AuditQuery, NewAuditEvent};
use crate::user::{ExternalUserId, User, UserId};

/// What can go wrong in a store, already mapped from driver errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed row does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule or a concurrent change prevented the write; `what`
    /// names the rule (e.g. `users.external_id`), never a value.
    #[error("conflict on {what}")]
    Conflict { what: String },
    /// The database cannot be reached or timed out; nothing was written.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored value no longer matches the domain's rules.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Anything else the driver reported.
    #[error("database error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One page of results plus the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

#[async_trait]
pub trait Repository: Send + Sync + 'static {
    /// A cheap round trip, for readiness probes.
    async fn ping(&self) -> StoreResult<()>;

    /// Inserts a new user and the event recording it.
    /// `Conflict` when the external id is already taken.
    async fn create_user(&self, user: &User, event: &NewAuditEvent) -> StoreResult<()>;

    /// `NotFound` when no such user exists.
    async fn user_by_external_id(&self, external_id: &ExternalUserId) -> StoreResult<User>;

    /// Deletes the user and everything owned by them, and records the event.
    /// `NotFound` when the user does not exist (nothing is written then).
    async fn delete_user(&self, id: UserId, event: &NewAuditEvent) -> StoreResult<()>;

    /// Appends an event that accompanies no state change (a rejected request, say).
    async fn append_audit(&self, event: &NewAuditEvent) -> StoreResult<()>;

    /// Searches the trail, newest first.
    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<Page<AuditEvent, i64>>;
}
