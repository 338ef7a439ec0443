//! The persistence port. The trait speaks the domain, not tables; each store
//! commits a change and its audit events in one transaction. Both stores pass
//! the same conformance suite (`store-conformance`), which is this trait's
//! executable specification.
//!
//! - [`repository`]: the [`Repository`] trait;
//! - [`change`]: what one transaction writes ([`Change`]) and in which order;
//! - [`query`]: the searches, pages and records the reads take and return;
//! - [`error`]: [`StoreError`], with what a refused write conflicted with
//!   ([`Conflict`]) and which limit it would exceed ([`Limit`]).

pub mod change;
pub mod error;
pub mod query;
pub mod repository;

pub use change::{Change, Effect, FlowLimits, FlowWrite, Purge, Write, per_credential, per_flow};
pub use error::{Conflict, Limit, StoreError, StoreResult};
pub use query::{
    FlowPrerequisites, FlowQuery, IdempotencyBegin, Page, ProviderCleanup, ProviderCleanupCounts,
    SealedValues, StoredResponse, UserCursor, UserQuery,
};
pub use repository::Repository;
